// Structure: a version's component tree and dataflow edges, derived at ingest
// from its architecture and tensor names (GGUF and Hugging Face naming).
//
//   model -> block N (layer N) -> attn / ffn (/ expert E) -> tensors
//   top-level tensors (embeddings, output norm, output head) hang off model.
//
// Edges: `contains` (parent -> child, mirrors the tree), `feeds` (dataflow:
// embedding -> block 0 -> ... -> output norm -> output head; inside a block
// attn norm -> q, k, v -> attn out -> ffn norm -> gate, up -> down; routers
// feed experts) and `ties` (two tensors with identical bytes: tied weights).
// Pure function of names, shapes and hashes; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/sha256.h"
#include "formats/model_source.h"

struct sqlite3;

namespace hart::store {

enum class Role : uint8_t {
  kOther, kEmbedding, kPositionEmbedding, kTokenTypeEmbedding, kNorm,
  kAttnQ, kAttnK, kAttnV, kAttnQkv, kAttnOut,
  kFfnGate, kFfnUp, kFfnDown, kFfnGateUp,
  kRouter, kExpert, kOutput, kRopeFreqs, kPooler,
};
std::string_view RoleName(Role r);  // "attn_q", "ffn_down", ...
std::optional<Role> RoleFromName(std::string_view name);

enum class ComponentKind : uint8_t { kModel, kBlock, kTensor };
std::string_view ComponentKindName(ComponentKind k);  // "model", "block", "tensor"

enum class EdgeKind : uint8_t { kContains, kFeeds, kTies };
std::string_view EdgeKindName(EdgeKind k);  // "contains", "feeds", "ties"
std::optional<EdgeKind> EdgeKindFromName(std::string_view name);

// Identical bytes below this size (fresh norm vectors, zero biases) match
// by chance and are not recorded as `ties`.
inline constexpr uint64_t kMinTieBytes = 64 << 10;

struct StructureInput {
  std::string name;  // tensor name as in the file
  Digest sha256{};   // of the tensor bytes (ties detection); zero = unknown
  uint64_t nbytes = 0;
};

struct ComponentNode {
  ComponentKind kind = ComponentKind::kTensor;
  std::string name;        // "blk.3", "blk.3.attn", "blk.3.attn_q.weight"
  int parent = -1;         // index into Structure::nodes; -1 for the root
  int tensor = -1;         // index into the input tensors for kTensor
  Role role = Role::kOther;
  int layer = -1;          // block index, -1 outside blocks
  int expert = -1;         // expert index for per-expert tensors
  std::string sub;         // part inside a block: "attn", "ffn", "expert"
  // Operator nodes of an explicit graph (kBlock): the op type ("Conv",
  // "com.microsoft:Attention" outside the default domain), stored in the
  // component's `role` column.
  std::string op_type;
};

struct EdgeSpec {
  int src = 0, dst = 0;  // node indices
  EdgeKind kind = EdgeKind::kFeeds;
};

struct Structure {
  std::vector<ComponentNode> nodes;  // nodes[0] is the model root
  std::vector<EdgeSpec> edges;
  bool known_architecture = false;   // false: tree from name prefixes only
  int layers = 0;
};

// Edges are linear in the tensors, whatever the names and bytes (a file
// can hold 200,000 tensors of one name pattern or identical bytes):
// LinkAll joins every `from` to every `to` while that is at most
// kDenseLinkFactor x (|from| + |to|) + kDenseLinkSlack edges (every real
// model: a router and norm feeding 256 experts), else only through the
// first of each side (|from| + |to| - 1 edges). TieStar joins n identical
// tensors to the first of them (n - 1 `ties` edges, not n(n - 1) / 2): two
// tensors share bytes when a `ties` path of length 1 or 2 joins them.
inline constexpr uint64_t kDenseLinkFactor = 4;
inline constexpr uint64_t kDenseLinkSlack = 64;
void LinkAll(const std::vector<int>& from, const std::vector<int>& to, EdgeKind kind,
             std::vector<EdgeSpec>& edges);
void TieStar(const std::vector<int>& nodes, std::vector<EdgeSpec>& edges);

// Architectures with full role/edge rules: llama, mistral, qwen2, qwen3,
// gemma, gemma2, phi3, gpt2, bert, mixtral-style MoE (and their HF names).
// Anything else gets a tree from dotted name prefixes and known=false.
Structure DeriveStructure(std::string_view architecture, std::string_view model_name,
                          const std::vector<StructureInput>& tensors);

// Structure of a model that carries its operator graph (ONNX):
//   model -> one block per operator, named "node:<name>" ("node:<op>_<index>"
//   when the file gives none; "#<index>" appended to a repeated name), its
//   op type in `op_type` -> each initializer under the first operator that
//   consumes it (under the model when none does).
// Edges: `contains` mirrors the tree; `feeds` runs operator -> operator
// through every value one produces and the other consumes, and initializer
// -> every operator consuming it; `ties` as DeriveStructure (large tensors
// with identical bytes).
Structure StructureFromGraph(std::string_view model_name,
                             const std::vector<formats::GraphNode>& graph,
                             const std::vector<StructureInput>& tensors);

// Writes a derived structure into the catalog inside the caller's (ingest)
// transaction: one component row per node, parents first, then every edge.
// tensor_rows[i] describes input tensor i; returns the component id of each
// input tensor, in input order.
struct TensorRowData {
  std::string dtype;
  std::string shape_json;
  uint64_t nbytes = 0;
  Digest sha256{};
};
absl::StatusOr<std::vector<int64_t>> InsertStructure(sqlite3* db, int64_t version_id,
                                                     const Structure& st,
                                                     const std::vector<TensorRowData>& tensor_rows);

}  // namespace hart::store

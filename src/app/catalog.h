// Use cases that look at and look after what a store holds: list, show,
// diff, stats, verify, rm, gc. Each is one typed request and response; the
// response's ToJson() is exactly what `hart <cmd> --json` prints, and
// FromJson() reads a request strictly (unknown fields and wrong types are
// InvalidArgument naming the field). Names are data, never SQL or paths:
// every lookup binds them as parameters.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::app {

// `hart ls [MODEL]`: the models, or the versions of one.
struct ListRequest {
  std::string model;  // "": every model
  static absl::StatusOr<ListRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct ListResponse {
  bool versions_of_model = false;           // which of the two lists is set
  std::vector<store::ModelRow> models;      // model == ""
  std::vector<store::VersionRow> versions;  // model given; NotFound when it has none
  // Who owns each model and who else reads it (issue 14): every item of
  // either list carries its model's "owner" and "visibility".
  std::map<std::string, store::ModelAccess> access;
  // Models list only: each model's latest version's license and created_at
  // (as "license" and "created_at"), so a caller without SQL sees them too.
  struct Latest {
    std::string license;
    int64_t created_at = 0;
  };
  std::map<std::string, Latest> latest;
  nlohmann::json ToJson() const;            // a JSON array of either
};
absl::StatusOr<ListResponse> List(const Context& ctx, const ListRequest& req);

// `hart show MODEL[@V]`: a version's header, files and tensors.
struct ShowRequest {
  std::string version;  // "model" or "model@N"
  static absl::StatusOr<ShowRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct ShowResponse {
  store::VersionRow version;
  std::vector<store::FileRow> files;
  std::vector<store::TensorRow> tensors;
  // How it was made, when derived (workshop), and what was derived from it.
  std::optional<store::DerivationRecord> derivation;
  std::vector<std::string> derived;
  store::ModelAccess access;  // the model's owner and visibility
  // {"version": {... "metadata", "owner", "visibility"}, "files": [...], "tensors": [...],
  //  "derivation": {method, parameters, inputs, hart_version} | null, "derived": [...]}
  nlohmann::json ToJson() const;
};
absl::StatusOr<ShowResponse> Show(const Context& ctx, const ShowRequest& req);

// A version's component tree (model -> blocks -> tensors, store/structure.h)
// and its graph edges (contains, feeds, ties), read from the MQE's
// `components` and `edges` views with bound parameters. `under` picks a
// subtree: a component id or a component name of this version. Edges are
// those whose two ends are both among the returned nodes.
inline constexpr int64_t kDefaultComponentRows = 10000;
inline constexpr int64_t kMaxComponentRows = 1000000;
struct ComponentsRequest {
  std::string version;             // "model" or "model@N"
  std::string under;               // "": the whole tree from the model root
  std::vector<std::string> edges;  // kinds to return; empty: every kind
  bool with_edges = true;          // false: nodes only
  int64_t max_rows = kDefaultComponentRows;  // cap on nodes and on edges, 1..kMaxComponentRows
  // {"version", "under"?, "edges"?: ["feeds", ...], "with_edges"?, "max_rows"?}
  static absl::StatusOr<ComponentsRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct ComponentNodeRow {
  int64_t id = 0;
  std::optional<int64_t> parent;  // none for the root of the version
  std::string kind;               // "model", "block", "tensor"
  std::string name;
  std::optional<std::string> role;  // "attn_q", ...; a graph operator's op type
  std::optional<int64_t> layer;
  std::optional<std::string> dtype;  // tensors only
  nlohmann::json shape;              // tensors: [dims]; else null
  uint64_t nbytes = 0;
};
struct ComponentEdgeRow {
  int64_t src = 0, dst = 0;
  std::string kind;  // "contains", "feeds", "ties"
};
struct ComponentsResponse {
  store::VersionRow version;
  int64_t root = 0;  // the subtree's root component id
  std::vector<ComponentNodeRow> nodes;  // pre-order is not promised: by id, root first
  std::vector<ComponentEdgeRow> edges;
  bool truncated = false;  // max_rows cut nodes or edges
  // {"version": "m@N", "root", "nodes": [{"id","parent","kind","name","role",
  //  "layer","dtype","shape","nbytes"}], "edges": [{"src","dst","kind"}], "truncated"}
  nlohmann::json ToJson() const;
};
absl::StatusOr<ComponentsResponse> Components(const Context& ctx, const ComponentsRequest& req);

// A version's tensors, as in `hart show`, optionally with the MQE's
// tensor_stats (min, max, mean, std, ...: query/tensor_stats.h), read
// from the stored bytes (cached by content). Stats are computed in catalog
// order until max_stats_bytes of tensor bytes have been read; later tensors
// get "stats": null and "stats_skipped": true.
inline constexpr int64_t kDefaultStatsBytes = int64_t{256} << 20;
inline constexpr int64_t kMaxStatsBytes = int64_t{16} << 30;
struct TensorsRequest {
  std::string version;
  bool stats = false;
  int64_t max_stats_bytes = kDefaultStatsBytes;  // 0..kMaxStatsBytes
  // {"version", "stats"?, "max_stats_bytes"?}
  static absl::StatusOr<TensorsRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct TensorsResponse {
  std::vector<store::TensorRow> tensors;
  bool with_stats = false;
  std::vector<nlohmann::json> stats;  // with_stats: one per tensor, null when skipped
  // [{tensor as in show, "stats"?, "stats_skipped"?}, ...]
  nlohmann::json ToJson() const;
};
absl::StatusOr<TensorsResponse> Tensors(const Context& ctx, const TensorsRequest& req);

// `hart diff A B`: tensors added, removed and changed from A to B.
struct DiffRequest {
  std::string a, b;  // version references
  static absl::StatusOr<DiffRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct DiffSummary {
  uint64_t added = 0, removed = 0, changed = 0;
  uint64_t changed_bytes = 0;
  uint64_t logical_bytes_a = 0, logical_bytes_b = 0;
  nlohmann::json ToJson() const;
};
struct DiffResponse {
  store::VersionRow a, b;
  std::vector<store::DiffRow> rows;
  DiffSummary summary;
  // {"a": "m@1", "b": "m@2", "rows": [...], "summary": {...}}
  nlohmann::json ToJson() const;
};
absl::StatusOr<DiffResponse> Diff(const Context& ctx, const DiffRequest& req);

// `hart stats`: logical vs physical bytes per model.
struct StatsRequest {
  static absl::StatusOr<StatsRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct StatsResponse {
  store::StatsReport report;
  nlohmann::json ToJson() const;
};
absl::StatusOr<StatsResponse> Stats(const Context& ctx, const StatsRequest& req);

// `hart verify`: re-hash every chunk. A bad chunk is a successful response
// with ok() false (the CLI then exits 2).
struct VerifyRequest {
  static absl::StatusOr<VerifyRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct VerifyResponse {
  store::VerifyReport report;
  bool ok() const { return report.ok(); }
  nlohmann::json ToJson() const;  // {"ok", "chunks", "bytes", "bad": [...]}
};
absl::StatusOr<VerifyResponse> Verify(const Context& ctx, const VerifyRequest& req);

// `hart rm MODEL@V [--force]`: delete one version.
struct RemoveRequest {
  std::string version;  // "model@N" (a bare model: as the store resolves it)
  bool force = false;   // also when it is the parent of others (relinks them)
  static absl::StatusOr<RemoveRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct RemoveResponse {
  store::DeleteReport report;
  // Not an Admin: exclusive_bytes is null (it would tell how much of the
  // version other owners' models share).
  bool hide_sharing = false;
  // {"deleted", "tensors", "exclusive_bytes", "children_relinked"}
  nlohmann::json ToJson() const;
};
absl::StatusOr<RemoveResponse> Remove(const Context& ctx, const RemoveRequest& req);

// `hart gc`: reclaim chunks no version references.
struct GcRequest {
  static absl::StatusOr<GcRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct GcResponse {
  store::GcReport report;
  nlohmann::json ToJson() const;
};
absl::StatusOr<GcResponse> Gc(const Context& ctx, const GcRequest& req);

// A version reference resolved against the store: InvalidArgument for a
// malformed one, NotFound for an unknown model or number.
absl::StatusOr<store::VersionRow> ResolveVersion(const Context& ctx, std::string_view ref);

}  // namespace hart::app

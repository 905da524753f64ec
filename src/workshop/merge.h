// `hart merge RECIPE.yaml`: a mergekit recipe run over stored GGUF versions
// as a derivation (derive.h). PlanMerge resolves every model, checks
// architectures, layer ranges, tensor names, shapes, types and parameters,
// and builds the output tensor list before a byte is written: passthrough
// tensors are taken unchanged (their chunks shared, zero new tensor bytes),
// every other tensor is computed by a TensorMerger (merge_math.h) over its
// inputs read in blocks of 256 Ki elements straight from the packs, so a
// merge holds a few blocks, never a tensor or a model. Blocks are decoded,
// merged and encoded in parts on the thread pool while the next block is
// read; the bytes do not depend on the number of threads.
//
// Layers: `models` merges whole models tensor by tensor; `slices` stacks
// slices of layers (blk.N renumbered in output order, `<arch>.block_count`
// set to the total). Tensors outside layers (token_embd, output_norm,
// output) come from the first slice's sources when they precede the layers
// in the template model's file, else from the last slice's. The template is
// base_model, else the first model named; its metadata (tokenizer included)
// becomes the output's.
//
// Output types: 1-D tensors (norms, biases) keep the template's float type
// (F32 when it is quantized); matrices get `dtype`, else the template's
// float type; a quantized input without `dtype` is an error naming it.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "store/store.h"
#include "workshop/derive.h"
#include "workshop/merge_recipe.h"

namespace hart::workshop {

struct MergePlan {
  Derivation derivation;
  std::vector<std::string> input_refs;  // resolved "m@N", in derivation.inputs order
  std::string template_ref;
  int64_t layers = 0;                   // output block count
  uint64_t taken = 0, computed = 0;     // tensors
  std::vector<std::string> notes;       // things the recipe asked for that were ignored
  // Bytes the computed tensors' callbacks read from packs (all passes).
  std::shared_ptr<std::atomic<uint64_t>> read_bytes;
};

// Checks the recipe against the store and builds the derivation; writes
// nothing. `recipe_text` is recorded as the lineage's parameters.
absl::StatusOr<MergePlan> PlanMerge(store::Store& store, const MergeRecipe& recipe,
                                    std::string_view recipe_text);

struct MergeResult {
  DeriveResult derive;
  MergePlan plan;  // derivation.tensors' callbacks spent
};

// Parses, plans and derives. opts.model defaults to the recipe's file stem.
absl::StatusOr<MergeResult> RunMerge(store::Store& store, std::string_view recipe_text,
                                     std::string_view recipe_file, const DeriveOptions& opts);

// The derivation a recorded merge describes (`hart rebuild`): the recorded
// recipe with every model pinned to the version it resolved to.
absl::StatusOr<Derivation> BuildMergeFromRecord(store::Store& store,
                                                const nlohmann::json& parameters);

// Tests: elements per streamed block (a multiple of 256; 0 restores 256 Ki),
// so tiny models cross block boundaries.
void SetMergeBlockElemsForTesting(uint64_t n);
// Tests: the merge runs on its own pool of `threads` (1: the calling thread
// alone) instead of ThreadPool::Default(); 0 restores the default.
void SetMergeThreadsForTesting(size_t threads);

}  // namespace hart::workshop

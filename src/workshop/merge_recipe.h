// MergeRecipe: a mergekit configuration (YAML) parsed and checked for
// structure, before any model is looked at. `hart merge RECIPE.yaml` reads
// one; merge.h plans it against the store.
//
// Accepted (mergekit's names): merge_method (linear, slerp, task_arithmetic,
// ties, dare_linear, dare_ties, passthrough); either `models` (whole models,
// each with its own `parameters`) or `slices` (each a list of `sources` with
// `model`, `layer_range: [start, end)` and `parameters`, plus the slice's own
// `parameters`); base_model; parameters; dtype (float32, float16, bfloat16);
// random_seed (DARE). tokenizer_source, tokenizer and chat_template are
// accepted and ignored (a note says so): the merged version keeps the
// tokenizer of its base.
//
// A parameter is a number, a gradient (a list of numbers interpolated over a
// slice's layers), or a list of {filter, value} conditions where the first
// whose filter is a substring of the tensor name wins and one without a
// filter is the default. Every error names the field (`slices[1].sources[0].
// layer_range`) and says what was wrong.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace hart::workshop {

enum class MergeMethod : uint8_t {
  kLinear, kSlerp, kTaskArithmetic, kTies, kDareLinear, kDareTies, kPassthrough,
};
std::string_view MethodName(MergeMethod m);
absl::StatusOr<MergeMethod> MethodFromName(std::string_view name);

// One parameter's setting: conditions tried in order.
struct ParamSetting {
  struct Cond {
    std::string filter;          // "" (or "*"): matches every tensor
    std::vector<double> values;  // one value, or a gradient
  };
  std::vector<Cond> conds;
  // The value for tensor `name` at relative position t in [0, 1] of its
  // slice; nullopt when no condition matches.
  std::optional<double> Evaluate(std::string_view name, double t) const;
};
using Params = std::map<std::string, ParamSetting>;

// A condition's filter matches a tensor name that contains it; mergekit's
// Hugging Face module names also match their GGUF spelling ("self_attn":
// blk.N.attn_*, "mlp": blk.N.ffn_*).
bool FilterMatches(std::string_view filter, std::string_view name);

struct SourceSpec {
  std::string model;                      // a store reference: "name" or "name@N"
  std::optional<std::pair<int64_t, int64_t>> layer_range;  // [start, end)
  Params params;
  std::string field;                      // "models[1]", "slices[0].sources[1]"
};

struct SliceSpec {
  std::vector<SourceSpec> sources;
  Params params;
  std::string field;  // "slices[0]"
};

struct MergeRecipe {
  MergeMethod method = MergeMethod::kLinear;
  bool uses_slices = false;
  std::vector<SourceSpec> models;  // `models:` form
  std::vector<SliceSpec> slices;   // `slices:` form
  std::optional<std::string> base_model;
  Params params;                   // top-level `parameters`
  std::optional<DType> dtype;      // output dtype of computed matrices
  uint64_t seed = 0;               // random_seed
  std::vector<std::string> notes;  // fields accepted but ignored, said once each

  // Every distinct model reference, base first when named.
  std::vector<std::string> ModelRefs() const;
};

// Parameter names each method takes (mergekit's): anything else is refused.
// Global-only names (normalize, rescale, int8_mask, lambda) are refused in
// per-model parameters.
bool MethodTakes(MergeMethod m, std::string_view param);

// Parses a recipe; `file` names it in errors. Input larger than 1 MiB is
// refused. Never throws.
absl::StatusOr<MergeRecipe> ParseMergeRecipe(std::string_view yaml, std::string_view file);

}  // namespace hart::workshop

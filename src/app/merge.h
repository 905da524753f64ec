// Use case `merge`: a mergekit recipe run over stored versions into a new
// version (src/workshop/merge.h does the work). The CLI reads the recipe
// file; the request carries its text, so a server can take it in a body.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"
#include "workshop/lora.h"
#include "workshop/merge.h"

namespace hart::app {

struct MergeRequest {
  std::string recipe;        // YAML text
  std::string recipe_name;   // for messages and the default model name ("recipe.yaml")
  std::string as;            // new model name; "" = the recipe's file stem
};

struct MergeResponse {
  std::string ref;           // "model@N" made
  std::string method;
  std::vector<std::string> inputs;  // resolved "m@N"
  int64_t layers = 0;
  uint64_t taken = 0, computed = 0;
  uint64_t output_bytes = 0, input_bytes = 0, new_bytes = 0;
  uint64_t peak_rss = 0;
  double seconds = 0;
  std::string digest;
  std::vector<std::string> notes;
  // HF models of the recipe converted first (app/workshop.h ConversionsJson).
  std::vector<workshop::InputConversion> conversions;
  nlohmann::json ToJson() const;
};

// A recipe's models may be HF versions: each is first converted to its
// GGUF layout (a stored conversion is reused), the merge derives from the
// conversions. The merge is planned and checked against the conversions
// built in memory before any is stored (workshop::PrepareInputs), so a
// refused recipe leaves the store exactly as it was; those stored are
// deleted again only when writing the merge fails after all.
absl::StatusOr<MergeResponse> Merge(const Context& ctx, const MergeRequest& req);

// Use cases `lora` (import an adapter attached to its base) and
// `merge-lora` (materialize base + scale * alpha / r * B @ A).
struct LoraRequest {
  std::string path;     // import: PEFT directory / adapter_model.safetensors / GGUF adapter
  std::string base;     // base version reference
  std::string adapter;  // merge-lora: adapter version reference
  double scale = 1.0;   // merge-lora
  std::string as;       // new model name; "" = a default
};
struct LoraResponse {
  std::string ref;
  std::string base;
  std::string source;
  int64_t rank = 0;
  double alpha = 0;
  uint64_t pairs = 0;
  uint64_t new_bytes = 0;
  nlohmann::json ToJson() const;
};
absl::StatusOr<LoraResponse> ImportLora(const Context& ctx, const LoraRequest& req);
absl::StatusOr<LoraResponse> MergeLora(const Context& ctx, const LoraRequest& req);

}  // namespace hart::app

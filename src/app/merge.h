// Use case `merge`: a mergekit recipe run over stored versions into a new
// version (src/workshop/merge.h does the work). The CLI reads the recipe
// file; the request carries its text, so a server can take it in a body.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"
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
  nlohmann::json ToJson() const;
};

absl::StatusOr<MergeResponse> Merge(const Context& ctx, const MergeRequest& req);

}  // namespace hart::app

// Planner: find -> map -> load. A selection (SQL, search text or name globs)
// over one version becomes the selected tensors, their dependency closure
// (upstream along `feeds` edges: what must run before them), their byte
// ranges in the packs, and what that costs against the whole model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "nlohmann/json.hpp"
#include "query/engine.h"
#include "store/store.h"

namespace hart::query {

struct PlanRequest {
  std::string version;             // "model@N" or "model"
  std::string sql;                 // rows' first column (or `id`) = component ids
  std::string search;              // full-text query (FTS5) over tensor names, roles, layers
  std::vector<std::string> names;  // GLOB patterns over tensor names
  bool closure = true;             // add upstream dependencies
  double timeout_seconds = 0;      // stops the selection SQL after this long; 0: no limit
};

struct ByteRange {
  int64_t pack = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct PlanTensor {
  int64_t id = 0;
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t nbytes = 0;
  std::string role;
  int layer = -1;
  bool selected = false;  // chosen by the request (else pulled in by closure)
  std::vector<ByteRange> ranges;
};

struct Plan {
  store::VersionRow version;
  std::vector<PlanTensor> tensors;  // in the version's tensor order
  uint64_t need_bytes = 0;
  uint64_t total_bytes = 0;
  uint64_t total_tensors = 0;
  uint64_t selected = 0;
  // "need 14 of 291 tensors: 83.1 MiB of 2.4 GiB (3.4%)"
  std::string Summary() const;
  nlohmann::json ToJson() const;
};

absl::StatusOr<Plan> MakePlan(Engine& engine, const PlanRequest& req);

enum class LoadFormat { kAuto, kSafetensors, kGguf };

// Writes exactly the plan's tensors as a valid model file: GGUF (with the
// source's metadata) for GGUF versions, safetensors otherwise, unless told.
absl::Status WritePlan(Engine& engine, const Plan& plan, const std::string& out_path,
                       LoadFormat format = LoadFormat::kAuto);

}  // namespace hart::query

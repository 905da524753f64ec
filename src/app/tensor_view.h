// What the web UI shows of a tensor's values, computed on the server from the
// stored bytes so a browser never downloads a tensor: a histogram of every
// value, a heat map of a 2-D slice (outermost dimension = rows, the rest
// flattened = columns) averaged down to at most kMaxHeatmapCells per axis,
// and the norms of the difference of same-named tensors in two versions (what
// a fine-tune changed, by how much). Values are decoded by core/decode.h, the
// same definition the MQE's tensor_stats uses; a type it cannot decode is
// Unimplemented naming the dtype and the tensor.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"

namespace hart::app {

inline constexpr int kDefaultHistogramBins = 64;
inline constexpr int kMaxHistogramBins = 1024;
inline constexpr int kMaxHeatmapCells = 256;
// Elements one heat map may decode (the slice's rows x columns).
inline constexpr int64_t kMaxHeatmapElements = int64_t{1} << 24;
inline constexpr int64_t kDefaultDiffNormBytes = int64_t{256} << 20;

struct HistogramRequest {
  std::string version;  // "model" or "model@N"
  std::string tensor;   // tensor name in that version
  int bins = kDefaultHistogramBins;  // 1..kMaxHistogramBins
  // {"version", "tensor", "bins"?}
  static absl::StatusOr<HistogramRequest> FromJson(const nlohmann::json& j);
};
struct HistogramResponse {
  std::string version, tensor, dtype;
  std::vector<uint64_t> shape;
  uint64_t count = 0, finite = 0, nan = 0, inf = 0;
  double min = 0, max = 0;         // of finite values; both 0 when none is finite
  std::vector<uint64_t> counts;    // bins equal-width over [min, max]
  // {"version","tensor","dtype","shape","count","finite","nan_count","inf_count",
  //  "min","max","counts":[...]}
  nlohmann::json ToJson() const;
};
absl::StatusOr<HistogramResponse> Histogram(const Context& ctx, const HistogramRequest& req);

struct HeatmapRequest {
  std::string version, tensor;
  int64_t row = 0, rows = 64;   // rows [row, row + rows) of the outermost dimension
  int64_t col = 0, cols = 256;  // columns [col, col + cols) of the rest, flattened
  // {"version","tensor","row"?,"rows"?,"col"?,"cols"?}
  static absl::StatusOr<HeatmapRequest> FromJson(const nlohmann::json& j);
};
struct HeatmapResponse {
  std::string version, tensor, dtype;
  std::vector<uint64_t> shape;
  int64_t total_rows = 0, total_cols = 0;  // the tensor seen as a matrix
  int64_t row = 0, rows = 0, col = 0, cols = 0;  // the slice actually read (clipped)
  int64_t cell_rows = 1, cell_cols = 1;          // input elements per cell on each axis
  std::vector<std::vector<std::optional<float>>> cells;  // mean per cell; null if none finite
  double min = 0, max = 0;                                // of the cells
  nlohmann::json ToJson() const;
};
absl::StatusOr<HeatmapResponse> Heatmap(const Context& ctx, const HeatmapRequest& req);

struct DiffNormsRequest {
  std::string a, b;                // version references
  std::vector<std::string> names;  // empty: every tensor the store's diff calls changed
  int64_t max_bytes = kDefaultDiffNormBytes;  // bytes of b's tensors to read; later rows skipped
  static absl::StatusOr<DiffNormsRequest> FromJson(const nlohmann::json& j);
};
struct DiffNormRow {
  std::string name;
  bool computed = false;  // false: skipped (max_bytes, shape/dtype change, undecodable)
  std::string reason;     // why not computed
  double l2_a = 0, l2_b = 0, l2_diff = 0, rel_diff = 0, max_abs_diff = 0;
  uint64_t changed_values = 0, count = 0;
};
struct DiffNormsResponse {
  std::string a, b;
  std::vector<DiffNormRow> rows;
  // {"a","b","rows":[{"name","computed","reason"?,"l2_a","l2_b","l2_diff","rel_diff",
  //  "max_abs_diff","changed_values","count"}]}
  nlohmann::json ToJson() const;
};
absl::StatusOr<DiffNormsResponse> DiffNorms(const Context& ctx, const DiffNormsRequest& req);

}  // namespace hart::app

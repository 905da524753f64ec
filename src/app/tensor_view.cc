#include "app/tensor_view.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <span>

#include "app/catalog.h"
#include "app/json_io.h"
#include "core/decode.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::app {
namespace {

using nlohmann::json;

// Elements decoded per step: a multiple of every block size, 64 KiB of floats.
constexpr uint64_t kStep = 16384;

struct OpenTensor {
  store::VersionRow version;
  store::TensorRow row;
  uint64_t elements = 0;
  store::TensorBytes bytes;
};

absl::StatusOr<OpenTensor> Open(const Context& ctx, const std::string& ref, const std::string& name,
                                bool read_bytes = true) {
  OpenTensor t;
  ASSIGN_OR_RETURN(t.version, ResolveVersion(ctx, ref));
  ASSIGN_OR_RETURN(auto rows, ctx.st().ListTensors(t.version.id));
  auto it = std::find_if(rows.begin(), rows.end(), [&](const store::TensorRow& r) { return r.name == name; });
  if (it == rows.end())
    return absl::NotFoundError(fmt::format("no tensor '{}' in {}", name, t.version.ref()));
  t.row = *it;
  ASSIGN_OR_RETURN(t.elements, NumElements(t.row.shape));
  if (!CanDecode(t.row.dtype))
    return absl::UnimplementedError(fmt::format("tensor '{}' of {}: values of dtype {} cannot be decoded",
                                                name, t.version.ref(), Name(t.row.dtype)));
  if (!read_bytes) return t;
  ASSIGN_OR_RETURN(t.bytes, ctx.st().ReadTensor(t.version.id, name));
  ASSIGN_OR_RETURN(uint64_t need, ByteSize(t.row.dtype, t.elements));
  if (t.bytes.bytes().size() != need)
    return absl::DataLossError(fmt::format("tensor '{}' of {}: {} bytes stored, {} {} elements need {}", name,
                                           t.version.ref(), t.bytes.bytes().size(), t.elements,
                                           Name(t.row.dtype), need));
  return t;
}

// Calls fn(first_index, values) over elements [first, first + count), decoded
// in steps of whole blocks.
absl::Status ForEachValues(const OpenTensor& t, uint64_t first, uint64_t count,
                           const std::function<void(uint64_t, std::span<const float>)>& fn) {
  const uint64_t bs = Info(t.row.dtype).block_size, ts = Info(t.row.dtype).type_size;
  std::vector<float> buf;
  uint64_t pos = first, end = std::min(t.elements, first + count);
  while (pos < end) {
    uint64_t b0 = pos / bs, b1 = (std::min(end, pos + kStep) + bs - 1) / bs;
    buf.resize((b1 - b0) * bs);
    RETURN_IF_ERROR(DecodeToF32(t.row.dtype, t.bytes.bytes().subspan(b0 * ts, (b1 - b0) * ts), buf));
    uint64_t stop = std::min(end, b1 * bs);
    fn(pos, std::span<const float>(buf.data() + (pos - b0 * bs), stop - pos));
    pos = stop;
  }
  return absl::OkStatus();
}

json Finite(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

}  // namespace

// ---- histogram ----

absl::StatusOr<HistogramRequest> HistogramRequest::FromJson(const json& j) {
  HistogramRequest r;
  RETURN_IF_ERROR(FieldReader(j, "histogram request")
                      .String("version", &r.version, true)
                      .String("tensor", &r.tensor, true)
                      .Int("bins", &r.bins, false, 1, kMaxHistogramBins)
                      .Finish());
  return r;
}

json HistogramResponse::ToJson() const {
  return {{"version", version}, {"tensor", tensor}, {"dtype", dtype},     {"shape", shape},
          {"count", count},     {"finite", finite}, {"nan_count", nan},   {"inf_count", inf},
          {"min", min},         {"max", max},       {"counts", counts}};
}

absl::StatusOr<HistogramResponse> Histogram(const Context& ctx, const HistogramRequest& req) {
  ASSIGN_OR_RETURN(OpenTensor t, Open(ctx, req.version, req.tensor));
  HistogramResponse h;
  h.version = t.version.ref();
  h.tensor = t.row.name;
  h.dtype = std::string(Name(t.row.dtype));
  h.shape.assign(t.row.shape.begin(), t.row.shape.end());
  h.count = t.elements;
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  RETURN_IF_ERROR(ForEachValues(t, 0, t.elements, [&](uint64_t, std::span<const float> v) {
    for (float x : v) {
      if (std::isnan(x)) {
        ++h.nan;
      } else if (std::isinf(x)) {
        ++h.inf;
      } else {
        ++h.finite;
        mn = std::min(mn, x);
        mx = std::max(mx, x);
      }
    }
  }));
  h.counts.assign(req.bins, 0);
  if (h.finite == 0) return h;
  h.min = mn;
  h.max = mx;
  const double width = (static_cast<double>(mx) - mn) / req.bins;
  RETURN_IF_ERROR(ForEachValues(t, 0, t.elements, [&](uint64_t, std::span<const float> v) {
    for (float x : v) {
      if (!std::isfinite(x)) continue;
      int b = width > 0 ? static_cast<int>((x - static_cast<double>(mn)) / width) : 0;
      h.counts[std::clamp(b, 0, req.bins - 1)]++;
    }
  }));
  return h;
}

// ---- heat map ----

absl::StatusOr<HeatmapRequest> HeatmapRequest::FromJson(const json& j) {
  HeatmapRequest r;
  RETURN_IF_ERROR(FieldReader(j, "heatmap request")
                      .String("version", &r.version, true)
                      .String("tensor", &r.tensor, true)
                      .Int("row", &r.row, false, 0)
                      .Int("rows", &r.rows, false, 1)
                      .Int("col", &r.col, false, 0)
                      .Int("cols", &r.cols, false, 1)
                      .Finish());
  return r;
}

json HeatmapResponse::ToJson() const {
  json grid = json::array();
  for (const auto& row : cells) {
    json r = json::array();
    for (const auto& c : row) r.push_back(c ? json(*c) : json(nullptr));
    grid.push_back(std::move(r));
  }
  return {{"version", version},     {"tensor", tensor},         {"dtype", dtype},
          {"shape", shape},         {"total_rows", total_rows}, {"total_cols", total_cols},
          {"row", row},             {"rows", rows},             {"col", col},
          {"cols", cols},           {"cell_rows", cell_rows},   {"cell_cols", cell_cols},
          {"min", Finite(min)},     {"max", Finite(max)},       {"cells", std::move(grid)}};
}

absl::StatusOr<HeatmapResponse> Heatmap(const Context& ctx, const HeatmapRequest& req) {
  ASSIGN_OR_RETURN(OpenTensor t, Open(ctx, req.version, req.tensor));
  HeatmapResponse h;
  h.version = t.version.ref();
  h.tensor = t.row.name;
  h.dtype = std::string(Name(t.row.dtype));
  h.shape.assign(t.row.shape.begin(), t.row.shape.end());
  h.total_rows = t.row.shape.size() >= 2 ? static_cast<int64_t>(t.row.shape[0]) : 1;
  h.total_cols = h.total_rows > 0 ? static_cast<int64_t>(t.elements) / h.total_rows : 0;
  if (t.elements == 0) return h;
  if (req.row >= h.total_rows || req.col >= h.total_cols)
    return absl::InvalidArgumentError(fmt::format("heatmap of '{}': slice starts at row {}, column {}; the tensor has {} x {}",
                                             h.tensor, req.row, req.col, h.total_rows, h.total_cols));
  h.row = req.row;
  h.col = req.col;
  h.rows = std::min(req.rows, h.total_rows - req.row);
  h.cols = std::min(req.cols, h.total_cols - req.col);
  if (h.rows * h.cols > kMaxHeatmapElements)
    return absl::InvalidArgumentError(fmt::format("heatmap of '{}': a slice of {} x {} values exceeds {}; ask for fewer rows or cols",
                                                  h.tensor, h.rows, h.cols, kMaxHeatmapElements));
  h.cell_rows = (h.rows + kMaxHeatmapCells - 1) / kMaxHeatmapCells;
  h.cell_cols = (h.cols + kMaxHeatmapCells - 1) / kMaxHeatmapCells;
  const int64_t out_rows = (h.rows + h.cell_rows - 1) / h.cell_rows;
  const int64_t out_cols = (h.cols + h.cell_cols - 1) / h.cell_cols;
  std::vector<double> sum(out_rows * out_cols, 0);
  std::vector<uint32_t> n(out_rows * out_cols, 0);
  for (int64_t r = 0; r < h.rows; ++r) {
    uint64_t first = static_cast<uint64_t>(h.row + r) * h.total_cols + h.col;
    const int64_t cr = r / h.cell_rows;
    RETURN_IF_ERROR(ForEachValues(t, first, h.cols, [&](uint64_t at, std::span<const float> v) {
      for (size_t i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v[i])) continue;
        int64_t c = static_cast<int64_t>(at - first + i) / h.cell_cols;
        sum[cr * out_cols + c] += v[i];
        n[cr * out_cols + c]++;
      }
    }));
  }
  bool any = false;
  double mn = 0, mx = 0;
  h.cells.assign(out_rows, std::vector<std::optional<float>>(out_cols));
  for (int64_t i = 0; i < out_rows * out_cols; ++i) {
    if (!n[i]) continue;
    float m = static_cast<float>(sum[i] / n[i]);
    h.cells[i / out_cols][i % out_cols] = m;
    mn = any ? std::min<double>(mn, m) : m;
    mx = any ? std::max<double>(mx, m) : m;
    any = true;
  }
  h.min = mn;
  h.max = mx;
  return h;
}

// ---- diff norms ----

absl::StatusOr<DiffNormsRequest> DiffNormsRequest::FromJson(const json& j) {
  DiffNormsRequest r;
  RETURN_IF_ERROR(FieldReader(j, "diff norms request")
                      .String("a", &r.a, true)
                      .String("b", &r.b, true)
                      .Strings("names", &r.names)
                      .Int("max_bytes", &r.max_bytes, false, 0, int64_t{16} << 30)
                      .Finish());
  return r;
}

json DiffNormsResponse::ToJson() const {
  json out = json::array();
  for (const auto& r : rows) {
    json j = {{"name", r.name}, {"computed", r.computed}};
    if (!r.computed) {
      j["reason"] = r.reason;
    } else {
      j.update({{"l2_a", Finite(r.l2_a)},
                {"l2_b", Finite(r.l2_b)},
                {"l2_diff", Finite(r.l2_diff)},
                {"rel_diff", Finite(r.rel_diff)},
                {"max_abs_diff", Finite(r.max_abs_diff)},
                {"changed_values", r.changed_values},
                {"count", r.count}});
    }
    out.push_back(std::move(j));
  }
  return {{"a", a}, {"b", b}, {"rows", std::move(out)}};
}

absl::StatusOr<DiffNormsResponse> DiffNorms(const Context& ctx, const DiffNormsRequest& req) {
  ASSIGN_OR_RETURN(store::VersionRow va, ResolveVersion(ctx, req.a));
  ASSIGN_OR_RETURN(store::VersionRow vb, ResolveVersion(ctx, req.b));
  DiffNormsResponse resp;
  resp.a = va.ref();
  resp.b = vb.ref();
  std::vector<std::string> names = req.names;
  if (names.empty()) {
    ASSIGN_OR_RETURN(auto diff, ctx.st().Diff(va.id, vb.id));
    for (const auto& d : diff)
      if (d.kind == store::DiffRow::Kind::kChanged) names.push_back(d.name);
  }
  int64_t budget = req.max_bytes;
  for (const auto& name : names) {
    RETURN_IF_ERROR(ctx.CheckCancel("diff norms"));
    DiffNormRow row;
    row.name = name;
    auto ta = Open(ctx, resp.a, name, false);
    auto tb = Open(ctx, resp.b, name, false);
    if (!ta.ok() || !tb.ok()) {
      row.reason = std::string(Msg(!ta.ok() ? ta.status() : tb.status()));
    } else if (ta->row.dtype != tb->row.dtype || ta->row.shape != tb->row.shape) {
      row.reason = "dtype or shape changed";
    } else if (static_cast<int64_t>(tb->row.nbytes) > budget) {
      row.reason = fmt::format("skipped: past max_bytes ({})", req.max_bytes);
    } else {
      budget -= static_cast<int64_t>(tb->row.nbytes);
      ASSIGN_OR_RETURN(ta->bytes, ctx.st().ReadTensor(ta->version.id, name));
      ASSIGN_OR_RETURN(tb->bytes, ctx.st().ReadTensor(tb->version.id, name));
      if (ta->bytes.bytes().size() != tb->bytes.bytes().size())
        return absl::DataLossError(fmt::format("tensor '{}': {} and {} stored sizes differ", name, resp.a, resp.b));
      std::vector<float> av;
      RETURN_IF_ERROR(ForEachValues(*ta, 0, ta->elements, [&](uint64_t, std::span<const float> v) {
        av.insert(av.end(), v.begin(), v.end());
      }));
      double sa = 0, sb = 0, sd = 0, mx = 0;
      RETURN_IF_ERROR(ForEachValues(*tb, 0, tb->elements, [&](uint64_t at, std::span<const float> v) {
        for (size_t i = 0; i < v.size(); ++i) {
          double x = av[at + i], y = v[i], d = y - x;
          sa += x * x;
          sb += y * y;
          sd += d * d;
          mx = std::max(mx, std::fabs(d));
          if (x != y) ++row.changed_values;
        }
      }));
      row.computed = true;
      row.count = ta->elements;
      row.l2_a = std::sqrt(sa);
      row.l2_b = std::sqrt(sb);
      row.l2_diff = std::sqrt(sd);
      row.rel_diff = row.l2_a > 0 ? row.l2_diff / row.l2_a : 0;
      row.max_abs_diff = mx;
    }
    resp.rows.push_back(std::move(row));
  }
  return resp;
}

}  // namespace hart::app

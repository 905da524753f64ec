// The web UI's tensor use cases against a real store: the histogram, heat map
// and difference norms agree with the MQE's own tensor functions
// (tensor_stats, tensor_values) over the same stored bytes, and bad requests
// (unknown tensor, slice out of range, an undecodable type) are clear 4xx/501
// errors naming the tensor.
#include "app/tensor_view.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "app/catalog.h"
#include "app/errors.h"
#include "app/query.h"
#include "tests/app/app_test_util.h"

namespace hart::app {
namespace {

using nlohmann::json;
using testing::AppTest;

// A 2-D tensor of `ref` that is F32 or F16 (so tensor_values decodes it).
store::TensorRow Matrix(Context& ctx, const std::string& ref) {
  auto v = ResolveVersion(ctx, ref);
  EXPECT_TRUE(v.ok());
  auto rows = ctx.st().ListTensors(v->id);
  EXPECT_TRUE(rows.ok());
  for (const auto& t : *rows)
    if (t.shape.size() == 2 && t.shape[0] > 2 && t.shape[1] <= 256) return t;
  ADD_FAILURE() << "no small matrix in " << ref;
  return {};
}

// The first row's column `col`; JSON text (tensor_stats, tensor_values) parsed.
json SqlOne(Context& ctx, const std::string& sql, const std::string& col) {
  SqlRequest req;
  req.sql = sql;
  auto r = Sql(ctx, req);
  EXPECT_TRUE(r.ok()) << r.status() << " " << sql;
  if (!r.ok() || r->rows.empty()) return json();
  json v = r->ToJson()["rows"][0][col];
  return v.is_string() ? json::parse(v.get<std::string>()) : v;
}

TEST_F(AppTest, HistogramCountsEveryValueBetweenTheMqeMinAndMax) {
  Ingest("base.safetensors", "m");
  store::TensorRow t = Matrix(ctx_, "m@1");
  auto h = Histogram(ctx_, {.version = "m@1", .tensor = t.name, .bins = 16});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->counts.size(), 16u);
  uint64_t sum = 0;
  for (auto c : h->counts) sum += c;
  EXPECT_EQ(sum, h->finite);
  EXPECT_EQ(h->count, t.shape[0] * t.shape[1]);
  EXPECT_EQ(h->finite + h->nan + h->inf, h->count);
  json stats = SqlOne(ctx_, "SELECT tensor_stats(id) AS s FROM tensors WHERE ref = 'm@1' AND name = '" +
                                            t.name + "'", "s");
  EXPECT_FLOAT_EQ(h->min, stats["min"].get<double>());
  EXPECT_FLOAT_EQ(h->max, stats["max"].get<double>());
  EXPECT_GT(h->counts.front(), 0u);  // the min lands in the first bin, the max in the last
  EXPECT_GT(h->counts.back(), 0u);
  json j = h->ToJson();
  EXPECT_EQ(j["tensor"], t.name);
  EXPECT_EQ(j["counts"].size(), 16u);
}

TEST_F(AppTest, HeatmapCellsAreTheStoredValuesOrTheirMeans) {
  Ingest("base.safetensors", "m");
  store::TensorRow t = Matrix(ctx_, "m@1");
  const int64_t cols = static_cast<int64_t>(t.shape[1]);
  // One row, every column: cells are the values themselves.
  auto h = Heatmap(ctx_, {.version = "m@1", .tensor = t.name, .row = 1, .rows = 1, .col = 0, .cols = cols});
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_EQ(h->cells.size(), 1u);
  ASSERT_EQ(h->cells[0].size(), static_cast<size_t>(cols));
  json values = SqlOne(ctx_, "SELECT tensor_values(id, " + std::to_string(cols) + ", " +
                                             std::to_string(cols) + ") AS v FROM tensors WHERE ref = 'm@1' AND name = '" +
                                             t.name + "'", "v");
  for (int64_t j = 0; j < cols; ++j) {
    ASSERT_TRUE(h->cells[0][j].has_value());
    EXPECT_FLOAT_EQ(*h->cells[0][j], values[j].get<float>()) << j;
  }
  // A slice clipped at the edges; wider than 256 cells would be averaged.
  auto clip = Heatmap(ctx_, {.version = "m@1", .tensor = t.name, .row = 2, .rows = 1000000, .col = cols - 1, .cols = 10});
  ASSERT_TRUE(clip.ok()) << clip.status();
  EXPECT_EQ(clip->rows, static_cast<int64_t>(t.shape[0]) - 2);
  EXPECT_EQ(clip->cols, 1);
  EXPECT_EQ(clip->cell_rows, (clip->rows + kMaxHeatmapCells - 1) / kMaxHeatmapCells);
  // Out of range is a 400 naming the tensor and its size.
  auto bad = Heatmap(ctx_, {.version = "m@1", .tensor = t.name, .row = 1 << 30});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(HttpStatusFor(bad.status()), 400);
  EXPECT_NE(bad.status().message().find(t.name), std::string::npos);
}

TEST_F(AppTest, DiffNormsMeasureWhatAFineTuneChanged) {
  Ingest("base.safetensors", "m");
  Ingest("ft1.safetensors", "m", "m@1");
  auto d = DiffNorms(ctx_, {.a = "m@1", .b = "m@2"});
  ASSERT_TRUE(d.ok()) << d.status();
  auto diff = Diff(ctx_, {.a = "m@1", .b = "m@2"});
  ASSERT_TRUE(diff.ok());
  EXPECT_EQ(d->rows.size(), diff->summary.changed);
  ASSERT_FALSE(d->rows.empty());
  for (const auto& r : d->rows) {
    ASSERT_TRUE(r.computed) << r.name << ": " << r.reason;
    EXPECT_GT(r.l2_diff, 0) << r.name;
    EXPECT_GT(r.changed_values, 0u) << r.name;
    EXPECT_NEAR(r.rel_diff, r.l2_diff / r.l2_a, 1e-12);
    json stats = SqlOne(ctx_, "SELECT tensor_stats(id) AS s FROM tensors WHERE ref = 'm@1' AND name = '" +
                                              r.name + "'", "s");
    EXPECT_NEAR(r.l2_a, stats["l2"].get<double>(), 1e-3 * r.l2_a) << r.name;
  }
  // A tensor against itself: nothing changed.
  auto same = DiffNorms(ctx_, {.a = "m@1", .b = "m@1", .names = {d->rows[0].name}});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->rows[0].l2_diff, 0);
  EXPECT_EQ(same->rows[0].changed_values, 0u);
  // A byte budget skips rather than fails; an unknown name says why.
  auto none = DiffNorms(ctx_, {.a = "m@1", .b = "m@2", .names = {d->rows[0].name, "nope"}, .max_bytes = 0});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->rows[0].computed);
  EXPECT_NE(none->rows[0].reason.find("max_bytes"), std::string::npos);
  EXPECT_NE(none->rows[1].reason.find("no tensor 'nope'"), std::string::npos);
  EXPECT_EQ(none->ToJson()["rows"][1]["computed"], false);
}

TEST_F(AppTest, TensorViewRequestsAreStrictAndErrorsNameTheTensor) {
  EXPECT_FALSE(HistogramRequest::FromJson({{"version", "m"}}).ok());  // no tensor
  EXPECT_FALSE(HistogramRequest::FromJson({{"version", "m"}, {"tensor", "t"}, {"bins", 0}}).ok());
  EXPECT_FALSE(HistogramRequest::FromJson({{"version", "m"}, {"tensor", "t"}, {"bins", 5000}}).ok());
  EXPECT_FALSE(HeatmapRequest::FromJson({{"version", "m"}, {"tensor", "t"}, {"rows", 0}}).ok());
  EXPECT_FALSE(DiffNormsRequest::FromJson({{"a", "m@1"}, {"b", "m@2"}, {"extra", 1}}).ok());
  Ingest("base.safetensors", "m");
  auto missing = Histogram(ctx_, {.version = "m@1", .tensor = "no.such"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(HttpStatusFor(missing.status()), 404);
  EXPECT_NE(missing.status().message().find("no.such"), std::string::npos);
  // IQ2_XXS / TQ2_0: stored, but not decodable: 501 naming the dtype.
  std::string dir = root_ + "/gguf";
  ASSERT_EQ(std::system(("/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_gguf.py " + dir + " >/dev/null").c_str()), 0);
  IngestRequest req;
  req.path = dir + "/all_types_v3.gguf";
  req.model = "odd";
  req.license = "mit";
  ASSERT_TRUE(app::Ingest(ctx_, req).ok());
  auto v = ResolveVersion(ctx_, "odd@1");
  auto rows = ctx_.st().ListTensors(v->id);
  ASSERT_TRUE(rows.ok());
  int undecodable = 0;
  for (const auto& t : *rows) {
    auto h = Histogram(ctx_, {.version = "odd@1", .tensor = t.name, .bins = 4});
    if (h.ok()) continue;
    ++undecodable;
    EXPECT_EQ(HttpStatusFor(h.status()), 501) << h.status();
    EXPECT_NE(h.status().message().find(std::string(Name(t.dtype))), std::string::npos) << h.status();
  }
  EXPECT_GE(undecodable, 1);
}

}  // namespace
}  // namespace hart::app

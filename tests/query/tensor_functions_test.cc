#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/decode.h"
#include "nlohmann/json.hpp"
#include "fmt/format.h"
#include "query/engine.h"
#include "tests/query/engine_test_util.h"
#include "tests/store/store_test_util.h"

namespace hart::query {
namespace {

using store::testing::MakeSource;
using store::testing::TestFile;

struct Expect {
  double min = INFINITY, max = -INFINITY, sum = 0, sumsq = 0;
  uint64_t n = 0, finite = 0, zeros = 0, nan = 0, inf = 0;
  void Add(float x) {
    ++n;
    if (std::isnan(x)) { ++nan; return; }
    if (std::isinf(x)) { ++inf; return; }
    ++finite;
    zeros += x == 0;
    min = std::min<double>(min, x);
    max = std::max<double>(max, x);
    sum += x;
    sumsq += static_cast<double>(x) * x;
  }
};

template <typename T>
std::vector<uint8_t> AsBytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

class TensorFunctionsTest : public testing::EngineFixture {
 protected:
  struct Spec {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<uint8_t> bytes;
    Expect expect;
    std::vector<float> values;  // decoded, as the test computes them
  };

  void SetUp() override {
    EngineFixture::SetUp();
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 0.5f);
    auto add = [&](std::string name, DType dt, Shape shape, std::vector<uint8_t> bytes,
                   std::vector<float> values) {
      Spec s{std::move(name), dt, std::move(shape), std::move(bytes), {}, std::move(values)};
      for (float v : s.values) s.expect.Add(v);
      specs_.push_back(std::move(s));
    };
    {  // F32 [10, 100] with some exact zeros
      std::vector<float> v(1000);
      for (size_t i = 0; i < v.size(); ++i) v[i] = i % 17 == 0 ? 0.0f : normal(rng) + 0.25f;
      add("blk.0.attn_q.weight", DType::kF32, {10, 100}, AsBytes(v), v);
    }
    {  // F16 [4, 1027]: an odd row length exercises the 8-wide tail
      std::vector<uint16_t> h(4 * 1027);
      std::vector<float> v(h.size());
      for (size_t i = 0; i < h.size(); ++i) {
        uint16_t x;
        do x = static_cast<uint16_t>(rng()); while (((x >> 10) & 31) == 31);
        h[i] = x;
        v[i] = F16ToF32(x);
      }
      add("blk.0.attn_k.weight", DType::kF16, {4, 1027}, AsBytes(h), v);
    }
    {  // BF16 [300]
      std::vector<uint16_t> h(300);
      std::vector<float> v(h.size());
      for (size_t i = 0; i < h.size(); ++i) {
        float f = normal(rng);
        uint32_t u;
        std::memcpy(&u, &f, 4);
        h[i] = static_cast<uint16_t>(u >> 16);
        v[i] = BF16ToF32(h[i]);
      }
      add("blk.0.attn_v.weight", DType::kBF16, {300}, AsBytes(h), v);
    }
    {  // Q8_0 [2, 64]: four blocks
      std::vector<uint8_t> b;
      std::vector<float> v;
      const uint16_t scales[4] = {0x3800, 0x2C00, 0xB400, 0x3C00};  // 0.5, 1/16, -0.25, 1
      for (int blk = 0; blk < 4; ++blk) {
        b.push_back(scales[blk] & 0xFF);
        b.push_back(scales[blk] >> 8);
        for (int j = 0; j < 32; ++j) {
          auto q = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
          b.push_back(static_cast<uint8_t>(q));
          v.push_back(q * F16ToF32(scales[blk]));
        }
      }
      add("blk.0.ffn_up.weight", DType::kQ8_0, {2, 64}, b, v);
    }
    {  // Q4_0 [64]: two blocks
      std::vector<uint8_t> b;
      std::vector<float> v(64);
      const uint16_t scales[2] = {0x4000, 0x3400};  // 2, 0.25
      for (int blk = 0; blk < 2; ++blk) {
        b.push_back(scales[blk] & 0xFF);
        b.push_back(scales[blk] >> 8);
        for (int j = 0; j < 16; ++j) {
          auto q = static_cast<uint8_t>(rng());
          b.push_back(q);
          v[blk * 32 + j] = ((q & 15) - 8) * F16ToF32(scales[blk]);
          v[blk * 32 + j + 16] = ((q >> 4) - 8) * F16ToF32(scales[blk]);
        }
      }
      add("blk.0.ffn_down.weight", DType::kQ4_0, {64}, b, v);
    }
    {  // F32 with NaN and Inf
      std::vector<float> v = {1.0f, NAN, -2.0f, INFINITY, 0.0f, -INFINITY, NAN, NAN, 3.5f};
      add("blk.0.ffn_gate.weight", DType::kF32, {9}, AsBytes(v), v);
    }
    // Q2_K has no decoder: one super-block of 84 bytes.
    add("blk.0.attn_output.weight", DType::kQ2_K, {256}, std::vector<uint8_t>(84, 1), {});

    TestFile f{"model.bin", {}, {}, {}};
    for (const Spec& s : specs_) f.tensors.push_back({s.name, s.bytes});
    auto src = MakeSource(root_ + "/m", {f});
    for (size_t i = 0; i < specs_.size(); ++i) {
      src.tensors[i].dtype = specs_[i].dtype;
      src.tensors[i].shape = specs_[i].shape;
    }
    IngestAndAttach(src, "typed");
  }
  int64_t Id(const std::string& name) {
    auto r = engine_->Query(fmt::format("SELECT id FROM tensors WHERE name = '{}'", name));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && !r->rows.empty() ? std::get<int64_t>(r->rows[0][0]) : -1;
  }
  std::string Scalar(const std::string& sql) {
    auto r = engine_->Query(sql);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status();
    if (!r.ok() || r->rows.empty()) return "";
    return ValueToString(r->rows[0][0]);
  }
  std::vector<Spec> specs_;
};

TEST_F(TensorFunctionsTest, StatsMatchValuesComputedHere) {
  for (const Spec& s : specs_) {
    if (s.dtype == DType::kQ2_K) continue;
    SCOPED_TRACE(s.name);
    auto j = nlohmann::json::parse(Scalar(fmt::format("SELECT tensor_stats({})", Id(s.name))));
    const Expect& e = s.expect;
    double mean = e.sum / e.finite;
    double var = e.sumsq / e.finite - mean * mean;
    double tol = 1e-6 * std::max(1.0, std::fabs(e.max) + std::fabs(e.min));
    EXPECT_EQ(j["count"].get<uint64_t>(), e.n);
    EXPECT_EQ(j["dtype"].get<std::string>(), std::string(Name(s.dtype)));
    EXPECT_EQ(j["min"].get<double>(), e.min);
    EXPECT_EQ(j["max"].get<double>(), e.max);
    EXPECT_EQ(j["abs_max"].get<double>(), std::max(std::fabs(e.min), std::fabs(e.max)));
    EXPECT_NEAR(j["mean"].get<double>(), mean, tol);
    EXPECT_NEAR(j["std"].get<double>(), std::sqrt(var), 1e-6 * std::max(1.0, std::sqrt(var)));
    EXPECT_NEAR(j["l2"].get<double>(), std::sqrt(e.sumsq), 1e-6 * std::sqrt(e.sumsq));
    EXPECT_DOUBLE_EQ(j["zero_fraction"].get<double>(), static_cast<double>(e.zeros) / e.n);
    EXPECT_EQ(j["nan_count"].get<uint64_t>(), e.nan);
    EXPECT_EQ(j["inf_count"].get<uint64_t>(), e.inf);
  }
}

TEST_F(TensorFunctionsTest, NanAndInfAreCountedApart) {
  auto j = nlohmann::json::parse(Scalar(fmt::format("SELECT tensor_stats({})",
                                                    Id("blk.0.ffn_gate.weight"))));
  EXPECT_EQ(j["nan_count"], 3);
  EXPECT_EQ(j["inf_count"], 2);
  EXPECT_EQ(j["min"], -2.0);
  EXPECT_EQ(j["max"], 3.5);
  EXPECT_EQ(j["count"], 9);
}

TEST_F(TensorFunctionsTest, StatsAreCachedByContent) {
  EXPECT_EQ(Scalar("SELECT COUNT(*) FROM tensor_stats"), "0");
  int64_t id = Id("blk.0.attn_q.weight");
  std::string first = Scalar(fmt::format("SELECT tensor_stats({})", id));
  EXPECT_EQ(Scalar("SELECT COUNT(*) FROM tensor_stats"), "1");
  EXPECT_EQ(Scalar(fmt::format("SELECT stats FROM main.tensor_stats WHERE sha256 = "
                               "(SELECT sha256 FROM main.component WHERE id = {})", id)),
            first);
  EXPECT_EQ(Scalar(fmt::format("SELECT tensor_stats({})", id)), first);
}

TEST_F(TensorFunctionsTest, ValuesAndRows) {
  const Spec& f32 = specs_[0];
  auto v = nlohmann::json::parse(Scalar(fmt::format("SELECT tensor_values({}, 5, 3)",
                                                    Id(f32.name))));
  ASSERT_EQ(v.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(v[i].get<float>(), f32.values[5 + i]);
  auto row = nlohmann::json::parse(Scalar(fmt::format("SELECT tensor_row({}, 3)", Id(f32.name))));
  ASSERT_EQ(row.size(), 100u);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(row[i].get<float>(), f32.values[300 + i]);
  const Spec& q8 = specs_[3];
  auto qrow = nlohmann::json::parse(Scalar(fmt::format("SELECT tensor_row({}, 1)", Id(q8.name))));
  ASSERT_EQ(qrow.size(), 64u);
  for (int i = 0; i < 64; ++i) ASSERT_EQ(qrow[i].get<float>(), q8.values[64 + i]);
  // Past the end: clipped.
  auto tail = nlohmann::json::parse(Scalar(fmt::format("SELECT tensor_values({}, 995, 100)",
                                                       Id(f32.name))));
  EXPECT_EQ(tail.size(), 5u);
  auto nan = nlohmann::json::parse(Scalar(fmt::format("SELECT tensor_values({}, 0, 2)",
                                                      Id("blk.0.ffn_gate.weight"))));
  EXPECT_TRUE(nan[1].is_null());
}

TEST_F(TensorFunctionsTest, BadArgumentsAreSqlErrors) {
  auto expect_error = [&](const std::string& sql, const std::string& needle) {
    auto r = engine_->Query(sql);
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_NE(std::string(r.status().message()).find(needle), std::string::npos)
        << sql << ": " << r.status();
  };
  expect_error("SELECT tensor_stats(99999999)", "no tensor with id 99999999");
  expect_error("SELECT tensor_stats('x')", "expected a tensor id");
  expect_error("SELECT tensor_stats(id) FROM components WHERE kind = 'model'", "not a tensor");
  expect_error(fmt::format("SELECT tensor_stats({})", Id("blk.0.attn_output.weight")), "Q2_K");
  expect_error(fmt::format("SELECT tensor_row({}, 10)", Id("blk.0.attn_q.weight")), "out of range");
  expect_error(fmt::format("SELECT tensor_values({}, -1, 2)", Id("blk.0.attn_q.weight")), ">= 0");
}

}  // namespace
}  // namespace hart::query

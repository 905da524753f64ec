// Attention kernels (runtime/attention.h): the portable reference and the
// AVX2 kernel against a double-precision attention over random caches, every
// GQA group size and head shape the runtime meets, softcap and sliding
// window, and the bounds: no kernel reads a cache row outside the window.
#include "runtime/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace hart::runtime::internal {
namespace {

// A cache as the runtime lays it out: [position][kv head][dim], and one
// query row of n_kv * group heads.
struct Case {
  int64_t group, head_dim, value_dim;
  int64_t positions;   // the query sits at position positions - 1
  int64_t window = 0;  // 0 = all positions
  double softcap = 0;
};

constexpr int64_t kKvHeads = 3;  // so the stride between positions is not one head's
constexpr int64_t kKvHead = 1;   // the KV head under test

struct Data {
  std::vector<float> q, k, v;
  int64_t k_stride, v_stride;
};

Data MakeData(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Data d;
  d.k_stride = kKvHeads * c.head_dim;
  d.v_stride = kKvHeads * c.value_dim;
  d.q.resize(static_cast<size_t>(c.group * c.head_dim));
  // Queries up to 3 make some softmaxes sharp and others flat.
  for (auto& x : d.q) x = 3.0f * u(rng);
  d.k.resize(static_cast<size_t>(c.positions * d.k_stride));
  d.v.resize(static_cast<size_t>(c.positions * d.v_stride));
  for (auto& x : d.k) x = u(rng);
  for (auto& x : d.v) x = u(rng);
  return d;
}

int64_t Start(const Case& c) { return c.window > 0 ? std::max<int64_t>(0, c.positions - c.window) : 0; }

AttentionArgs Args(const Case& c, const Data& d, float* out) {
  const int64_t start = Start(c);
  AttentionArgs a;
  a.q = d.q.data();
  a.k = d.k.data() + start * d.k_stride + kKvHead * c.head_dim;
  a.v = d.v.data() + start * d.v_stride + kKvHead * c.value_dim;
  a.k_stride = d.k_stride;
  a.v_stride = d.v_stride;
  a.n = c.positions - start;
  a.group = c.group;
  a.head_dim = c.head_dim;
  a.value_dim = c.value_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  a.softcap = c.softcap;
  a.out = out;
  return a;
}

// Attention in double over the whole cache, masking positions outside the window.
std::vector<double> Reference(const Case& c, const Data& d) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(static_cast<float>(c.head_dim)));
  const int64_t start = Start(c);
  std::vector<double> out(static_cast<size_t>(c.group * c.value_dim), 0.0);
  for (int64_t g = 0; g < c.group; ++g) {
    std::vector<double> s;
    for (int64_t j = 0; j < c.positions; ++j) {
      if (j < start) continue;
      double dot = 0;
      for (int64_t i = 0; i < c.head_dim; ++i)
        dot += static_cast<double>(d.q[g * c.head_dim + i]) * d.k[j * d.k_stride + kKvHead * c.head_dim + i];
      dot *= static_cast<double>(static_cast<float>(scale));
      if (c.softcap > 0) dot = c.softcap * std::tanh(dot / c.softcap);
      s.push_back(dot);
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int64_t j = start; j < c.positions; ++j)
      for (int64_t i = 0; i < c.value_dim; ++i)
        out[g * c.value_dim + i] += s[j - start] / sum * d.v[j * d.v_stride + kKvHead * c.value_dim + i];
  }
  return out;
}

// max |got - want| / max |want|.
double RelError(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

std::vector<float> Attend(AttendFn f, const Case& c, const Data& d) {
  std::vector<float> out(static_cast<size_t>(c.group * c.value_dim), std::numeric_limits<float>::quiet_NaN());
  const AttentionArgs a = Args(c, d, out.data());
  std::vector<float> scratch(static_cast<size_t>(AttentionScratchFloats(a)));
  f(a, scratch.data());
  return out;
}

std::string Name(const Case& c) {
  return "group " + std::to_string(c.group) + " head_dim " + std::to_string(c.head_dim) + " value_dim " +
         std::to_string(c.value_dim) + " positions " + std::to_string(c.positions) + " window " +
         std::to_string(c.window) + " softcap " + std::to_string(c.softcap);
}

// Every (group, head_dim, value_dim) the runtime meets or could: llama/qwen
// (64, 128), a head_dim off the vector width (72, 20), value_dim != head_dim
// and below one vector; positions from 1 to 300 around the 8-block edges.
std::vector<Case> Cases() {
  std::vector<Case> cases;
  const int64_t dims[][2] = {{64, 64}, {128, 128}, {72, 72}, {20, 20}, {64, 40}, {20, 5}, {8, 24}};
  const int64_t positions[] = {1, 2, 7, 8, 9, 17, 64, 129, 300};
  for (int64_t group : {1, 2, 4, 8})
    for (const auto& hv : dims)
      for (int64_t p : positions)
        for (int opt = 0; opt < 4; ++opt) {
          Case c{group, hv[0], hv[1], p};
          if (opt & 1) c.softcap = 5.0;  // low enough that tanh bends the sharp scores
          if (opt & 2) c.window = 13;
          cases.push_back(c);
        }
  return cases;
}

void CheckAgainstReference(AttendFn f, double tolerance) {
  uint32_t seed = 1;
  double worst = 0;
  for (const Case& c : Cases()) {
    const Data d = MakeData(c, seed++);
    const double err = RelError(Attend(f, c, d), Reference(c, d));
    worst = std::max(worst, err);
    ASSERT_LE(err, tolerance) << Name(c);
  }
  testing::Test::RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST(AttentionTest, PortableMatchesDoubleReference) { CheckAgainstReference(AttendPortable, 1e-5); }

TEST(AttentionTest, Avx2MatchesDoubleReferenceAndPortable) {
  if (!IsaSupported(Isa::kAvx2) || Avx2Attend() == nullptr) GTEST_SKIP() << "no AVX2+FMA+F16C here";
  CheckAgainstReference(Avx2Attend(), 1e-5);
  // And against the portable kernel directly: only the order of float sums differs.
  uint32_t seed = 1000;
  for (const Case& c : Cases()) {
    const Data d = MakeData(c, seed++);
    const std::vector<float> want = Attend(AttendPortable, c, d);
    const std::vector<double> want_d(want.begin(), want.end());
    ASSERT_LE(RelError(Attend(Avx2Attend(), c, d), want_d), 1e-5) << Name(c);
  }
}

// Cache rows before the window and after the query's position (not yet
// written in a real session, or another layer's) are NaN here: a kernel that
// touched them would give NaN. The result must equal the clean cache's bit for bit.
TEST(AttentionTest, KernelsReadOnlyTheWindow) {
  std::vector<AttendFn> kernels = {AttendPortable};
  if (IsaSupported(Isa::kAvx2) && Avx2Attend() != nullptr) kernels.push_back(Avx2Attend());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (AttendFn f : kernels)
    for (int64_t p : {1, 5, 8, 12, 30})
      for (int64_t window : {0, 4, 9}) {
        const Case c{4, 20, 12, p, window, 0};
        Data d = MakeData(c, static_cast<uint32_t>(p * 10 + window));
        const std::vector<float> clean = Attend(f, c, d);
        // Pad 9 NaN rows after the last position; NaN the rows before the window.
        const int64_t start = Start(c);
        d.k.resize(d.k.size() + 9 * d.k_stride, nan);
        d.v.resize(d.v.size() + 9 * d.v_stride, nan);
        std::fill(d.k.begin(), d.k.begin() + start * d.k_stride, nan);
        std::fill(d.v.begin(), d.v.begin() + start * d.v_stride, nan);
        // Neighbouring KV heads of the attended rows too.
        for (int64_t j = start; j < p; ++j) {
          std::fill_n(d.k.begin() + j * d.k_stride, kKvHead * c.head_dim, nan);
          std::fill_n(d.k.begin() + j * d.k_stride + (kKvHead + 1) * c.head_dim, c.head_dim, nan);
          std::fill_n(d.v.begin() + j * d.v_stride, kKvHead * c.value_dim, nan);
          std::fill_n(d.v.begin() + j * d.v_stride + (kKvHead + 1) * c.value_dim, c.value_dim, nan);
        }
        const std::vector<float> fenced = Attend(f, c, d);
        for (size_t i = 0; i < clean.size(); ++i) {
          ASSERT_FALSE(std::isnan(fenced[i])) << Name(c) << " output " << i;
          ASSERT_EQ(fenced[i], clean[i]) << Name(c) << " output " << i;
        }
      }
}

// A NaN in an attended key or value reaches the outputs that use it, as in
// the reference (the vector max and exp must not hide it).
TEST(AttentionTest, NaNInTheWindowGivesNaN) {
  std::vector<AttendFn> kernels = {AttendPortable};
  if (IsaSupported(Isa::kAvx2) && Avx2Attend() != nullptr) kernels.push_back(Avx2Attend());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (AttendFn f : kernels)
    for (int64_t at : {0, 7, 8, 20}) {
      const Case c{4, 20, 12, 21};
      Data d = MakeData(c, 77);
      d.k[at * d.k_stride + kKvHead * c.head_dim + 3] = nan;  // every head's score at `at`
      for (float x : Attend(f, c, d)) ASSERT_TRUE(std::isnan(x)) << "key NaN at position " << at;
      d = MakeData(c, 77);
      d.v[at * d.v_stride + kKvHead * c.value_dim + 5] = nan;  // element 5 of every head's output
      const std::vector<float> out = Attend(f, c, d);
      for (int64_t g = 0; g < c.group; ++g)
        for (int64_t i = 0; i < c.value_dim; ++i)
          ASSERT_EQ(std::isnan(out[g * c.value_dim + i]), i == 5) << "value NaN at " << at << ", head " << g;
    }
}

TEST(AttentionTest, SelectsThePortableKernelForThePortablePath) {
  EXPECT_EQ(SelectAttend(Isa::kPortable), AttendPortable);
  if (IsaSupported(Isa::kAvx2) && Avx2Attend() != nullptr) {
    EXPECT_EQ(SelectAttend(Isa::kAvx2), Avx2Attend());
  }
  // HART_KERNELS=portable caps ActiveIsa, so the runtime then runs the reference.
  const char* env = std::getenv("HART_KERNELS");
  if (env != nullptr && std::string(env) == "portable") {
    EXPECT_EQ(SelectAttend(ActiveIsa()), AttendPortable);
  }
}

}  // namespace
}  // namespace hart::runtime::internal

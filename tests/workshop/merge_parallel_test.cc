// TensorMerger on a thread pool gives the same bits as on the calling
// thread alone, for every method, whatever the number of threads: the
// parts' histograms, slerp's sums and ties' budget of equal magnitudes
// (kept in index order) must not depend on which thread ran what.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <random>

#include "core/thread_pool.h"
#include "workshop/merge_math.h"

namespace hart::workshop {
namespace {

// Inputs with many repeated magnitudes (so ties' threshold is a value that
// occurs thousands of times, across parts and blocks) and random signs.
std::vector<std::vector<float>> Inputs(size_t n_inputs, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<float>> in(n_inputs, std::vector<float>(n));
  for (size_t e = 0; e < n; ++e) in[0][e] = static_cast<float>(rng() % 64) / 64.0f - 0.5f;
  for (size_t i = 1; i < n_inputs; ++i)
    for (size_t e = 0; e < n; ++e) {
      const float mag = static_cast<float>(rng() % 16) / 8.0f;  // 16 distinct magnitudes
      in[i][e] = in[0][e] + ((rng() & 1) ? mag : -mag);
    }
  return in;
}

// The merge in blocks of `block` elements, observe passes first.
std::vector<uint32_t> MergeBits(const MergeSettings& s, const std::vector<std::vector<float>>& in,
                          size_t block, ThreadPool* pool) {
  const size_t n = in[0].size();
  TensorMerger m(s, in.size(), n);
  auto ptrs = [&](size_t off) {
    std::vector<const float*> p;
    for (const auto& v : in) p.push_back(v.data() + off);
    return p;
  };
  for (int pass = 0; pass < m.observe_passes(); ++pass)
    for (size_t off = 0; off < n; off += block) m.Observe(pass, off, ptrs(off), std::min(block, n - off), pool);
  std::vector<float> out(n);
  for (size_t off = 0; off < n; off += block)
    m.Compute(off, ptrs(off), std::min(block, n - off), out.data() + off, pool);
  std::vector<uint32_t> bits(n);
  std::memcpy(bits.data(), out.data(), n * 4);
  return bits;
}

MergeSettings Settings(MergeMethod method) {
  MergeSettings s;
  s.method = method;
  s.base = 0;
  s.weight = {1.0, 0.6, 0.45};
  s.density = {1.0, 0.37, 0.81};
  s.normalize = DefaultNormalize(method);
  s.rescale = DefaultRescale(method);
  s.lambda = 0.9;
  s.t = 0.3;
  s.seed = 11;
  s.name = "blk.0.ffn_up.weight";
  return s;
}

TEST(MergeParallel, SameBitsWhateverTheThreads) {
  ThreadPool two(2), three(3), five(5);
  const size_t n = 70000;  // not a multiple of the block: a short last block
  for (MergeMethod method : {MergeMethod::kLinear, MergeMethod::kSlerp, MergeMethod::kTaskArithmetic,
                             MergeMethod::kTies, MergeMethod::kDareLinear, MergeMethod::kDareTies}) {
    const size_t n_inputs = method == MergeMethod::kSlerp ? 2 : 3;
    const auto in = Inputs(n_inputs, n, 7);
    const MergeSettings s = Settings(method);
    const std::vector<uint32_t> serial = MergeBits(s, in, 16384, nullptr);
    EXPECT_EQ(MergeBits(s, in, 16384, &two), serial) << MethodName(method);
    EXPECT_EQ(MergeBits(s, in, 16384, &three), serial) << MethodName(method);
    EXPECT_EQ(MergeBits(s, in, 16384, &five), serial) << MethodName(method);
    // Blocks smaller than the parts' 256-element granularity, and one block
    // holding the whole tensor: the same bits too (none of it depends on
    // the split).
    EXPECT_EQ(MergeBits(s, in, 512, &three), serial) << MethodName(method);
    EXPECT_EQ(MergeBits(s, in, n, &two), serial) << MethodName(method);
  }
}

TEST(MergeParallel, TiesKeepsExactlyDensityTimesNEqualMagnitudesInIndexOrder) {
  // One model over a zero base, magnitudes 0..15 / 8: the threshold falls
  // inside a run of thousands of equal magnitudes spread over every part;
  // exactly k deltas survive and the equal ones kept are the first in
  // index order.
  ThreadPool three(3);
  const size_t n = 50000;
  std::vector<std::vector<float>> in = Inputs(2, n, 3);
  std::fill(in[0].begin(), in[0].end(), 0.0f);
  for (size_t e = 0; e < n; ++e) in[1][e] = static_cast<float>((e * 7919) % 16) / 8.0f;
  MergeSettings s = Settings(MergeMethod::kTies);
  s.weight = {1, 1};
  s.density = {1, 0.3};
  s.lambda = 1.0;
  const std::vector<uint32_t> bits = MergeBits(s, in, 8192, &three);
  const uint64_t k = static_cast<uint64_t>(0.3 * n);
  uint64_t kept = 0;
  float threshold = 100;
  for (size_t e = 0; e < n; ++e) {
    const float v = std::bit_cast<float>(bits[e]);
    if (v != 0) {
      ++kept;
      EXPECT_EQ(v, in[1][e]);
      threshold = std::min(threshold, v);
    }
  }
  EXPECT_EQ(kept, k);
  // Every element above the threshold kept; of those equal to it, a prefix.
  bool dropped_equal = false;
  for (size_t e = 0; e < n; ++e) {
    const float v = std::bit_cast<float>(bits[e]);
    if (in[1][e] > threshold) {
      EXPECT_EQ(v, in[1][e]) << e;
    } else if (in[1][e] == threshold) {
      if (v == 0) dropped_equal = true;
      else EXPECT_FALSE(dropped_equal) << "equal magnitude kept after one was dropped, at " << e;
    }
  }
  EXPECT_TRUE(dropped_equal);
}

}  // namespace
}  // namespace hart::workshop

#include "query/tensor_stats.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "fmt/format.h"

namespace hart::query {
namespace {

struct Block {
  uint64_t finite = 0, zeros = 0, nan = 0, inf = 0;
  double sum = 0, m2 = 0;
  float mn = INFINITY, mx = -INFINITY;
};

void ScalarBlock(std::span<const float> v, Block* b) {
  for (float x : v) {
    if (std::isnan(x)) { ++b->nan; continue; }
    if (std::isinf(x)) { ++b->inf; continue; }
    ++b->finite;
    b->zeros += x == 0.0f;
    b->sum += x;
    b->mn = std::min(b->mn, x);
    b->mx = std::max(b->mx, x);
  }
  if (b->finite == 0) return;
  const double mean = b->sum / static_cast<double>(b->finite);
  for (float x : v)
    if (std::isfinite(x)) b->m2 += (x - mean) * (x - mean);
}

double HSum(__m256d v) __attribute__((target("avx2")));
double HSum(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Returns false (block untouched) when the block holds NaN or Inf; the
// scalar path then classifies each value. Sums are kept in double lanes.
__attribute__((target("avx2,fma"))) bool Avx2Block(std::span<const float> v, Block* b) {
  const size_t n = v.size(), n8 = n & ~size_t{7};
  const float* p = v.data();
  __m256 mn = _mm256_set1_ps(INFINITY), mx = _mm256_set1_ps(-INFINITY);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
  const __m256 zero = _mm256_setzero_ps();
  uint64_t zeros = 0;
  for (size_t i = 0; i < n8; i += 8) {
    __m256 x = _mm256_loadu_ps(p + i);
    // x - x is 0 for finite x, NaN for NaN and Inf.
    if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(x, x), zero, _CMP_EQ_OQ)) != 0xFF)
      return false;
    zeros += static_cast<uint64_t>(__builtin_popcount(
        static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(x, zero, _CMP_EQ_OQ)))));
    mn = _mm256_min_ps(mn, x);
    mx = _mm256_max_ps(mx, x);
    __m256d x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
    __m256d x1 = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
    s0 = _mm256_add_pd(s0, x0);
    s1 = _mm256_add_pd(s1, x1);
    q0 = _mm256_fmadd_pd(x0, x0, q0);
    q1 = _mm256_fmadd_pd(x1, x1, q1);
  }
  for (size_t i = n8; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  alignas(32) float lo[8], hi[8];
  _mm256_store_ps(lo, mn);
  _mm256_store_ps(hi, mx);
  for (int k = 0; k < 8; ++k) b->mn = std::min(b->mn, lo[k]), b->mx = std::max(b->mx, hi[k]);
  double sum = HSum(_mm256_add_pd(s0, s1));
  double sumsq = HSum(_mm256_add_pd(q0, q1));
  for (size_t i = n8; i < n; ++i) {
    sum += p[i];
    sumsq += static_cast<double>(p[i]) * p[i];
    zeros += p[i] == 0.0f;
    b->mn = std::min(b->mn, p[i]);
    b->mx = std::max(b->mx, p[i]);
  }
  b->finite = n;
  b->zeros = zeros;
  b->sum = sum;
  if (n == 0) return true;
  // One pass: within a block of a few thousand values, float inputs and
  // double sums keep sumsq - sum^2/n exact far beyond float precision.
  b->m2 = std::max(0.0, sumsq - sum * sum / static_cast<double>(n));
  return true;
}

bool HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
}

std::string Num(double x) { return std::isfinite(x) ? fmt::format("{}", x) : "null"; }

}  // namespace

void StatsAccumulator::Add(std::span<const float> values) {
  Block b;
  if (!HaveAvx2() || !Avx2Block(values, &b)) {
    b = Block{};
    ScalarBlock(values, &b);
  }
  count_ += values.size();
  zeros_ += b.zeros;
  nan_ += b.nan;
  inf_ += b.inf;
  if (b.finite > 0) Merge(b.finite, b.sum / static_cast<double>(b.finite), b.m2, b.mn, b.mx);
}

void StatsAccumulator::Merge(uint64_t n, double mean, double m2, float mn, float mx) {
  if (finite_ == 0) {
    finite_ = n, mean_ = mean, m2_ = m2, min_ = mn, max_ = mx;
    return;
  }
  const double na = static_cast<double>(finite_), nb = static_cast<double>(n);
  const double delta = mean - mean_, total = na + nb;
  mean_ += delta * nb / total;
  m2_ += m2 + delta * delta * na * nb / total;
  finite_ += n;
  min_ = std::min(min_, mn);
  max_ = std::max(max_, mx);
}

std::string StatsAccumulator::ToJson(std::string_view dtype) const {
  const bool any = finite_ > 0;
  const double nan = std::nan("");
  const double n = static_cast<double>(finite_);
  const double l2 = any ? std::sqrt(m2_ + n * mean_ * mean_) : nan;
  const double stddev = any ? std::sqrt(m2_ / n) : nan;  // population std
  const double abs_max = any ? std::max(std::fabs(min_), std::fabs(max_)) : nan;
  const double zf = count_ ? static_cast<double>(zeros_) / static_cast<double>(count_) : 0;
  return fmt::format(
      "{{\"min\":{},\"max\":{},\"mean\":{},\"std\":{},\"l2\":{},\"abs_max\":{},"
      "\"zero_fraction\":{},\"nan_count\":{},\"inf_count\":{},\"count\":{},\"dtype\":\"{}\"}}",
      any ? Num(min_) : "null", any ? Num(max_) : "null", any ? Num(mean_) : "null", Num(stddev),
      Num(l2), Num(abs_max), Num(zf), nan_, inf_, count_, dtype);
}

}  // namespace hart::query

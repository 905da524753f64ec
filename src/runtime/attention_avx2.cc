// AVX2 + FMA attention for one (row, KV head); this file alone is compiled
// with those flags (runtime.cmake) and only called after a CPUID check.
//
// q.k: eight positions at a time, one accumulator per position, the eight
// reduced together by a transposing hadd tree; the block at the end of the
// range repeats its last position rather than reading past it, so every
// score is summed in the same order wherever its position falls. The value
// sum keeps up to four heads' accumulators for 16 value floats (one cache
// line) in registers while it walks the positions, so each value row is read
// once for the whole group. Softmax stays scalar std::exp (see
// docs/PERFORMANCE.md, "Attention kernel").
#include "runtime/attention.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace hart::runtime::internal {
namespace {

// Lanes [0, r) set, for a partial vector of r < 8 floats.
inline __m256i LaneMask(int64_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Lane t of the result = the sum of a[t]'s eight lanes.
inline __m256 Reduce8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// out[t] = scale * (q . rows[t]) for t < 8, over hd floats (the last hd % 8
// through `tail`).
inline void Dots8(const float* q, const float* const* rows, int64_t hd, __m256i tail, __m256 scale, float* out) {
  __m256 acc[8];
  for (auto& x : acc) x = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= hd; i += 8) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    for (int t = 0; t < 8; ++t) acc[t] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[t] + i), acc[t]);
  }
  if (i < hd) {
    const __m256 qv = _mm256_maskload_ps(q + i, tail);
    for (int t = 0; t < 8; ++t) acc[t] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(rows[t] + i, tail), acc[t]);
  }
  _mm256_storeu_ps(out, _mm256_mul_ps(Reduce8(acc), scale));
}

// out[g][c..c+width) = inv[g] * sum_j e[g * n + j] * v_j[c..c+width) for the
// G heads g, width <= 16.
template <int G>
void ValueChunk(const float* e, int64_t n, const float* v, int64_t v_stride, int64_t c, int64_t width,
                const float* inv, float* out, int64_t out_stride) {
  __m256 acc[G][2];
  for (auto& h : acc) h[0] = h[1] = _mm256_setzero_ps();
  if (width == 16) {
    for (int64_t j = 0; j < n; ++j) {
      const float* vj = v + j * v_stride + c;
      const __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8);
      for (int g = 0; g < G; ++g) {
        const __m256 w = _mm256_broadcast_ss(e + g * n + j);
        acc[g][0] = _mm256_fmadd_ps(w, v0, acc[g][0]);
        acc[g][1] = _mm256_fmadd_ps(w, v1, acc[g][1]);
      }
    }
    for (int g = 0; g < G; ++g) {
      const __m256 s = _mm256_set1_ps(inv[g]);
      _mm256_storeu_ps(out + g * out_stride + c, _mm256_mul_ps(acc[g][0], s));
      _mm256_storeu_ps(out + g * out_stride + c + 8, _mm256_mul_ps(acc[g][1], s));
    }
    return;
  }
  const __m256i m0 = LaneMask(std::min<int64_t>(width, 8)), m1 = LaneMask(std::max<int64_t>(width - 8, 0));
  for (int64_t j = 0; j < n; ++j) {
    const float* vj = v + j * v_stride + c;
    const __m256 v0 = _mm256_maskload_ps(vj, m0), v1 = _mm256_maskload_ps(vj + 8, m1);
    for (int g = 0; g < G; ++g) {
      const __m256 w = _mm256_broadcast_ss(e + g * n + j);
      acc[g][0] = _mm256_fmadd_ps(w, v0, acc[g][0]);
      acc[g][1] = _mm256_fmadd_ps(w, v1, acc[g][1]);
    }
  }
  for (int g = 0; g < G; ++g) {
    const __m256 s = _mm256_set1_ps(inv[g]);
    _mm256_maskstore_ps(out + g * out_stride + c, m0, _mm256_mul_ps(acc[g][0], s));
    _mm256_maskstore_ps(out + g * out_stride + c + 8, m1, _mm256_mul_ps(acc[g][1], s));
  }
}

void Attend(const AttentionArgs& a, float* scratch) {
  const int64_t n = a.n, hd = a.head_dim, vd = a.value_dim;
  const __m256i tail = LaneMask(hd % 8);
  const __m256 scale = _mm256_set1_ps(a.scale);
  // Scores of head g at scratch[g * n, (g + 1) * n).
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    const float* rows[8];
    for (int64_t t = 0; t < 8; ++t) rows[t] = a.k + std::min(j0 + t, n - 1) * a.k_stride;
    const bool whole = j0 + 8 <= n;
    for (int64_t g = 0; g < a.group; ++g) {
      float* dst = scratch + g * n + j0;
      if (whole) {
        Dots8(a.q + g * hd, rows, hd, tail, scale, dst);
      } else {
        float part[8];
        Dots8(a.q + g * hd, rows, hd, tail, scale, part);
        std::copy(part, part + (n - j0), dst);
      }
    }
  }
  // Softmax per head, left unnormalized: the value sum is scaled by 1 / sum.
  constexpr int64_t kMaxGroup = 64;
  float inv_buf[kMaxGroup];
  std::vector<float> inv_heap;
  float* inv = inv_buf;
  if (a.group > kMaxGroup) {
    inv_heap.resize(static_cast<size_t>(a.group));
    inv = inv_heap.data();
  }
  for (int64_t g = 0; g < a.group; ++g) {
    float* s = scratch + g * n;
    if (a.softcap > 0)
      for (int64_t j = 0; j < n; ++j) s[j] = static_cast<float>(a.softcap * std::tanh(s[j] / a.softcap));
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
    float sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
    inv[g] = 1.0f / sum;
  }
  for (int64_t c = 0; c < vd; c += 16) {
    const int64_t width = std::min<int64_t>(16, vd - c);
    for (int64_t g0 = 0; g0 < a.group; g0 += 4) {
      const float* e = scratch + g0 * n;
      float* out = a.out + g0 * vd;
      switch (std::min<int64_t>(4, a.group - g0)) {
        case 4: ValueChunk<4>(e, n, a.v, a.v_stride, c, width, inv + g0, out, vd); break;
        case 3: ValueChunk<3>(e, n, a.v, a.v_stride, c, width, inv + g0, out, vd); break;
        case 2: ValueChunk<2>(e, n, a.v, a.v_stride, c, width, inv + g0, out, vd); break;
        default: ValueChunk<1>(e, n, a.v, a.v_stride, c, width, inv + g0, out, vd); break;
      }
    }
  }
}

}  // namespace

AttendFn Avx2Attend() { return Attend; }

}  // namespace hart::runtime::internal

#else

namespace hart::runtime::internal {
AttendFn Avx2Attend() { return nullptr; }
}  // namespace hart::runtime::internal

#endif

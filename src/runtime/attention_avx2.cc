// AVX2 + FMA attention for one (row, KV head); this file alone is compiled
// with those flags (runtime.cmake) and only called after a CPUID check.
//
// q.k: eight positions at a time, one accumulator per position, the eight
// reduced together by a transposing hadd tree; the block at the end of the
// range repeats its last position rather than reading past it, so every
// score is summed in the same order wherever its position falls; key rows
// are prefetched 32 positions ahead. The value sum keeps up to four heads'
// accumulators for 16 value floats (one cache line) in registers while it
// walks a block of 32 positions, chunk after chunk, so each value row comes
// from memory once for the whole group and the block's later chunks hit L1;
// the next block is prefetched during the first chunk. The softmax's max and
// exp are vectorized too: scalar std::exp was a third of the kernel's time at
// context 128 (kernels_bench --attention, docs/PERFORMANCE.md "Attention
// kernel").
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

// exp(x) for x <= 0 (a score minus its head's maximum), within 1 ulp of
// std::exp: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so r is
// exact), a degree-6 polynomial for exp(r) (Cephes' expf coefficients), 2^n
// through the exponent bits. Below -87 (2^n would leave the normal range)
// the result is 0, as the weight is then nothing against the maximum's 1; NaN
// stays NaN.
inline __m256 ExpNonPositive(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(lo, x);  // NaN in x is kept (max returns its second operand)
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

// The largest of s[0, n). A NaN may or may not survive (max keeps its second
// operand), but a NaN score makes its head's sum, and so its output, NaN
// either way, as in the reference.
inline float Max(const float* s, int64_t n) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 m = ninf;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + j));
  if (j < n) {
    const __m256i mask = LaneMask(n - j);
    m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, _mm256_maskload_ps(s + j, mask), _mm256_castsi256_ps(mask)));
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// s[j] = exp(s[j] - mx) for j < n; returns their sum (lanes summed in a fixed order).
inline float ExpAndSum(float* s, int64_t n, float mx) {
  const __m256 m = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = ExpNonPositive(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (j < n) {
    const __m256i mask = LaneMask(n - j);
    const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(mask),
                                   ExpNonPositive(_mm256_sub_ps(_mm256_maskload_ps(s + j, mask), m)));
    _mm256_maskstore_ps(s + j, mask, e);
    sum = _mm256_add_ps(sum, e);
  }
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
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

// Positions whose value rows one ValueChunk pass walks: a block's rows
// (32 x value_dim floats, 8 KiB at 64) stay in L1 for the chunks after the
// first, and the first pass prefetches the next block's rows.
constexpr int64_t kValueBlock = 32;
// How far ahead (positions) the q.k loop prefetches key rows.
constexpr int64_t kKeyAhead = 32;

inline void PrefetchRow(const float* row, int64_t lines) {
  for (int64_t i = 0; i < lines; ++i) _mm_prefetch(reinterpret_cast<const char*>(row + i * 16), _MM_HINT_T0);
}

// out[g][c..c+width) += sum_j e[g * e_stride + j] * v_j[c..c+width) over the
// m positions of a block, for the G heads g, width <= 16; first: out starts
// at 0 instead. Each out element's sum runs in position order whatever the
// blocking. pf (when set): rows to prefetch, pf_lines cache lines each.
template <int G>
void ValueChunk(const float* e, int64_t e_stride, const float* v, int64_t v_stride, int64_t m, int64_t c,
                int64_t width, bool first, float* out, int64_t out_stride, const float* pf, int64_t pf_lines) {
  const __m256i m0 = LaneMask(std::min<int64_t>(width, 8)), m1 = LaneMask(std::max<int64_t>(width - 8, 0));
  const bool whole = width == 16;
  __m256 acc[G][2];
  for (int g = 0; g < G; ++g) {
    float* o = out + g * out_stride + c;
    if (first) {
      acc[g][0] = acc[g][1] = _mm256_setzero_ps();
    } else if (whole) {
      acc[g][0] = _mm256_loadu_ps(o), acc[g][1] = _mm256_loadu_ps(o + 8);
    } else {
      acc[g][0] = _mm256_maskload_ps(o, m0), acc[g][1] = _mm256_maskload_ps(o + 8, m1);
    }
  }
  auto step = [&](int64_t j, __m256 v0, __m256 v1) {
    for (int g = 0; g < G; ++g) {
      const __m256 w = _mm256_broadcast_ss(e + g * e_stride + j);
      acc[g][0] = _mm256_fmadd_ps(w, v0, acc[g][0]);
      acc[g][1] = _mm256_fmadd_ps(w, v1, acc[g][1]);
    }
  };
  if (whole) {
    for (int64_t j = 0; j < m; ++j) {
      if (pf != nullptr) PrefetchRow(pf + j * v_stride, pf_lines);
      const float* vj = v + j * v_stride + c;
      step(j, _mm256_loadu_ps(vj), _mm256_loadu_ps(vj + 8));
    }
  } else {
    for (int64_t j = 0; j < m; ++j) {
      if (pf != nullptr) PrefetchRow(pf + j * v_stride, pf_lines);
      const float* vj = v + j * v_stride + c;
      step(j, _mm256_maskload_ps(vj, m0), _mm256_maskload_ps(vj + 8, m1));
    }
  }
  for (int g = 0; g < G; ++g) {
    float* o = out + g * out_stride + c;
    if (whole) {
      _mm256_storeu_ps(o, acc[g][0]), _mm256_storeu_ps(o + 8, acc[g][1]);
    } else {
      _mm256_maskstore_ps(o, m0, acc[g][0]), _mm256_maskstore_ps(o + 8, m1, acc[g][1]);
    }
  }
}

void Attend(const AttentionArgs& a, float* scratch) {
  const int64_t n = a.n, hd = a.head_dim, vd = a.value_dim;
  const __m256i tail = LaneMask(hd % 8);
  const __m256 scale = _mm256_set1_ps(a.scale);
  // Scores of head g at scratch[g * n, (g + 1) * n).
  const int64_t k_lines = (hd * 4 + 63) / 64, v_lines = (vd * 4 + 63) / 64;
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    for (int64_t t = j0 + kKeyAhead; t < std::min(j0 + kKeyAhead + 8, n); ++t)
      PrefetchRow(a.k + t * a.k_stride, k_lines);
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
    inv[g] = 1.0f / ExpAndSum(s, n, Max(s, n));
  }
  for (int64_t j0 = 0; j0 < n; j0 += kValueBlock) {
    const int64_t m = std::min(kValueBlock, n - j0);
    // The next block's rows (those that exist) are prefetched during the first chunk.
    const int64_t next = std::min(kValueBlock, std::max<int64_t>(n - j0 - kValueBlock, 0));
    for (int64_t c = 0; c < vd; c += 16) {
      const int64_t width = std::min<int64_t>(16, vd - c);
      for (int64_t g0 = 0; g0 < a.group; g0 += 4) {
        const float* e = scratch + g0 * n + j0;
        const float* v = a.v + j0 * a.v_stride;
        float* out = a.out + g0 * vd;
        const float* pf = c == 0 && g0 == 0 && next == kValueBlock ? v + kValueBlock * a.v_stride : nullptr;
        const bool first = j0 == 0;
        switch (std::min<int64_t>(4, a.group - g0)) {
          case 4: ValueChunk<4>(e, n, v, a.v_stride, m, c, width, first, out, vd, pf, v_lines); break;
          case 3: ValueChunk<3>(e, n, v, a.v_stride, m, c, width, first, out, vd, pf, v_lines); break;
          case 2: ValueChunk<2>(e, n, v, a.v_stride, m, c, width, first, out, vd, pf, v_lines); break;
          default: ValueChunk<1>(e, n, v, a.v_stride, m, c, width, first, out, vd, pf, v_lines); break;
        }
      }
    }
  }
  for (int64_t g = 0; g < a.group; ++g) {
    const __m256 s = _mm256_set1_ps(inv[g]);
    float* o = a.out + g * vd;
    int64_t i = 0;
    for (; i + 8 <= vd; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(o + i), s));
    for (; i < vd; ++i) o[i] *= inv[g];
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

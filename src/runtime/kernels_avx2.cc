// AVX2 + FMA + F16C row dots; this file alone is compiled with those flags
// (runtime.cmake) and is only called after a CPUID check.
//
// Quantized weights meet int8 activations in integer SIMD: maddubs multiplies
// unsigned by signed bytes and adds pairs to int16 (no saturation here: the
// weight operand is at most 63, or |8| and 128 after the sign trick, and the
// activations never hold -128), madd widens to int32. Each kernel unpacks a
// weight block once and applies it to up to 4 tokens, so prefill reads each
// weight row once per 4 tokens from cache instead of re-unpacking it.
#include "runtime/kernels_internal.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include <type_traits>

#include "runtime/quant_blocks.h"

namespace hart::runtime::internal {
namespace {

constexpr int kMaxTokens = 4;

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float Half(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i Load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Signed int8 a . b in groups of four, as int32 x 8. |a| <= 128 and b in
// [-127, 127] keep maddubs's int16 pairs below saturation.
inline __m256i DotI8(__m256i abs_a, __m256i a, __m256i b) {
  const __m256i prod = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(b, a));
  return _mm256_madd_epi16(prod, _mm256_set1_epi16(1));
}

// All eight 6-bit scales and mins of a Q4_K/Q5_K block at once, with 32-bit
// masks (the same packing ScaleMinK4 decodes one sub-block at a time): bytes
// 0-3 hold sc0-3 and m0-3 live in bytes 4-7 (low 6 bits each); sc4-7 and
// m4-7 take their low nibbles from bytes 8-11 and their top two bits from the
// top of bytes 0-3 and 4-7.
inline void UnpackScalesK4(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  uint32_t u[3];
  __builtin_memcpy(u, s, 12);
  constexpr uint32_t k6 = 0x3F3F3F3F, k4 = 0x0F0F0F0F, k2 = 0x03030303;
  const uint32_t sc_lo = u[0] & k6;
  const uint32_t sc_hi = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);
  const uint32_t m_lo = u[1] & k6;
  const uint32_t m_hi = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);
  __builtin_memcpy(sc, &sc_lo, 4);
  __builtin_memcpy(sc + 4, &sc_hi, 4);
  __builtin_memcpy(mn, &m_lo, 4);
  __builtin_memcpy(mn + 4, &m_hi, 4);
}

// Float weight types: Load(w, i) gives 8 weights from element i as floats.
template <typename Load>
struct FloatKernel {
  template <int N>
  static void Run(const uint8_t* w, const uint8_t* x, size_t xs, int64_t cols, float* out,
                  size_t os) {
    const float* xf[N];
    for (int k = 0; k < N; ++k) xf[k] = reinterpret_cast<const float*>(x + k * xs);
    __m256 acc0[N], acc1[N];
    for (int k = 0; k < N; ++k) acc0[k] = acc1[k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) {
      const __m256 w0 = Load::Eight(w, i), w1 = Load::Eight(w, i + 8);
      for (int k = 0; k < N; ++k) {
        acc0[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xf[k] + i), acc0[k]);
        acc1[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xf[k] + i + 8), acc1[k]);
      }
    }
    for (int k = 0; k < N; ++k) {
      float s = Hsum(_mm256_add_ps(acc0[k], acc1[k]));
      for (int64_t j = i; j < cols; ++j) s += Load::One(w, j) * xf[k][j];
      out[k * os] = s;
    }
  }
};

struct LoadF32 {
  static __m256 Eight(const uint8_t* w, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + i);
  }
  static float One(const uint8_t* w, int64_t i) {
    float v;
    __builtin_memcpy(&v, w + 4 * i, 4);
    return v;
  }
};

struct LoadF16 {
  static __m256 Eight(const uint8_t* w, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
  }
  static float One(const uint8_t* w, int64_t i) {
    uint16_t h;
    __builtin_memcpy(&h, w + 2 * i, 2);
    return Half(h);
  }
};

struct LoadBF16 {
  static __m256 Eight(const uint8_t* w, int64_t i) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  static float One(const uint8_t* w, int64_t i) {
    uint16_t h;
    __builtin_memcpy(&h, w + 2 * i, 2);
    return BF16ToF32(h);
  }
};

// Q4_0 / Q8_0 against ActBlockQ8: one int8 dot and one scale per 32.
template <bool kQ4>
struct Q8Kernel {
  template <int N>
  static void Run(const uint8_t* w, const uint8_t* x, size_t xs, int64_t cols, float* out,
                  size_t os) {
    const ActBlockQ8* xb[N];
    for (int k = 0; k < N; ++k) xb[k] = reinterpret_cast<const ActBlockQ8*>(x + k * xs);
    // Two accumulator chains per token (even and odd blocks): one FMA chain
    // would cap a decode matvec at one block per FMA latency.
    __m256 acc0[N], acc1[N];
    for (int k = 0; k < N; ++k) acc0[k] = acc1[k] = _mm256_setzero_ps();
    const int64_t nb = cols / kQK;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
      Block<N>(w, xb, i, acc0);
      Block<N>(w, xb, i + 1, acc1);
    }
    if (i < nb) Block<N>(w, xb, i, acc0);
    for (int k = 0; k < N; ++k) out[k * os] = Hsum(_mm256_add_ps(acc0[k], acc1[k]));
  }

  template <int N>
  static inline __attribute__((always_inline)) void Block(const uint8_t* w,
                                                          const ActBlockQ8* const* xb, int64_t i,
                                                          __m256* acc) {
    __m256i q;
    float wd;
    if constexpr (kQ4) {
      const auto& b = reinterpret_cast<const BlockQ4_0*>(w)[i];
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
      q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
      q = _mm256_sub_epi8(q, _mm256_set1_epi8(8));
      wd = Half(b.d);
    } else {
      const auto& b = reinterpret_cast<const BlockQ8_0*>(w)[i];
      q = Load32(b.qs);
      wd = Half(b.d);
    }
    const __m256i abs_q = _mm256_sign_epi8(q, q);
    for (int k = 0; k < N; ++k) {
      const __m256i p = DotI8(abs_q, q, Load32(xb[k][i].qs));
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xb[k][i].d), _mm256_cvtepi32_ps(p), acc[k]);
    }
  }
};

// Decode of Q4_0 / Q8_0 over up to kRowsPerDot rows at once. Per block the
// activation load (and, for Q4_0, 8 * pair sums of the activations) and the
// f16 -> f32 conversion of the rows' scales (one vcvtph2ps for all rows) are
// shared. Q4_0 nibbles stay unsigned: maddubs(u, x) - maddubs(8, x) is
// (u - 8) . x pairwise in int16 (|u x| pairs <= 3810, 8 x pairs <= 2032),
// exactly the int16 pairs of Q8Kernel's sign trick, and the float steps
// (scale wd * xd, even/odd accumulator chains, final Hsum) are Q8Kernel's
// too, so every row's result is bit-identical to RowDot's.
constexpr size_t kPrefetchBytes = 768;

template <bool kQ4>
struct Q8Rows {
  template <int R>
  static void Run(const uint8_t* w, size_t row_bytes, const ActBlockQ8* xb, int64_t nb, float* out) {
    __m256 acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    using B = std::conditional_t<kQ4, BlockQ4_0, BlockQ8_0>;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
      // R interleaved row streams defeat the hardware prefetchers once the
      // weights come from DRAM (measured: slower than one row at a time), so
      // each row asks for its line kPrefetchBytes ahead.
      for (int r = 0; r < R; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(w + r * row_bytes + i * sizeof(B) + kPrefetchBytes),
                     _MM_HINT_T0);
      Block<R>(w, row_bytes, xb, i, acc0);
      Block<R>(w, row_bytes, xb, i + 1, acc1);
    }
    if (i < nb) Block<R>(w, row_bytes, xb, i, acc0);
    for (int r = 0; r < R; ++r) out[r] = Hsum(_mm256_add_ps(acc0[r], acc1[r]));
  }

  template <int R>
  static inline __attribute__((always_inline)) void Block(const uint8_t* w, size_t row_bytes,
                                                          const ActBlockQ8* xb, int64_t i, __m256* acc) {
    using B = std::conditional_t<kQ4, BlockQ4_0, BlockQ8_0>;
    const B* blk[R];
    for (int r = 0; r < R; ++r) blk[r] = reinterpret_cast<const B*>(w + r * row_bytes) + i;
    // The rows' f16 scales side by side, converted and multiplied by the
    // activation scale in one go.
    uint64_t packed = 0;
    for (int r = 0; r < R; ++r) {
      uint16_t d;  // the f16 scale is the first field of both block types
      __builtin_memcpy(&d, reinterpret_cast<const uint8_t*>(blk[r]), 2);
      packed |= static_cast<uint64_t>(d) << (16 * r);
    }
    alignas(16) float scale[4];
    _mm_store_ps(scale, _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<int64_t>(packed))),
                                   _mm_set1_ps(xb[i].d)));
    const __m256i x = Load32(xb[i].qs);
    const __m256i ones = _mm256_set1_epi16(1);
    if constexpr (kQ4) {
      const __m256i corr = _mm256_maddubs_epi16(_mm256_set1_epi8(8), x);
      const __m256i shift = _mm256_set_epi64x(4, 4, 0, 0);
      const __m256i low4 = _mm256_set1_epi8(0x0F);
      for (int r = 0; r < R; ++r) {
        const __m256i raw =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[r]->qs)));
        const __m256i u = _mm256_and_si256(_mm256_srlv_epi64(raw, shift), low4);
        const __m256i p = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(u, x), corr), ones);
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(scale[r]), _mm256_cvtepi32_ps(p), acc[r]);
      }
    } else {
      for (int r = 0; r < R; ++r) {
        const __m256i q = Load32(blk[r]->qs);
        const __m256i p = DotI8(_mm256_sign_epi8(q, q), q, x);
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(scale[r]), _mm256_cvtepi32_ps(p), acc[r]);
      }
    }
  }
};

template <typename K>
void RowsDot(const void* w, size_t row_bytes, int n_rows, const void* x, int64_t cols, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const ActBlockQ8*>(x);
  const int64_t nb = cols / kQK;
  switch (n_rows) {
    case 4: K::template Run<4>(wb, row_bytes, xb, nb, out); break;
    case 3: K::template Run<3>(wb, row_bytes, xb, nb, out); break;
    case 2: K::template Run<2>(wb, row_bytes, xb, nb, out); break;
    case 1: K::template Run<1>(wb, row_bytes, xb, nb, out); break;
    default: break;
  }
}

// Q4_K / Q5_K against ActBlockQ8K. Per super-block the integer sum over the
// eight sub-blocks (scale folded in by madd) becomes one float FMA; the mins
// term uses the activation block sums.
template <bool kQ5, typename Block>
struct Q45KKernel {
  template <int N>
  static void Run(const uint8_t* w, const uint8_t* x, size_t xs, int64_t cols, float* out,
                  size_t os) {
    const ActBlockQ8K* xb[N];
    for (int k = 0; k < N; ++k) xb[k] = reinterpret_cast<const ActBlockQ8K*>(x + k * xs);
    __m256 acc[N];
    __m128 acc_min[N];
    for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps(), acc_min[k] = _mm_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bit0 = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < cols / kQKK; ++i) {
      const Block& b = reinterpret_cast<const Block*>(w)[i];
      uint8_t sc[8], mn[8];
      UnpackScalesK4(b.scales, sc, mn);
      const __m128i mins16 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn)));
      __m256i isum[N];
      for (int k = 0; k < N; ++k) isum[k] = _mm256_setzero_si256();
      __m256i qh;
      if constexpr (kQ5) qh = Load32(b.qh);
      for (int p = 0; p < 4; ++p) {  // sub-blocks 2p (low nibbles) and 2p+1 (high)
        const __m256i raw = Load32(b.qs + 32 * p);
        __m256i q_lo = _mm256_and_si256(raw, low4);
        __m256i q_hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
        if constexpr (kQ5) {
          // Bit 2p of qh[l] (then 2p+1): after shifting the 16-bit lanes by
          // 2p, bit 0 of each byte is that byte's own bit 2p.
          q_lo = _mm256_or_si256(q_lo, _mm256_slli_epi16(_mm256_and_si256(qh, bit0), 4));
          q_hi = _mm256_or_si256(
              q_hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), bit0), 4));
          qh = _mm256_srli_epi16(qh, 2);
        }
        const __m256i s_lo = _mm256_set1_epi16(sc[2 * p]);
        const __m256i s_hi = _mm256_set1_epi16(sc[2 * p + 1]);
        for (int k = 0; k < N; ++k) {
          const int8_t* q8 = xb[k][i].qs + 64 * p;
          const __m256i d_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, Load32(q8)), s_lo);
          const __m256i d_hi =
              _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, Load32(q8 + 32)), s_hi);
          isum[k] = _mm256_add_epi32(isum[k], _mm256_add_epi32(d_lo, d_hi));
        }
      }
      const float d = Half(b.d), dmin = Half(b.dmin);
      for (int k = 0; k < N; ++k) {
        // Sums of x over the eight sub-blocks: pairs of the 16 block sums.
        const __m128i* bs = reinterpret_cast<const __m128i*>(xb[k][i].bsums);
        const __m128i sub = _mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1));
        const __m128i mins = _mm_madd_epi16(sub, mins16);
        const float xd = xb[k][i].d;
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd), _mm256_cvtepi32_ps(isum[k]), acc[k]);
        acc_min[k] = _mm_fmadd_ps(_mm_set1_ps(dmin * xd), _mm_cvtepi32_ps(mins), acc_min[k]);
      }
    }
    for (int k = 0; k < N; ++k) {
      __m128 m = acc_min[k];
      m = _mm_add_ps(m, _mm_movehl_ps(m, m));
      m = _mm_add_ss(m, _mm_movehdup_ps(m));
      out[k * os] = Hsum(acc[k]) - _mm_cvtss_f32(m);
    }
  }
};

// Q6_K against ActBlockQ8K: the 6-bit values are used unsigned (0..63) in
// maddubs and the -32 offset comes back as 32 * sum_g scale_g * bsum_g.
struct Q6KKernel {
  template <int N>
  static void Run(const uint8_t* w, const uint8_t* x, size_t xs, int64_t cols, float* out,
                  size_t os) {
    const ActBlockQ8K* xb[N];
    for (int k = 0; k < N; ++k) xb[k] = reinterpret_cast<const ActBlockQ8K*>(x + k * xs);
    __m256 acc[N];
    for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i low2 = _mm256_set1_epi8(0x03);
    for (int64_t i = 0; i < cols / kQKK; ++i) {
      const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(w)[i];
      const __m256i sc16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
      __m256i isum[N];
      for (int k = 0; k < N; ++k) {
        // Start from -32 * sum_g sc_g * bsum_g.
        const __m256i off = _mm256_madd_epi16(Load32(xb[k][i].bsums), sc16);
        isum[k] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
      }
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = Load32(b.ql + 64 * h), ql1 = Load32(b.ql + 64 * h + 32);
        const __m256i qh = Load32(b.qh + 32 * h);
        const auto high = [&](int shift) {
          return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), low2), 4);
        };
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low4), high(0)),
            _mm256_or_si256(_mm256_and_si256(ql1, low4), high(2)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), high(4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), high(6)),
        };
        for (int j = 0; j < 4; ++j) {
          const int g = 8 * h + 2 * j;  // scale of elements 16g .. 16g+31 (two groups)
          const __m256i s = _mm256_set_m128i(_mm_set1_epi16(b.scales[g + 1]),
                                             _mm_set1_epi16(b.scales[g]));
          for (int k = 0; k < N; ++k) {
            const __m256i prod = _mm256_maddubs_epi16(q[j], Load32(xb[k][i].qs + 16 * g));
            isum[k] = _mm256_add_epi32(isum[k], _mm256_madd_epi16(prod, s));
          }
        }
      }
      const float d = Half(b.d);
      for (int k = 0; k < N; ++k)
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb[k][i].d), _mm256_cvtepi32_ps(isum[k]),
                                 acc[k]);
    }
    for (int k = 0; k < N; ++k) out[k * os] = Hsum(acc[k]);
  }
};

template <typename K>
void RowDot(const void* w_row, const void* x, size_t x_stride, int n_x, int64_t cols, float* out,
            size_t out_stride) {
  const auto* w = static_cast<const uint8_t*>(w_row);
  const auto* xs = static_cast<const uint8_t*>(x);
  int t = 0;
  for (; t + kMaxTokens <= n_x; t += kMaxTokens)
    K::template Run<kMaxTokens>(w, xs + t * x_stride, x_stride, cols, out + t * out_stride,
                                out_stride);
  const uint8_t* xr = xs + t * x_stride;
  float* o = out + t * out_stride;
  switch (n_x - t) {
    case 3: K::template Run<3>(w, xr, x_stride, cols, o, out_stride); break;
    case 2: K::template Run<2>(w, xr, x_stride, cols, o, out_stride); break;
    case 1: K::template Run<1>(w, xr, x_stride, cols, o, out_stride); break;
    default: break;
  }
}

// QuantizeBlock of quantize_activations.cc, eight lanes at a time: the same
// amax (max is exact), the same id = 127 / amax and products, and vroundps
// to nearest-even as nearbyint in the default rounding mode, so the bytes are
// identical. A decode step quantizes every matrix's input, which the scalar
// loop (a libm call per value) made cost as much as a small matvec.
float QuantizeBlockAvx2(const float* x, int n, int8_t* q) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 z = _mm256_sub_ps(v, v);  // NaN for inf and NaN
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(z, z, _CMP_UNORD_Q));
    amax = _mm256_max_ps(amax, _mm256_and_ps(v, abs_mask));
  }
  if (_mm256_movemask_ps(bad) != 0) {
    __builtin_memset(q, 0, static_cast<size_t>(n));
    return __builtin_nanf("");
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float a = _mm_cvtss_f32(m);
  if (a == 0.0f) {
    __builtin_memset(q, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const __m256 id = _mm256_set1_ps(127.0f / a);
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int i = 0; i < n; i += 32) {
    __m256i v[4];
    for (int k = 0; k < 4; ++k) {
      __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), id),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
    }
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm256_permutevar8x32_epi32(b, order));
  }
  return a / 127.0f;
}

}  // namespace

QuantizeBlockFn Avx2QuantizeBlock() { return QuantizeBlockAvx2; }

RowsDotFn Avx2RowsDot(DType t) {
  switch (t) {
    case DType::kQ4_0: return RowsDot<Q8Rows<true>>;
    case DType::kQ8_0: return RowsDot<Q8Rows<false>>;
    default: return nullptr;
  }
}

RowDotFn Avx2RowDot(DType t) {
  switch (t) {
    case DType::kF32: return RowDot<FloatKernel<LoadF32>>;
    case DType::kF16: return RowDot<FloatKernel<LoadF16>>;
    case DType::kBF16: return RowDot<FloatKernel<LoadBF16>>;
    case DType::kQ4_0: return RowDot<Q8Kernel<true>>;
    case DType::kQ8_0: return RowDot<Q8Kernel<false>>;
    case DType::kQ4_K: return RowDot<Q45KKernel<false, BlockQ4_K>>;
    case DType::kQ5_K: return RowDot<Q45KKernel<true, BlockQ5_K>>;
    case DType::kQ6_K: return RowDot<Q6KKernel>;
    default: return nullptr;
  }
}

}  // namespace hart::runtime::internal

#else  // built without AVX2 flags (non-x86 target)

namespace hart::runtime::internal {
RowDotFn Avx2RowDot(DType) { return nullptr; }
RowsDotFn Avx2RowsDot(DType) { return nullptr; }
QuantizeBlockFn Avx2QuantizeBlock() { return nullptr; }
}  // namespace hart::runtime::internal

#endif

// AVX2 + FMA + F16C row dots; this file alone is compiled with those flags
// (runtime.cmake) and is only called after a CPUID check.
//
// Quantized weights meet int8 activations in integer SIMD: maddubs multiplies
// unsigned by signed bytes and adds pairs to int16 (no saturation here: the
// weight operand is at most 63, or |8| and 128 after the sign trick, and the
// activations never hold -128), madd widens to int32. Each kernel unpacks a
// weight block (Q4_0/Q8_0: a transposed group of eight) once and applies it
// to up to 4 tokens, so a batched step or prefill reads each weight row once
// per 4 tokens from cache instead of re-unpacking it.
#include "runtime/kernels_internal.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include <cstddef>
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

// Q4_0 / Q8_0 against ActGroupQ8 (kQ8x8): eight blocks at a time. The
// weight group is transposed once into ActGroupQ8's shape (row w, lane s:
// values 4w .. 4w+3 of the block in slot s) and shared by every token, whose
// products then sum down the rows with vertical adds: no horizontal work
// per block, so the cost per token is little more than the multiplies.
// Per slot the float step is the AVX-512 kernel's, (d_w * d_x) * exact
// block dot into one accumulator, so the two paths give the same bits.
constexpr int kGroup = ActGroupQ8::kBlocks;
constexpr size_t kPrefetchAhead = 2048;  // decode's software prefetch distance
// Several tokens per weight row prefetch further ahead, into L2 only, as the
// AVX-512 kernel does (kernels_bench --batch, HART_KERNELS=avx2: the 4-token
// step of the 4-layer 1B shape 23.9 -> 21.8 ms).
constexpr size_t kPrefetchAheadBatch = 8192;

// 4x4 transposes of dwords within each 128-bit lane: r[i] lane d -> r[d] lane i.
inline void Transpose4(__m256i* r) {
  const __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
  r[0] = _mm256_unpacklo_epi64(t0, t2);
  r[1] = _mm256_unpackhi_epi64(t0, t2);
  r[2] = _mm256_unpacklo_epi64(t1, t3);
  r[3] = _mm256_unpackhi_epi64(t1, t3);
}

// Two 16-byte pieces as one register: lo from a, hi from b.
inline __m256i Load2x16(const void* a, const void* b) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(a))),
                                 _mm_loadu_si128(static_cast<const __m128i*>(b)), 1);
}

// kPacked: rows in PackRows's layout, whose whole groups are already
// transposed (only a partial last group is plain).
template <bool kQ4, bool kPacked = false>
struct Q8Kernel {
  using B = std::conditional_t<kQ4, BlockQ4_0, BlockQ8_0>;

  // The eight scales in slot order (blocks 0, 2, 4, 6, 1, 3, 5, 7) as floats;
  // kP: b is a packed group.
  template <bool kP>
  static inline __attribute__((always_inline)) __m256 Scales(const B* b) {
    if constexpr (kP) {
      constexpr size_t kAt = kQ4 ? offsetof(PackedGroupQ4_0, d) : offsetof(PackedGroupQ8_0, d);
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint8_t*>(b) + kAt)));
    }
    uint64_t lo = 0, hi = 0;
    for (int s = 0; s < 4; ++s) {
      lo |= static_cast<uint64_t>(b[2 * s].d) << (16 * s);
      hi |= static_cast<uint64_t>(b[2 * s + 1].d) << (16 * s);
    }
    return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
  }

  // One group: isum[k] += the eight exact block dots of token k (slot order);
  // kP: b is a packed group.
  template <int N, bool kP>
  static inline __attribute__((always_inline)) void Group(const B* b, const ActGroupQ8* const* xg,
                                                          __m256i* isum) {
    const __m256i ones = _mm256_set1_epi16(1);
    if constexpr (kQ4) {
      // Rows 0-3 are the low nibbles of raw dwords 0-3, rows 4-7 the high
      // ones. |pair| <= 2 * 15 * 127, so the int16 pairs of all eight rows
      // add without overflow before one madd.
      __m256i raw[4];
      if constexpr (kP) {
        for (int c = 0; c < 4; ++c) raw[c] = Load32(reinterpret_cast<const PackedGroupQ4_0*>(b)->qs + 32 * c);
      } else {
        for (int s = 0; s < 4; ++s) raw[s] = Load2x16(b[2 * s].qs, b[2 * s + 1].qs);
        Transpose4(raw);
      }
      const __m256i low4 = _mm256_set1_epi8(0x0F);
      __m256i u[8];
      for (int c = 0; c < 4; ++c) {
        u[c] = _mm256_and_si256(raw[c], low4);
        u[c + 4] = _mm256_and_si256(_mm256_srli_epi16(raw[c], 4), low4);
      }
      for (int k = 0; k < N; ++k) {
        const int8_t* x = xg[k]->qs;
        __m256i p = _mm256_maddubs_epi16(u[0], Load32(x));
        for (int w = 1; w < 8; ++w)
          p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[w], Load32(x + ActGroupQ8::kRowBytes * w)));
        isum[k] = _mm256_madd_epi16(p, ones);
      }
    } else {
      // Signed weights: |w| against x with w's sign (maddubs's int16 pairs
      // stay below saturation: |w| <= 128, |x| <= 127). Two halves of four
      // rows each keep the registers in hand.
      for (int half = 0; half < 2; ++half) {
        __m256i q[4];
        if constexpr (kP) {
          const int8_t* rows = reinterpret_cast<const PackedGroupQ8_0*>(b)->qs;
          for (int c = 0; c < 4; ++c) q[c] = Load32(rows + ActGroupQ8::kRowBytes * (4 * half + c));
        } else {
          for (int s = 0; s < 4; ++s) q[s] = Load2x16(b[2 * s].qs + 16 * half, b[2 * s + 1].qs + 16 * half);
          Transpose4(q);
        }
        for (int c = 0; c < 4; ++c) {
          const __m256i a = _mm256_sign_epi8(q[c], q[c]);
          const int row = 4 * half + c;
          for (int k = 0; k < N; ++k) {
            const __m256i x = Load32(xg[k]->qs + ActGroupQ8::kRowBytes * row);
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(x, q[c])), ones);
            isum[k] = half == 0 && c == 0 ? p : _mm256_add_epi32(isum[k], p);
          }
        }
      }
    }
  }

  // kPrefetch: a software prefetch kPrefetchAhead bytes ahead of the weight
  // stream (decode, and several tokens from DRAM, where the hardware
  // prefetcher alone leaves too few lines in flight).
  template <int N, bool kPrefetch = true>
  static void Run(const uint8_t* w, const uint8_t* x, size_t xs, int64_t cols, float* out, size_t os) {
    const ActGroupQ8* xg[N];
    for (int k = 0; k < N; ++k) xg[k] = reinterpret_cast<const ActGroupQ8*>(x + k * xs);
    __m256 acc[N];
    for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
    const int64_t nb = cols / kQK, full = nb / kGroup;
    auto group = [&](const B* b, auto packed) {
      constexpr bool kP = decltype(packed)::value;
      __m256i isum[N];
      Group<N, kP>(b, xg, isum);
      const __m256 wd = Scales<kP>(b);
      for (int k = 0; k < N; ++k) {
        __m256i dots = isum[k];
        if constexpr (kQ4)
          dots = _mm256_sub_epi32(dots, _mm256_slli_epi32(Load32(xg[k]->sum), 3));
        acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(wd, _mm256_loadu_ps(xg[k]->d)), _mm256_cvtepi32_ps(dots), acc[k]);
        ++xg[k];
      }
    };
    const B* b = reinterpret_cast<const B*>(w);
    for (int64_t g = 0; g < full; ++g, b += kGroup) {
      if constexpr (kPrefetch)
        for (size_t off = 0; off < sizeof(B) * kGroup; off += 64) {
          if constexpr (N == 1) _mm_prefetch(reinterpret_cast<const char*>(b) + kPrefetchAhead + off, _MM_HINT_T0);
          else _mm_prefetch(reinterpret_cast<const char*>(b) + kPrefetchAheadBatch + off, _MM_HINT_T1);
        }
      group(b, std::bool_constant<kPacked>{});
    }
    if (const int64_t tail = nb - full * kGroup; tail != 0) {
      // A partial last group runs on zero-padded blocks (the activation
      // group is zero there too), so nothing is read past the row.
      B pad[kGroup] = {};
      __builtin_memcpy(pad, b, static_cast<size_t>(tail) * sizeof(B));
      group(pad, std::false_type{});
    }
    for (int k = 0; k < N; ++k) out[k * os] = Hsum(acc[k]);
  }
};

// Decode: each row through the one-token kernel (the same bits as RowDot),
// with a software prefetch ahead of the weight stream.
template <typename K>
void RowsDot(const void* w, size_t row_bytes, int n_rows, const void* x, int64_t cols, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  for (int r = 0; r < n_rows; ++r)
    K::template Run<1, true>(wb + r * row_bytes, xb, 0, cols, out + r, 1);
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
    case DType::kQ4_0: return RowsDot<Q8Kernel<true>>;
    case DType::kQ8_0: return RowsDot<Q8Kernel<false>>;
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

RowDotFn Avx2PackedRowDot(DType t) {
  switch (t) {
    case DType::kQ4_0: return RowDot<Q8Kernel<true, true>>;
    case DType::kQ8_0: return RowDot<Q8Kernel<false, true>>;
    default: return nullptr;
  }
}

RowsDotFn Avx2PackedRowsDot(DType t) {
  switch (t) {
    case DType::kQ4_0: return RowsDot<Q8Kernel<true, true>>;
    case DType::kQ8_0: return RowsDot<Q8Kernel<false, true>>;
    default: return nullptr;
  }
}

}  // namespace hart::runtime::internal

#else  // built without AVX2 flags (non-x86 target)

namespace hart::runtime::internal {
RowDotFn Avx2RowDot(DType) { return nullptr; }
RowsDotFn Avx2RowsDot(DType) { return nullptr; }
QuantizeBlockFn Avx2QuantizeBlock() { return nullptr; }
RowDotFn Avx2PackedRowDot(DType) { return nullptr; }
RowsDotFn Avx2PackedRowsDot(DType) { return nullptr; }
}  // namespace hart::runtime::internal

#endif

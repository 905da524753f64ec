// AVX-512 (F, BW, VL, VNNI) row dots for Q4_0 and Q8_0; this file alone is
// compiled with those flags (runtime.cmake) and is only called after a CPUID
// check. Other types use the AVX2 kernels (SelectKernels).
//
// The weights go into vpdpbusd as unsigned bytes (Q4_0 nibbles 0..15, Q8_0
// values + 128) against the signed activations, two 32-weight blocks per
// 512-bit register. Four registers (a group of eight blocks) are then reduced
// to the eight exact integer block dots, the unsigned offset is taken back as
// 8 or 128 times the activation block sums that ActGroupQ8 carries, and each
// block is scaled in float as the portable kernel does: (d_w * d_x) * dot.
// Only the order of the float sum over blocks differs from portable.
#include "runtime/kernels_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__F16C__) && defined(__FMA__)

// gcc 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused
// source of unmasked operations, which -Wmaybe-uninitialized reports at the
// header line once inlined here; the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "runtime/quant_blocks.h"

namespace hart::runtime::internal {
namespace {

constexpr int kMaxTokens = 4;
constexpr int kGroup = ActGroupQ8::kBlocks;

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One activation group in registers: the values of block pairs (0,1) .. (6,7)
// and, in slot order, the offset to subtract from the unsigned dots and the
// scales.
struct ActRegs {
  __m512i q[4];
  __m256i offset;
  __m256 d;
};

template <int kShift>
inline ActRegs LoadAct(const ActGroupQ8& g) {
  ActRegs a;
  for (int k = 0; k < 4; ++k) a.q[k] = _mm512_loadu_si512(g.qs + 64 * k);
  a.offset = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.sum)), kShift);
  a.d = _mm256_loadu_ps(g.d);
  return a;
}

// Eight blocks of one weight row as vpdpbusd operands: u[k] holds blocks 2k
// and 2k+1 as unsigned bytes in element order; d their f16 scales as floats,
// in slot order.
struct WeightRegs {
  __m512i u[4];
  __m256 d;
};

// Decode's software prefetch distance in weight bytes (see Q8Group::Rows).
constexpr size_t kPrefetchAhead = 4096;

template <bool kQ4>
struct Q8Group {
  using Block = std::conditional_t<kQ4, BlockQ4_0, BlockQ8_0>;
  static constexpr int kShift = kQ4 ? 3 : 7;  // offset = 8 or 128 times the block sum

  // Word index of each slot's f16 scale within a two-register window: the
  // group's bytes 0..127, and for Q8_0's blocks 4-7 bytes 128..255.
  static constexpr int kW = sizeof(Block) / 2;
  static constexpr int kHigh = kQ4 ? 0 : 64;
  alignas(64) static constexpr int16_t kScaleWords[32] = {
      0, 2 * kW, 4 * kW - kHigh, 6 * kW - kHigh, kW, 3 * kW, 5 * kW - kHigh, 7 * kW - kHigh};
  // Q4_0: word j of pair k's register is word w = j % 8 of block 2k + j / 16's
  // 16 nibble bytes (block b's start at word 9b + 1), counted from the first
  // of the two registers the permute reads (bytes 0..127; 64..143 for k = 3).
  struct NibbleTable {
    int16_t w[4][32];
  };
  static constexpr NibbleTable MakeNibbleWords() {
    NibbleTable t{};
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 32; ++j)
        t.w[k][j] = static_cast<int16_t>(9 * (2 * k + j / 16) + 1 + j % 8 - (k == 3 ? 32 : 0));
    return t;
  }
  alignas(64) static constexpr NibbleTable kNibbleTable = MakeNibbleWords();
  static constexpr const int16_t (&kNibbleWords)[4][32] = kNibbleTable.w;

  // g points at kGroup whole blocks.
  static inline __attribute__((always_inline)) WeightRegs Unpack(const uint8_t* g) {
    WeightRegs w;
    if constexpr (kQ4) {
      // Pair k's nibble bytes picked out of the group's 144 bytes (three
      // loads) by word permutes as [raw_a, raw_a, raw_b, raw_b], the second
      // copy of each shifted by 4: low nibbles are elements 0..15, high 16..31.
      const __m512i l0 = _mm512_loadu_si512(g), l1 = _mm512_loadu_si512(g + 64);
      const __m512i l2 = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 128)));
      const __m512i shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
      const __m512i low4 = _mm512_set1_epi8(0x0F);
      for (int k = 0; k < 4; ++k) {
        const __m512i idx = _mm512_loadu_si512(kNibbleWords[k]);
        const __m512i z = k < 3 ? _mm512_permutex2var_epi16(l0, idx, l1) : _mm512_permutex2var_epi16(l1, idx, l2);
        w.u[k] = _mm512_and_si512(_mm512_srlv_epi64(z, shift), low4);
      }
      // The f16 scales, the first field of each block: words 0, 9, ..., 63.
      const __m512i sidx = _mm512_loadu_si512(kScaleWords);
      w.d = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(l0, sidx, l1)));
    } else {
      const Block* b = reinterpret_cast<const Block*>(g);
      const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
      for (int k = 0; k < 4; ++k) {
        const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[2 * k].qs));
        const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[2 * k + 1].qs));
        w.u[k] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), bias);
      }
      // Scales at words 0, 17, ..., 119: blocks 0-3 from bytes 0..127, 4-7
      // from 128..255.
      const __m512i idx = _mm512_loadu_si512(kScaleWords);
      const __m512i a = _mm512_permutex2var_epi16(_mm512_loadu_si512(g), idx, _mm512_loadu_si512(g + 64));
      const __m512i c =
          _mm512_permutex2var_epi16(_mm512_loadu_si512(g + 128), idx, _mm512_loadu_si512(g + 192));
      w.d = _mm256_cvtph_ps(_mm_mask_blend_epi16(0xCC, _mm512_castsi512_si128(a), _mm512_castsi512_si128(c)));
    }
    return w;
  }

  // acc += (d_w * d_x) * exact block dot, per slot.
  static inline __attribute__((always_inline)) __m256 Dot(const WeightRegs& w, const ActRegs& x,
                                                         __m256 acc) {
    __m512i p[4];
    for (int k = 0; k < 4; ++k) p[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.u[k], x.q[k]);
    // Each 128-bit lane of p[k] holds four partial dots of a quarter pair
    // (lanes 0, 1: block 2k; lanes 2, 3: block 2k+1). Fold four vectors into
    // one whose lane j holds pair k's quarter j at position k ...
    const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi64(p[0], p[1]), _mm512_unpackhi_epi64(p[0], p[1]));
    const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi64(p[2], p[3]), _mm512_unpackhi_epi64(p[2], p[3]));
    const __m512 f01 = _mm512_castsi512_ps(s01), f23 = _mm512_castsi512_ps(s23);
    const __m512i t = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(f01, f23, _MM_SHUFFLE(2, 0, 2, 0))),
                                       _mm512_castps_si512(_mm512_shuffle_ps(f01, f23, _MM_SHUFFLE(3, 1, 3, 1))));
    // ... then add lanes 0+1 and 2+3: blocks 0, 2, 4, 6, 1, 3, 5, 7.
    const __m512i e = _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i o = _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(3, 1, 3, 1));
    const __m256i dots = _mm256_sub_epi32(_mm512_castsi512_si256(_mm512_add_epi32(e, o)), x.offset);
    return _mm256_fmadd_ps(_mm256_mul_ps(w.d, x.d), _mm256_cvtepi32_ps(dots), acc);
  }

  // Calls f(group bytes, group index) for every group of a row of nb blocks;
  // a partial last group is copied into zero-padded blocks first, so the
  // kernel never reads past the row.
  template <typename F>
  static inline __attribute__((always_inline)) void ForGroups(const uint8_t* w, int64_t nb, F&& f) {
    const int64_t full = nb / kGroup;
    for (int64_t g = 0; g < full; ++g) f(w + g * kGroup * sizeof(Block), g);
    if (const int64_t tail = nb % kGroup; tail != 0) {
      alignas(64) uint8_t pad[kGroup * sizeof(Block)] = {};
      std::memcpy(pad, w + full * kGroup * sizeof(Block), static_cast<size_t>(tail) * sizeof(Block));
      f(pad, full);
    }
  }

  // One weight row against N activation rows (prefill tiles and RowDot).
  template <int N>
  static void Run(const uint8_t* w, const uint8_t* x, size_t xs, int64_t cols, float* out, size_t os) {
    __m256 acc[N];
    for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
    ForGroups(w, cols / kQK, [&](const uint8_t* g, int64_t gi) {
      const WeightRegs wr = Unpack(g);
      for (int k = 0; k < N; ++k) {
        const auto* xg = reinterpret_cast<const ActGroupQ8*>(x + k * xs) + gi;
        acc[k] = Dot(wr, LoadAct<kShift>(*xg), acc[k]);
      }
    });
    for (int k = 0; k < N; ++k) out[k * os] = Hsum(acc[k]);
  }

  // R weight rows against one activation row (decode): the activation group
  // is loaded once for all rows; each row's steps are Run<1>'s, so the bits
  // are the same.
  template <int R>
  static void Rows(const uint8_t* w, size_t row_bytes, const uint8_t* x, int64_t nb, float* out) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    const auto* xg = reinterpret_cast<const ActGroupQ8*>(x);
    const int64_t full = nb / kGroup;
    for (int64_t g = 0; g < full; ++g) {
      const ActRegs a = LoadAct<kShift>(xg[g]);
      for (int r = 0; r < R; ++r) {
        const uint8_t* p = w + r * row_bytes + g * kGroup * sizeof(Block);
        // The group kPrefetchAhead bytes on (prefetches past the row's
        // end are harmless): the hardware prefetcher alone left decode
        // from DRAM at 34.8 tok/s on the 1B-shaped Q4_0 benchmark, this
        // gives 40.2 (Q8_0 23.3 -> 25.6; means of three interleaved runs).
        for (size_t off = 0; off < sizeof(Block) * kGroup; off += 64)
          _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + off), _MM_HINT_T0);
        acc[r] = Dot(Unpack(p), a, acc[r]);
      }
    }
    if (full * kGroup < nb) {
      const ActRegs a = LoadAct<kShift>(xg[full]);
      for (int r = 0; r < R; ++r)
        ForGroups(w + r * row_bytes + full * kGroup * sizeof(Block), nb - full * kGroup,
                  [&](const uint8_t* g, int64_t) { acc[r] = Dot(Unpack(g), a, acc[r]); });
    }
    for (int r = 0; r < R; ++r) out[r] = Hsum(acc[r]);
  }
};

template <typename K>
void RowDot(const void* w_row, const void* x, size_t x_stride, int n_x, int64_t cols, float* out,
            size_t out_stride) {
  const auto* w = static_cast<const uint8_t*>(w_row);
  const auto* xs = static_cast<const uint8_t*>(x);
  int t = 0;
  for (; t + kMaxTokens <= n_x; t += kMaxTokens)
    K::template Run<kMaxTokens>(w, xs + t * x_stride, x_stride, cols, out + t * out_stride, out_stride);
  const uint8_t* xr = xs + t * x_stride;
  float* o = out + t * out_stride;
  switch (n_x - t) {
    case 3: K::template Run<3>(w, xr, x_stride, cols, o, out_stride); break;
    case 2: K::template Run<2>(w, xr, x_stride, cols, o, out_stride); break;
    case 1: K::template Run<1>(w, xr, x_stride, cols, o, out_stride); break;
    default: break;
  }
}

template <typename K>
void RowsDot(const void* w, size_t row_bytes, int n_rows, const void* x, int64_t cols, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  const int64_t nb = cols / kQK;
  switch (n_rows) {
    case 4: K::template Rows<4>(wb, row_bytes, xb, nb, out); break;
    case 3: K::template Rows<3>(wb, row_bytes, xb, nb, out); break;
    case 2: K::template Rows<2>(wb, row_bytes, xb, nb, out); break;
    case 1: K::template Rows<1>(wb, row_bytes, xb, nb, out); break;
    default: break;
  }
}

}  // namespace

RowDotFn Avx512RowDot(DType t) {
  switch (t) {
    case DType::kQ4_0: return RowDot<Q8Group<true>>;
    case DType::kQ8_0: return RowDot<Q8Group<false>>;
    default: return nullptr;
  }
}

RowsDotFn Avx512RowsDot(DType t) {
  switch (t) {
    case DType::kQ4_0: return RowsDot<Q8Group<true>>;
    case DType::kQ8_0: return RowsDot<Q8Group<false>>;
    default: return nullptr;
  }
}

}  // namespace hart::runtime::internal

#else  // built without AVX-512 flags (non-x86 target or an old compiler)

namespace hart::runtime::internal {
RowDotFn Avx512RowDot(DType) { return nullptr; }
RowsDotFn Avx512RowsDot(DType) { return nullptr; }
}  // namespace hart::runtime::internal

#endif

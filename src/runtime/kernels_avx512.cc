// AVX-512 (F, BW, VL, VNNI) row dots for Q4_0 and Q8_0; this file alone is
// compiled with those flags (runtime.cmake) and is only called after a CPUID
// check. Other types use the AVX2 kernels (SelectKernels).
//
// The weights go into vpdpbusd as unsigned bytes (Q4_0 nibbles 0..15, Q8_0
// values + 128) against the signed activations. A group of eight blocks is
// transposed into ActGroupQ8's shape (four registers, two rows of 32 bytes
// each), so the four vpdpbusd of a token sum each block's products down the
// rows and two halves add to the eight exact integer block dots; the
// unsigned offset is taken back as 8 or 128 times the activation block sums
// that ActGroupQ8 carries, and each block is scaled in float as the
// portable kernel does: (d_w * d_x) * dot. The transpose is paid once per
// weight group and shared by every token of a batched step.
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

// One activation group in registers: the transposed rows (pairs 2j, 2j+1 in
// q[j]) and, in slot order, the offset to subtract from the unsigned dots and
// the scales.
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

// Eight blocks of one weight row as vpdpbusd operands in ActGroupQ8's
// transposed shape: u[j] holds rows 2j and 2j+1 (dword lane 8h + s: values
// 4(2j+h) .. +3 of the block in slot s) as unsigned bytes; d the f16 scales
// as floats, in slot order.
struct WeightRegs {
  __m512i u[4];
  __m256 d;
};

// Decode's software prefetch distance in weight bytes (see Q8Group::Rows).
constexpr size_t kPrefetchAhead = 4096;
// Several tokens per weight row (a batched step, prefill) prefetch further
// ahead and into L2 only (see Q8Group::Run).
constexpr size_t kPrefetchAheadBatch = 8192;
// Decode of packed rows (see Q8Group::Rows).
constexpr size_t kPrefetchAheadPacked = 16384;

// Slot s of a group holds block SlotBlock(s) (the inverse of ActGroupSlot).
constexpr int SlotBlock(int s) { return s < 4 ? 2 * s : 2 * (s - 4) + 1; }

// Dword permutes that transpose Q8_0's block pairs (register k = blocks 2k,
// 2k+1 = slots k, k+4, eight dwords each) into rows. Step one takes register
// pairs (0, 1) and (2, 3) to X[p], lane 4i + e = dword 4p + e of the i-th of
// slots (a, a+4, b, b+4); step two takes X[j / 2] of both pairs to u[j].
struct TransposeTable {
  int32_t step1[2][16];
  int32_t step2[4][16];
};
constexpr TransposeTable MakeTransposeTable() {
  TransposeTable t{};
  for (int p = 0; p < 2; ++p)
    for (int m = 0; m < 16; ++m) {
      const int i = m / 4;
      t.step1[p][m] = (i / 2) * 16 + (i % 2) * 8 + 4 * p + m % 4;
    }
  for (int j = 0; j < 4; ++j)
    for (int h = 0; h < 2; ++h)
      for (int s = 0; s < 8; ++s) {
        const int i = (s % 2) * 2 + s / 4;  // index of slot s within its pair's X
        t.step2[j][8 * h + s] = (s % 4 >= 2 ? 16 : 0) + 4 * i + 2 * (j % 2) + h;
      }
  return t;
}
alignas(64) constexpr TransposeTable kTranspose = MakeTransposeTable();

// Q4_0: word lanes of raw dwords (2c + h) of each slot's 16 nibble bytes
// (block b's at byte 18b + 2, word 9b + 1) for c = 0, 1: blocks 0-6 from the
// group's bytes 0..127 (two registers), block 7 from bytes 128..143.
struct RawWordTable {
  int16_t w[2][32];   // blocks 0-6, from bytes 0..127
  int16_t w7[2][32];  // block 7, from bytes 128..143
};
constexpr RawWordTable MakeRawWordTable() {
  RawWordTable t{};
  for (int c = 0; c < 2; ++c)
    for (int lane = 0; lane < 32; ++lane) {
      const int dword = lane / 2, h = dword / 8, s = dword % 8, b = SlotBlock(s);
      const int word = 9 * b + 1 + 2 * (2 * c + h) + lane % 2;
      if (b < 7) t.w[c][lane] = static_cast<int16_t>(word);
      else t.w7[c][lane] = static_cast<int16_t>(word - 64);
    }
  return t;
}
alignas(64) constexpr RawWordTable kRawWords = MakeRawWordTable();
// Word lanes of slot 7 (block 7): dword lanes 7 and 15.
constexpr __mmask32 kSlot7Words = (3u << 14) | (3u << 30);

// kPacked: rows in PackRows's layout, whose whole groups are already in the
// transposed shape (only a partial last group is plain).
template <bool kQ4, bool kPacked = false>
struct Q8Group {
  using Block = std::conditional_t<kQ4, BlockQ4_0, BlockQ8_0>;
  static constexpr int kShift = kQ4 ? 3 : 7;  // offset = 8 or 128 times the block sum

  // Word index of each slot's f16 scale within a two-register window: the
  // group's bytes 0..127, and for Q8_0's blocks 4-7 bytes 128..255.
  static constexpr int kW = sizeof(Block) / 2;
  static constexpr int kHigh = kQ4 ? 0 : 64;
  alignas(64) static constexpr int16_t kScaleWords[32] = {
      0, 2 * kW, 4 * kW - kHigh, 6 * kW - kHigh, kW, 3 * kW, 5 * kW - kHigh, 7 * kW - kHigh};

  // A whole group of the row: in place when packed, else transposed.
  static inline __attribute__((always_inline)) WeightRegs Unpack(const uint8_t* g) {
    if constexpr (kPacked && kQ4) {
      // PackedGroupQ4_0: the raw nibble dwords already in place.
      WeightRegs w;
      const __m512i low4 = _mm512_set1_epi8(0x0F);
      for (int c = 0; c < 2; ++c) {
        const __m512i raw = _mm512_loadu_si512(g + 64 * c);
        w.u[c] = _mm512_and_si512(raw, low4);
        w.u[c + 2] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
      }
      w.d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + kGroup * kQK / 2)));
      return w;
    } else if constexpr (kPacked) {
      // PackedGroupQ8_0: the signed values in place, made unsigned.
      WeightRegs w;
      const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
      for (int j = 0; j < 4; ++j) w.u[j] = _mm512_xor_si512(_mm512_loadu_si512(g + 64 * j), bias);
      w.d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + kGroup * kQK)));
      return w;
    } else {
      return UnpackRaw(g);
    }
  }

  // g points at kGroup blocks in the plain layout. The transpose is paid
  // once per weight group and shared by every token it meets.
  static inline __attribute__((always_inline)) WeightRegs UnpackRaw(const uint8_t* g) {
    WeightRegs w;
    if constexpr (kQ4) {
      // The raw nibble dwords picked out of the group's 144 bytes (three
      // loads) by word permutes; the low nibbles of raw dwords 0-3 are
      // values 0..15 (rows 0-3), the high nibbles values 16..31 (rows 4-7).
      const __m512i l0 = _mm512_loadu_si512(g), l1 = _mm512_loadu_si512(g + 64);
      const __m512i l2 = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 128)));
      const __m512i low4 = _mm512_set1_epi8(0x0F);
      for (int c = 0; c < 2; ++c) {
        __m512i raw = _mm512_permutex2var_epi16(l0, _mm512_load_si512(kRawWords.w[c]), l1);
        raw = _mm512_mask_permutexvar_epi16(raw, kSlot7Words, _mm512_load_si512(kRawWords.w7[c]), l2);
        w.u[c] = _mm512_and_si512(raw, low4);
        w.u[c + 2] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
      }
      // The f16 scales, the first field of each block: words 0, 9, ..., 63.
      const __m512i sidx = _mm512_loadu_si512(kScaleWords);
      w.d = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(l0, sidx, l1)));
    } else {
      const Block* b = reinterpret_cast<const Block*>(g);
      __m512i v[4];
      for (int k = 0; k < 4; ++k) {
        const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[2 * k].qs));
        const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[2 * k + 1].qs));
        v[k] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      }
      __m512i x01[2], x23[2];
      for (int p = 0; p < 2; ++p) {
        const __m512i idx = _mm512_load_si512(kTranspose.step1[p]);
        x01[p] = _mm512_permutex2var_epi32(v[0], idx, v[1]);
        x23[p] = _mm512_permutex2var_epi32(v[2], idx, v[3]);
      }
      const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
      for (int j = 0; j < 4; ++j)
        w.u[j] = _mm512_xor_si512(
            _mm512_permutex2var_epi32(x01[j / 2], _mm512_load_si512(kTranspose.step2[j]), x23[j / 2]), bias);
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

  // acc += (d_w * d_x) * exact block dot, per slot. The four dpbusd sum the
  // rows down; the two halves (even and odd rows) add to the block dots.
  static inline __attribute__((always_inline)) __m256 Dot(const WeightRegs& w, const ActRegs& x,
                                                         __m256 acc) {
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.u[0], x.q[0]);
    for (int k = 1; k < 4; ++k) p = _mm512_dpbusd_epi32(p, w.u[k], x.q[k]);
    const __m256i sum = _mm256_add_epi32(_mm512_castsi512_si256(p), _mm512_extracti64x4_epi64(p, 1));
    const __m256i dots = _mm256_sub_epi32(sum, x.offset);
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
    auto step = [&](const WeightRegs& wr, int64_t gi) __attribute__((always_inline)) {
      for (int k = 0; k < N; ++k) {
        const auto* xg = reinterpret_cast<const ActGroupQ8*>(x + k * xs) + gi;
        acc[k] = Dot(wr, LoadAct<kShift>(*xg), acc[k]);
      }
    };
    const int64_t nb = cols / kQK, full = nb / kGroup;
    for (int64_t gi = 0; gi < full; ++gi) {
      const uint8_t* g = w + gi * kGroup * sizeof(Block);
      // Several tokens per weight byte keep fewer weight lines in flight,
      // so the hardware prefetcher alone left a 4-token step from DRAM far
      // below the in-cache kernel speed. Prefetching into L1 as decode does
      // (4 KiB ahead) still left the step 1.3x slower than a 1-token one;
      // into L2, 8 KiB ahead, the 4-token step costs about what the
      // 1-token one does (kernels_bench --batch: 24 -> 19-20 ms per step of
      // the 4-layer 1B shape), since the line fill buffers then stay free
      // for the activations' and weights' demand loads.
      for (size_t off = 0; off < sizeof(Block) * kGroup; off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(g + kPrefetchAheadBatch + off), _MM_HINT_T1);
      step(Unpack(g), gi);
    }
    if (full * kGroup < nb) ForGroups(w + full * kGroup * sizeof(Block), nb - full * kGroup,
                                      [&](const uint8_t* g, int64_t) { step(UnpackRaw(g), full); });
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
        {
          // Packed rows are read faster than the plain ones, and prefetched
          // into L1 they decoded 10-20% slower than plain rows through the
          // server (1 stream, 4-layer 1B Q8_0: 40-45 against 52-60 tok/s);
          // into L2 from 16 KiB ahead they are level (58-61).
          if constexpr (kPacked) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAheadPacked + off), _MM_HINT_T1);
          else _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + off), _MM_HINT_T0);
        }
        acc[r] = Dot(Unpack(p), a, acc[r]);
      }
    }
    if (full * kGroup < nb) {
      const ActRegs a = LoadAct<kShift>(xg[full]);
      for (int r = 0; r < R; ++r)
        ForGroups(w + r * row_bytes + full * kGroup * sizeof(Block), nb - full * kGroup,
                  [&](const uint8_t* g, int64_t) { acc[r] = Dot(UnpackRaw(g), a, acc[r]); });
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

RowDotFn Avx512PackedRowDot(DType t) {
  switch (t) {
    case DType::kQ4_0: return RowDot<Q8Group<true, true>>;
    case DType::kQ8_0: return RowDot<Q8Group<false, true>>;
    default: return nullptr;
  }
}

RowsDotFn Avx512PackedRowsDot(DType t) {
  switch (t) {
    case DType::kQ4_0: return RowsDot<Q8Group<true, true>>;
    case DType::kQ8_0: return RowsDot<Q8Group<false, true>>;
    default: return nullptr;
  }
}

}  // namespace hart::runtime::internal

#else  // built without AVX-512 flags (non-x86 target or an old compiler)

namespace hart::runtime::internal {
RowDotFn Avx512RowDot(DType) { return nullptr; }
RowsDotFn Avx512RowsDot(DType) { return nullptr; }
RowDotFn Avx512PackedRowDot(DType) { return nullptr; }
RowsDotFn Avx512PackedRowsDot(DType) { return nullptr; }
}  // namespace hart::runtime::internal

#endif

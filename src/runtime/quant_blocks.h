// Byte layouts of the ggml block-quantized weight types the runtime computes
// with, and of the int8 activation blocks the quantized dot products use.
// Weight blocks are packed (alignment 1): they are read straight from mapped
// files whose tensor offsets need not be even, so every field access must be
// an unaligned load, which packed members give for free.
#pragma once

#include <cstdint>
#include <cstring>

namespace hart::runtime {

inline constexpr int kQK = 32;    // elements per Q4_0 / Q8_0 block
inline constexpr int kQKK = 256;  // elements per K-quant super-block (QK_K)

// x[j] = (qs[j] & 15) - 8, x[j + 16] = (qs[j] >> 4) - 8, times d; j < 16.
struct __attribute__((packed)) BlockQ4_0 {
  uint16_t d;  // f16
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// x[j] = qs[j] * d.
struct __attribute__((packed)) BlockQ8_0 {
  uint16_t d;  // f16
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Eight sub-blocks of 32 with 6-bit scale sc and min m each (packed into
// `scales`, see ScaleMinK4): x = d * sc * q - dmin * m, q in [0, 15].
// Sub-blocks 2i and 2i+1 share qs[32i .. 32i+31], low and high nibbles.
struct __attribute__((packed)) BlockQ4_K {
  uint16_t d;     // f16, scale of the sub-block scales
  uint16_t dmin;  // f16, scale of the sub-block mins
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// As Q4_K with a fifth bit: element l of sub-block j adds 16 when bit j of
// qh[l] is set (l < 32), so q in [0, 31].
struct __attribute__((packed)) BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Two halves of 128. In half h, element 32k + l (k < 4, l < 32) has low
// nibble from ql[64h + l + 32(k&1)] (low nibble for k < 2, high for k >= 2)
// and high two bits (qh[32h + l] >> 2k) & 3; q = that 6-bit value - 32.
// x = d * scales[element / 16] * q.
struct __attribute__((packed)) BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Scale and min of sub-block j (< 8) of a Q4_K/Q5_K block, 6 bits each:
// j < 4 use the low 6 bits of bytes j and j+4; j >= 4 take their low four
// bits from byte j+4 and their top two from the spare bits of bytes j-4, j.
inline void ScaleMinK4(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Activation rows quantized once per MatMul call. Scales stay float (ggml's
// Q8_0 rounds them to f16; float keeps the activation error at the int8
// step alone). Values are in [-127, 127], never -128: the AVX2 dot relies
// on that to keep maddubs from saturating.
struct ActBlockQ8 {
  float d;
  int8_t qs[kQK];
};
static_assert(sizeof(ActBlockQ8) == 36);

// Eight ActBlockQ8 regrouped for the SIMD kernels of Q4_0 and Q8_0
// (kernels_avx512.cc, kernels_avx2.cc), transposed: qs is eight rows of 32
// bytes, row w holding the values 4w .. 4w+3 of every block, block k's four
// bytes in lane ActGroupSlot(k) (bytes 4 * slot ..). A kernel that puts the
// weights in the same shape sums each block's products down the rows with
// vertical adds (no horizontal reduction per block), and is left with the
// eight exact block dots in slot order: blocks 0, 2, 4, 6, 1, 3, 5, 7. The
// scales and the sums of the blocks' values are in slot order too; the sums
// turn an unsigned-weight dot back into a signed one (Q4_0's -8 offset,
// Q8_0's +128 bias) once per block instead of once per weight row. A row
// whose block count is not a multiple of 8 ends in a group padded with zero
// blocks (values, scale and sum 0), which add exactly nothing.
struct ActGroupQ8 {
  static constexpr int kBlocks = 8;
  static constexpr int kRowBytes = 4 * kBlocks;  // one transposed row: 4 values of each block
  int8_t qs[kBlocks * kQK];
  float d[kBlocks];
  int32_t sum[kBlocks];
};
static_assert(sizeof(ActGroupQ8) == 320);
inline constexpr int ActGroupSlot(int block) { return (block & 1) * 4 + block / 2; }
// The block in slot s of a group (the inverse of ActGroupSlot).
inline constexpr int ActGroupBlock(int slot) { return slot < 4 ? 2 * slot : 2 * (slot - 4) + 1; }

// Q8_0 weight rows in the packed layout (runtime::PackRows): every whole
// group of ActGroupQ8::kBlocks blocks of a row is stored already in the
// shape the SIMD kernels would otherwise transpose it into on every pass,
// qs as ActGroupQ8::qs is laid out (row w at 32 w, slot s at 4 s: values
// 4w .. 4w+3 of block ActGroupBlock(s), signed), then the f16 scales in slot
// order. A partial last group keeps BlockQ8_0's layout, so a packed row has
// the same bytes as a plain one, only in another order.
struct PackedGroupQ8_0 {
  int8_t qs[ActGroupQ8::kBlocks * kQK];
  uint16_t d[ActGroupQ8::kBlocks];  // f16, slot order
};
static_assert(sizeof(PackedGroupQ8_0) == ActGroupQ8::kBlocks * sizeof(BlockQ8_0));

// Q4_0 rows in the packed layout: per whole group, the nibble bytes as the
// kernels regroup them (dword d of block ActGroupBlock(s)'s qs at 32 d + 4 s:
// the low nibbles of dword d are values 4d .. 4d+3, the high ones
// 16+4d .. 16+4d+3), then the f16 scales in slot order. A partial last
// group keeps BlockQ4_0's layout.
struct PackedGroupQ4_0 {
  uint8_t qs[ActGroupQ8::kBlocks * kQK / 2];
  uint16_t d[ActGroupQ8::kBlocks];  // f16, slot order
};
static_assert(sizeof(PackedGroupQ4_0) == ActGroupQ8::kBlocks * sizeof(BlockQ4_0));

// Q8_K-style: bsums[g] = sum of qs[16g .. 16g+15], for the K-quants' min
// and offset terms.
struct ActBlockQ8K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};
static_assert(sizeof(ActBlockQ8K) == 292);

}  // namespace hart::runtime

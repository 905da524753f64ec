// Portable row dots in plain C++: the reference the AVX2 path must match.
// Quantized types multiply integers exactly and scale once per block, the
// same integers the AVX2 code sums, so the two paths differ only in the
// order of their float additions.
#include <cstring>

#include "runtime/kernels_internal.h"
#include "runtime/quant_blocks.h"

namespace hart::runtime::internal {
namespace {

uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Eight independent partial sums: a shorter dependency chain, and a shape
// the compiler can vectorize without reassociating on its own.
template <typename Load>
float FloatDot(const float* x, int64_t n, Load load) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += load(i + k) * x[i + k];
  float s = 0.0f;
  for (; i < n; ++i) s += load(i) * x[i];
  for (int k = 0; k < 8; ++k) s += acc[k];
  return s;
}

float DotF32(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const float* xf = reinterpret_cast<const float*>(x);
  return FloatDot(xf, cols, [w](int64_t i) {
    float v;
    std::memcpy(&v, w + 4 * i, 4);
    return v;
  });
}

float DotF16(const uint8_t* w, const uint8_t* x, int64_t cols) {
  return FloatDot(reinterpret_cast<const float*>(x), cols,
                  [w](int64_t i) { return F16ToF32(LoadU16(w + 2 * i)); });
}

float DotBF16(const uint8_t* w, const uint8_t* x, int64_t cols) {
  return FloatDot(reinterpret_cast<const float*>(x), cols,
                  [w](int64_t i) { return BF16ToF32(LoadU16(w + 2 * i)); });
}

float DotQ4_0(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const BlockQ4_0*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc = 0.0f;
  for (int64_t i = 0; i < cols / kQK; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += ((wb[i].qs[j] & 0x0F) - 8) * xb[i].qs[j];
      sumi += ((wb[i].qs[j] >> 4) - 8) * xb[i].qs[j + kQK / 2];
    }
    acc += F16ToF32(wb[i].d) * xb[i].d * static_cast<float>(sumi);
  }
  return acc;
}

float DotQ8_0(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const BlockQ8_0*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc = 0.0f;
  for (int64_t i = 0; i < cols / kQK; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += wb[i].qs[j] * xb[i].qs[j];
    acc += F16ToF32(wb[i].d) * xb[i].d * static_cast<float>(sumi);
  }
  return acc;
}

// Q4_K and Q5_K: sum_j sc_j * <q, x>_j scaled by d, minus the mins term
// sum_j m_j * (sum of x over sub-block j) scaled by dmin; both sums exact in
// int32 (at most 8 * 63 * 32 * 31 * 127 in magnitude).
template <bool kFifthBit, typename Block>
float DotQ45_K(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const Block*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8K*>(x);
  float acc = 0.0f;
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    const Block& b = wb[i];
    const int8_t* q8 = xb[i].qs;
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      ScaleMinK4(j, b.scales, &sc, &m);
      const uint8_t* qs = b.qs + 32 * (j / 2);
      const int shift = (j & 1) * 4;
      int dot = 0;
      for (int l = 0; l < 32; ++l) {
        int q = (qs[l] >> shift) & 0x0F;
        if constexpr (kFifthBit) q += ((b.qh[l] >> j) & 1) << 4;
        dot += q * q8[32 * j + l];
      }
      sumi += sc * dot;
      summ += m * (xb[i].bsums[2 * j] + xb[i].bsums[2 * j + 1]);
    }
    acc += F16ToF32(b.d) * xb[i].d * static_cast<float>(sumi) -
           F16ToF32(b.dmin) * xb[i].d * static_cast<float>(summ);
  }
  return acc;
}

float DotQ6_K(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const BlockQ6_K*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8K*>(x);
  float acc = 0.0f;
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    const BlockQ6_K& b = wb[i];
    int sumi = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b.ql + 64 * half;
      const uint8_t* qh = b.qh + 32 * half;
      for (int k = 0; k < 4; ++k) {
        const int base = 128 * half + 32 * k;
        for (int g = 0; g < 2; ++g) {  // two scale groups of 16 per 32
          int dot = 0;
          for (int l = 16 * g; l < 16 * g + 16; ++l) {
            const int lo = (ql[l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0x0F;
            const int hi = (qh[l] >> (2 * k)) & 3;
            dot += ((lo | (hi << 4)) - 32) * xb[i].qs[base + l];
          }
          sumi += b.scales[(base >> 4) + g] * dot;
        }
      }
    }
    acc += F16ToF32(b.d) * xb[i].d * static_cast<float>(sumi);
  }
  return acc;
}

template <float (*Dot)(const uint8_t*, const uint8_t*, int64_t)>
void RowDot(const void* w_row, const void* x, size_t x_stride, int n_x, int64_t cols, float* out,
            size_t out_stride) {
  const auto* w = static_cast<const uint8_t*>(w_row);
  const auto* xs = static_cast<const uint8_t*>(x);
  for (int t = 0; t < n_x; ++t) out[t * out_stride] = Dot(w, xs + t * x_stride, cols);
}

}  // namespace

RowDotFn PortableRowDot(DType t) {
  switch (t) {
    case DType::kF32: return RowDot<DotF32>;
    case DType::kF16: return RowDot<DotF16>;
    case DType::kBF16: return RowDot<DotBF16>;
    case DType::kQ4_0: return RowDot<DotQ4_0>;
    case DType::kQ8_0: return RowDot<DotQ8_0>;
    case DType::kQ4_K: return RowDot<DotQ45_K<false, BlockQ4_K>>;
    case DType::kQ5_K: return RowDot<DotQ45_K<true, BlockQ5_K>>;
    case DType::kQ6_K: return RowDot<DotQ6_K>;
    default: return nullptr;
  }
}

}  // namespace hart::runtime::internal

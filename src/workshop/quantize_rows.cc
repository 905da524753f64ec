// Block quantizers with ggml's reference rounding; see quantize_rows.h.
// Each K-quant keeps ggml's per-block structure: weights from the
// sub-block's RMS, a search over candidate scales (MakeQkx2 / MakeQx), the
// sub-block scales quantized to 6 or 8 bits against the block's largest,
// then every value re-quantized against the rounded scale it will be read
// back with.
#include "workshop/quantize_rows.h"

#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/cpu.h"
#include "core/decode.h"
#include "fmt/format.h"
#include "runtime/kernels.h"
#include "runtime/quant_blocks.h"

namespace hart::workshop {
namespace {

using runtime::BlockQ4_0;
using runtime::BlockQ4_K;
using runtime::BlockQ5_K;
using runtime::BlockQ6_K;
using runtime::BlockQ8_0;
using runtime::kQK;
using runtime::kQKK;

// Layouts the runtime does not compute with (ggml's block_q4_1, q5_0, q5_1).
struct __attribute__((packed)) BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);
struct __attribute__((packed)) BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);
struct __attribute__((packed)) BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

constexpr float kGroupMaxEps = 1e-15f;

inline uint16_t ToF16(float f) { return runtime::F32ToF16(f); }
inline float FromF16(uint16_t h) { return F16ToF32(h); }

// Round half to even by adding 1.5 * 2^23 (the float's mantissa then holds
// the integer), valid for |f| <= 2^22 - 1; outside that it yields what the
// same bit trick yields, as in ggml.
inline int NearestInt(float f) {
  float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

// ---- 32-element types ------------------------------------------------------

void Q8_0Scalar(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = ToF16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

// roundf(v) for |v| < 2^23: the integer part plus one when the fraction is
// at least one half (the subtraction is exact), with v's sign.
__attribute__((target("avx2"))) inline __m256i RoundAwayAvx2(__m256 v) {
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
  const __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
  return _mm256_cvttps_epi32(_mm256_or_ps(r, sign));
}

__attribute__((target("avx2"))) inline float MaxAbsAvx2(const float* x, __m256 v[4]) {
  const __m256 mask = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    m = _mm256_max_ps(m, _mm256_andnot_ps(mask, v[k]));
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// Packs 32 int32 lanes (4 vectors) to 32 int8 in element order.
__attribute__((target("avx2"))) inline __m256i Pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
  __m256i ab = _mm256_packs_epi32(a, b);
  __m256i cd = _mm256_packs_epi32(c, d);
  __m256i all = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(all, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

__attribute__((target("avx2"))) void Q8_0Avx2(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    __m256 v[4];
    const float amax = MaxAbsAvx2(x, v);
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = ToF16(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = RoundAwayAvx2(_mm256_mul_ps(v[k], vid));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), Pack32(q[0], q[1], q[2], q[3]));
  }
}

void Q4_0Scalar(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = ToF16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t a = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const uint8_t b = std::min(15, static_cast<int>(static_cast<int8_t>(x[kQK / 2 + j] * id + 8.5f)));
      y[i].qs[j] = a | (b << 4);
    }
  }
}

__attribute__((target("avx2"))) void Q4_0Avx2(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    // The signed value of largest magnitude, first one on ties, as the
    // scalar scan finds it: the max of |x| then the first lane equal to it.
    __m256 v[4];
    const float amax = MaxAbsAvx2(x, v);
    float max = 0.0f;
    if (amax > 0.0f)
      for (int j = 0; j < kQK; ++j)
        if (std::fabs(x[j]) == amax) {
          max = x[j];
          break;
        }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = ToF16(d);
    const __m256 vid = _mm256_set1_ps(id), off = _mm256_set1_ps(8.5f);
    const __m256i fifteen = _mm256_set1_epi32(15);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_min_epi32(
          fifteen, _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[k], vid), off)));
    // Elements j and j + 16 share byte j: low and high nibble.
    __m256i lo = _mm256_packs_epi32(q[0], q[1]);  // 16-bit, lanes mixed
    __m256i hi = _mm256_packs_epi32(q[2], q[3]);
    lo = _mm256_permute4x64_epi64(lo, 0xD8);      // elements 0..15 in order
    hi = _mm256_permute4x64_epi64(hi, 0xD8);      // elements 16..31
    __m256i bytes = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    __m128i packed = _mm_packus_epi16(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs), packed);
  }
}

void Q4_1Scalar(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = ToF16(d);
    y[i].m = ToF16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t a = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
      const uint8_t b =
          std::min(15, static_cast<int>(static_cast<int8_t>((x[kQK / 2 + j] - min) * id + 0.5f)));
      y[i].qs[j] = a | (b << 4);
    }
  }
}

void Q5_0Scalar(const float* x, BlockQ5_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = ToF16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t a = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
      const uint8_t b = std::min(31, static_cast<int>(static_cast<int8_t>(x[kQK / 2 + j] * id + 16.5f)));
      y[i].qs[j] = (a & 0x0F) | ((b & 0x0F) << 4);
      qh |= ((a & 0x10u) >> 4) << j;
      qh |= ((b & 0x10u) >> 4) << (j + kQK / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void Q5_1Scalar(const float* x, BlockQ5_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = ToF16(d);
    y[i].m = ToF16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      // ggml casts straight to uint8_t here, without a clamp.
      const uint8_t a = static_cast<uint8_t>((x[j] - min) * id + 0.5f);
      const uint8_t b = static_cast<uint8_t>((x[kQK / 2 + j] - min) * id + 0.5f);
      y[i].qs[j] = (a & 0x0F) | ((b & 0x0F) << 4);
      qh |= ((a & 0x10u) >> 4) << j;
      qh |= ((b & 0x10u) >> 4) << (j + kQK / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// ---- K-quants --------------------------------------------------------------

// Scale and (negated) min for n values with levels 0..nmax, weighted least
// squares over nstep+1 candidate scales (ggml's make_qkx2_quants).
float MakeQkx2(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
               uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = NearestInt(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Symmetric scale for n values with levels -nmax..nmax-1 stored offset by
// nmax, weights x^2, searched over 19 candidates (make_qx_quants with
// rmse_type 1 and no importance weights).
float MakeQx(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = NearestInt(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = NearestInt(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// The 6-bit scales and mins of Q4_K/Q5_K's eight sub-blocks into 12 bytes
// (the inverse of runtime::ScaleMinK4).
void PackScalesK4(const float* scales, const float* mins, float max_scale, float max_min,
                  uint8_t* out) {
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t ls = static_cast<uint8_t>(NearestInt(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(NearestInt(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      out[j] = ls;
      out[j + 4] = lm;
    } else {
      out[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
      out[j - 4] |= ((ls >> 4) << 6);
      out[j] |= ((lm >> 4) << 6);
    }
  }
}

// Q4_K and Q5_K share everything but the level count and search range.
template <int kMax>
void QuantizeKx(const float* x, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales_out, uint8_t* L,
                float rmin, int nstep) {
  float mins[kQKK / 32], scales[kQKK / 32], weights[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQKK / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = MakeQkx2(32, kMax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  std::memset(scales_out, 0, 12);
  PackScalesK4(scales, mins, max_scale, max_min, scales_out);
  *d_out = ToF16(max_scale / 63.f);
  *dmin_out = ToF16(max_min / 63.f);
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t sc, m;
    runtime::ScaleMinK4(j, scales_out, &sc, &m);
    const float d = FromF16(*d_out) * sc;
    if (d == 0.0f) continue;
    const float dm = FromF16(*dmin_out) * m;
    for (int ii = 0; ii < 32; ++ii) {
      int l = NearestInt((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(kMax, l)));
    }
  }
}

}  // namespace

void QuantizeQ8_0(const float* x, uint8_t* out, int64_t n) {
  auto* y = reinterpret_cast<BlockQ8_0*>(out);
  if (Cpu().avx2) Q8_0Avx2(x, y, n / kQK);
  else Q8_0Scalar(x, y, n / kQK);
}
void QuantizeQ4_0(const float* x, uint8_t* out, int64_t n) {
  auto* y = reinterpret_cast<BlockQ4_0*>(out);
  if (Cpu().avx2) Q4_0Avx2(x, y, n / kQK);
  else Q4_0Scalar(x, y, n / kQK);
}
void QuantizeQ4_1(const float* x, uint8_t* out, int64_t n) {
  Q4_1Scalar(x, reinterpret_cast<BlockQ4_1*>(out), n / kQK);
}
void QuantizeQ5_0(const float* x, uint8_t* out, int64_t n) {
  Q5_0Scalar(x, reinterpret_cast<BlockQ5_0*>(out), n / kQK);
}
void QuantizeQ5_1(const float* x, uint8_t* out, int64_t n) {
  Q5_1Scalar(x, reinterpret_cast<BlockQ5_1*>(out), n / kQK);
}

void QuantizeQ4_K(const float* x, uint8_t* out, int64_t n) {
  auto* y = reinterpret_cast<BlockQ4_K*>(out);
  uint8_t L[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    QuantizeKx<15>(x, &y[i].d, &y[i].dmin, y[i].scales, L, -1.f, 20);
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQKK; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = L[j + l] | (L[j + l + 32] << 4);
  }
}

void QuantizeQ5_K(const float* x, uint8_t* out, int64_t n) {
  auto* y = reinterpret_cast<BlockQ5_K*>(out);
  uint8_t L[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    QuantizeKx<31>(x, &y[i].d, &y[i].dmin, y[i].scales, L, -0.5f, 15);
    uint8_t* qh = y[i].qh;
    uint8_t* ql = y[i].qs;
    std::memset(qh, 0, kQKK / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int k = 0; k < kQKK; k += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[k + j];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        int l2 = L[k + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      m1 <<= 2;
      m2 <<= 2;
    }
  }
}

void QuantizeQ6_K(const float* x, uint8_t* out, int64_t n) {
  auto* y = reinterpret_cast<BlockQ6_K*>(out);
  int8_t L[kQKK];
  float scales[kQKK / 16];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < kQKK / 16; ++ib) {
      const float scale = MakeQx(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      y[i].d = ToF16(0.f);
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = ToF16(1 / iscale);
    for (int ib = 0; ib < kQKK / 16; ++ib)
      y[i].scales[ib] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[ib])));
    for (int j = 0; j < kQKK / 16; ++j) {
      const float d = FromF16(y[i].d) * y[i].scales[j];
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = NearestInt(x[16 * j + ii] / d);
        l = std::max(-32, std::min(31, l));
        L[16 * j + ii] = static_cast<int8_t>(l + 32);
      }
    }
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < kQKK; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = q1 | (q3 << 4);
        ql[l + 32] = q2 | (q4 << 4);
        qh[l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                ((L[j + l + 96] >> 4) << 6);
      }
    }
  }
}

bool CanQuantizeTo(DType t) {
  switch (t) {
    case DType::kQ8_0: case DType::kQ4_0: case DType::kQ4_1: case DType::kQ5_0:
    case DType::kQ5_1: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

absl::Status QuantizeRows(DType t, std::span<const float> x, std::span<uint8_t> out,
                          uint64_t first_index) {
  if (!CanQuantizeTo(t))
    return absl::InvalidArgumentError(fmt::format("cannot quantize to {}", Name(t)));
  const DTypeInfo& info = Info(t);
  if (x.size() % info.block_size != 0)
    return absl::InvalidArgumentError(fmt::format("{} values are not whole {} blocks of {}", x.size(),
                                                  info.name, info.block_size));
  auto need = ByteSize(t, x.size());
  if (!need.ok() || *need != out.size())
    return absl::InvalidArgumentError(
        fmt::format("{} output bytes for {} values of {}", out.size(), x.size(), info.name));
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]))
      return absl::InvalidArgumentError(fmt::format(
          "element {} is {}: quantizing needs finite values", first_index + i, std::isnan(x[i]) ? "NaN" : "infinite"));
  const float* p = x.data();
  uint8_t* o = out.data();
  const int64_t n = static_cast<int64_t>(x.size());
  switch (t) {
    case DType::kQ8_0: QuantizeQ8_0(p, o, n); break;
    case DType::kQ4_0: QuantizeQ4_0(p, o, n); break;
    case DType::kQ4_1: QuantizeQ4_1(p, o, n); break;
    case DType::kQ5_0: QuantizeQ5_0(p, o, n); break;
    case DType::kQ5_1: QuantizeQ5_1(p, o, n); break;
    case DType::kQ4_K: QuantizeQ4_K(p, o, n); break;
    case DType::kQ5_K: QuantizeQ5_K(p, o, n); break;
    case DType::kQ6_K: QuantizeQ6_K(p, o, n); break;
    default: break;
  }
  return absl::OkStatus();
}

}  // namespace hart::workshop

// Test-side encoders of the ggml block layouts, written from the layout
// description (not from the runtime's decoder), and simple reference
// quantizers built on them. Used by the kernel tests to make weights whose
// exact values are known.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "runtime/kernels.h"

namespace hart::runtime::testing {

inline void PutU16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

inline uint16_t ToBF16(float f) {  // round to nearest even; inputs are finite
  uint32_t x = std::bit_cast<uint32_t>(f);
  x += 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

// Q4_0: 18 bytes = f16 d, 16 bytes; element j < 16 is the low nibble of byte
// j, element j + 16 its high nibble; value (q - 8) * d, q in [0, 15].
inline void EncodeQ4_0(uint16_t d, const int* q, uint8_t* out) {
  PutU16(out, d);
  for (int j = 0; j < 16; ++j) out[2 + j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
}

// Q8_0: 34 bytes = f16 d, 32 int8.
inline void EncodeQ8_0(uint16_t d, const int* q, uint8_t* out) {
  PutU16(out, d);
  for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q[j]));
}

// The 12 scale bytes of Q4_K/Q5_K: sub-blocks 0-3 keep scale and min in the
// low 6 bits of bytes 0-3 and 4-7; sub-blocks 4-7 keep their low 4 bits in
// bytes 8-11 (scale low nibble, min high nibble) and their top 2 bits in the
// top bits of bytes 0-3 (scale) and 4-7 (min).
inline void PackScalesK(const int* sc, const int* m, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

// Q4_K: 144 bytes = f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles;
// sub-block j (32 elements) sits in bytes 32 * (j / 2) .. +31, low nibbles
// for even j, high for odd. Value d * sc_j * q - dmin * m_j, q in [0, 15].
inline void EncodeQ4_K(uint16_t d, uint16_t dmin, const int* sc, const int* m, const int* q,
                       uint8_t* out) {
  PutU16(out, d);
  PutU16(out + 2, dmin);
  PackScalesK(sc, m, out + 4);
  uint8_t* qs = out + 16;
  std::memset(qs, 0, 128);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32, l = e % 32;
    qs[32 * (j / 2) + l] |= static_cast<uint8_t>(q[e] << (4 * (j % 2)));
  }
}

// Q5_K: 176 bytes = d, dmin, 12 scale bytes, 32 bytes qh, 128 bytes qs; as
// Q4_K with q in [0, 31] whose bit 4 is bit j of qh[l] (element 32j + l).
inline void EncodeQ5_K(uint16_t d, uint16_t dmin, const int* sc, const int* m, const int* q,
                       uint8_t* out) {
  PutU16(out, d);
  PutU16(out + 2, dmin);
  PackScalesK(sc, m, out + 4);
  uint8_t* qh = out + 16;
  uint8_t* qs = out + 48;
  std::memset(qh, 0, 32 + 128);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32, l = e % 32;
    qs[32 * (j / 2) + l] |= static_cast<uint8_t>((q[e] & 15) << (4 * (j % 2)));
    if (q[e] & 16) qh[l] |= static_cast<uint8_t>(1 << j);
  }
}

// Q6_K: 210 bytes = 128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d. In
// half h, element 128h + 32k + l keeps its low nibble in
// ql[64h + l + 32 * (k % 2)] (low nibble for k < 2, high for k >= 2) and its
// top two bits at bits 2k of qh[32h + l]. Value d * scale[e / 16] * q with
// q in [-32, 31] stored as q + 32.
inline void EncodeQ6_K(uint16_t d, const int* sc, const int* q, uint8_t* out) {
  uint8_t* ql = out;
  uint8_t* qh = out + 128;
  std::memset(out, 0, 192);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int u = q[e] + 32;
    ql[64 * h + l + 32 * (k % 2)] |= static_cast<uint8_t>((u & 15) << (4 * (k / 2)));
    qh[32 * h + l] |= static_cast<uint8_t>((u >> 4) << (2 * k));
  }
  for (int g = 0; g < 16; ++g) out[192 + g] = static_cast<uint8_t>(static_cast<int8_t>(sc[g]));
  PutU16(out + 208, d);
}

inline int Round(float v) { return static_cast<int>(std::lround(v)); }

// Reference quantizers: plain round-to-nearest with one scale per block (and
// a min for Q4_K/Q5_K), good enough to give realistic weights.
inline std::vector<uint8_t> Quantize(DType t, const std::vector<float>& x) {
  const auto& info = Info(t);
  const size_t nb = x.size() / info.block_size;
  std::vector<uint8_t> out(nb * info.type_size);
  for (size_t b = 0; b < nb; ++b) {
    const float* v = x.data() + b * info.block_size;
    uint8_t* o = out.data() + b * info.type_size;
    switch (t) {
      case DType::kF32: std::memcpy(o, v, 4); break;
      case DType::kF16: PutU16(o, F32ToF16(*v)); break;
      case DType::kBF16: PutU16(o, ToBF16(*v)); break;
      case DType::kQ4_0:
      case DType::kQ8_0: {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
        const int qmax = t == DType::kQ4_0 ? 7 : 127;
        const uint16_t dh = F32ToF16(amax / qmax);
        const float d = F16ToF32(dh);
        int q[32];
        for (int j = 0; j < 32; ++j) {
          int r = d > 0 ? Round(v[j] / d) : 0;
          r = std::clamp(r, -qmax - 1, qmax);
          q[j] = t == DType::kQ4_0 ? r + 8 : r;
        }
        if (t == DType::kQ4_0) EncodeQ4_0(dh, q, o); else EncodeQ8_0(dh, q, o);
        break;
      }
      case DType::kQ4_K:
      case DType::kQ5_K: {
        const int qmax = t == DType::kQ4_K ? 15 : 31;
        float scale[8], minv[8];
        for (int j = 0; j < 8; ++j) {
          float lo = 0, hi = 0;
          for (int l = 0; l < 32; ++l) lo = std::min(lo, v[32 * j + l]), hi = std::max(hi, v[32 * j + l]);
          scale[j] = (hi - lo) / qmax;
          minv[j] = -lo;
        }
        const float smax = *std::max_element(scale, scale + 8);
        const float mmax = *std::max_element(minv, minv + 8);
        const uint16_t dh = F32ToF16(smax / 63), mh = F32ToF16(mmax / 63);
        const float d = F16ToF32(dh), dmin = F16ToF32(mh);
        int sc[8], m[8], q[256];
        for (int j = 0; j < 8; ++j) {
          sc[j] = d > 0 ? std::clamp(Round(scale[j] / d), 1, 63) : 0;
          m[j] = dmin > 0 ? std::clamp(Round(minv[j] / dmin), 0, 63) : 0;
          for (int l = 0; l < 32; ++l) {
            const float step = d * sc[j];
            q[32 * j + l] = step > 0 ? std::clamp(Round((v[32 * j + l] + dmin * m[j]) / step), 0, qmax) : 0;
          }
        }
        if (t == DType::kQ4_K) EncodeQ4_K(dh, mh, sc, m, q, o); else EncodeQ5_K(dh, mh, sc, m, q, o);
        break;
      }
      case DType::kQ6_K: {
        float scale[16];
        for (int g = 0; g < 16; ++g) {
          float amax = 0;
          for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(v[16 * g + l]));
          scale[g] = amax / 31;
        }
        const uint16_t dh = F32ToF16(*std::max_element(scale, scale + 16) / 127);
        const float d = F16ToF32(dh);
        int sc[16], q[256];
        for (int g = 0; g < 16; ++g) {
          sc[g] = d > 0 ? std::clamp(Round(scale[g] / d), -128, 127) : 0;
          for (int l = 0; l < 16; ++l) {
            const float step = d * sc[g];
            q[16 * g + l] = step != 0 ? std::clamp(Round(v[16 * g + l] / step), -32, 31) : 0;
          }
        }
        EncodeQ6_K(dh, sc, q, o);
        break;
      }
      default: break;
    }
  }
  return out;
}

inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& f : v) f = dist(rng);
  return v;
}

}  // namespace hart::runtime::testing

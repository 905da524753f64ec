#include "core/decode.h"

#include "core/cpu.h"

#include <immintrin.h>

#include <bit>
#include <cstring>

#include "core/status.h"
#include "fmt/format.h"

namespace hart {
namespace {

// ggml block sizes: QK = 32 elements (Q4_0, Q8_0), QK_K = 256 (K-quants).
constexpr int kQK = 32;
constexpr int kQKK = 256;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Scale and min of sub-block j (< 8) of a Q4_K/Q5_K block, 6 bits each: j < 4
// use the low 6 bits of bytes j and j+4; j >= 4 take their low four bits from
// byte j+4 and their top two from the spare bits of bytes j-4 and j.
void ScaleMinK4(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_0 block (18 bytes): f16 d, 16 bytes of nibbles; x[j] = (lo - 8) * d,
// x[j + 16] = (hi - 8) * d.
void DecodeQ4_0(const uint8_t* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 18, y += kQK) {
    const float d = F16ToF32(Load<uint16_t>(b));
    const uint8_t* qs = b + 2;
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = ((qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = ((qs[j] >> 4) - 8) * d;
    }
  }
}

// Q8_0 block (34 bytes): f16 d, 32 int8; x = q * d.
void DecodeQ8_0(const uint8_t* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 34, y += kQK) {
    const float d = F16ToF32(Load<uint16_t>(b));
    const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < kQK; ++j) y[j] = qs[j] * d;
  }
}

// Q4_K block (144 bytes): f16 d, f16 dmin, 12 bytes scales, 128 bytes qs.
void DecodeQ4_K(const uint8_t* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 144) {
    const float d = F16ToF32(Load<uint16_t>(b));
    const float dmin = F16ToF32(Load<uint16_t>(b + 2));
    const uint8_t* scales = b + 4;
    const uint8_t* q = b + 16;
    for (int j = 0; j < 8; j += 2, q += 32) {
      uint8_t sc, m;
      ScaleMinK4(j, scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      ScaleMinK4(j + 1, scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

// Q5_K block (176 bytes): f16 d, f16 dmin, 12 bytes scales, 32 bytes qh
// (fifth bits), 128 bytes qs.
void DecodeQ5_K(const uint8_t* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 176) {
    const float d = F16ToF32(Load<uint16_t>(b));
    const float dmin = F16ToF32(Load<uint16_t>(b + 2));
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + 48;
    for (int j = 0; j < 8; j += 2, ql += 32) {
      uint8_t sc, m;
      ScaleMinK4(j, scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      ScaleMinK4(j + 1, scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      const uint8_t u1 = static_cast<uint8_t>(1 << j), u2 = static_cast<uint8_t>(2 << j);
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0x0F) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

// Q6_K block (210 bytes): 128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d.
void DecodeQ6_K(const uint8_t* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 210) {
    const float d = F16ToF32(Load<uint16_t>(b + 208));
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

// F16 is the common case for tensor_stats (>= 1 GB/s per core wanted):
// F16C converts eight halves per instruction, exactly (every f16, subnormals
// and NaN payloads included, is representable in f32).
__attribute__((target("f16c,avx"))) void DecodeF16C(const uint8_t* p, float* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i));
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) y[i] = F16ToF32(Load<uint16_t>(p + 2 * i));
}

bool HaveF16C() {
  static const bool have = Cpu().f16c;
  return have;
}

template <typename T>
void DecodeInts(const uint8_t* p, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(Load<T>(p + sizeof(T) * i));
}

}  // namespace

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24 is exact in float
    float f = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return std::bit_cast<float>(std::bit_cast<uint32_t>(f) | sign);
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

float BF16ToF32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

float F8E5M2ToF32(uint8_t b) { return F16ToF32(static_cast<uint16_t>(b << 8)); }

float F8E4M3ToF32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80) << 24;
  const uint32_t exp = (b >> 3) & 0x0F;
  const uint32_t mant = b & 0x07;
  if (exp == 15 && mant == 7) return std::bit_cast<float>(sign | 0x7FC00000u);
  if (exp == 0) {  // subnormal: mant * 2^-9
    float f = static_cast<float>(mant) * (1.0f / 512.0f);
    return std::bit_cast<float>(std::bit_cast<uint32_t>(f) | sign);
  }
  return std::bit_cast<float>(sign | ((exp + 120) << 23) | (mant << 20));
}

bool CanDecode(DType t) {
  switch (t) {
    case DType::kF64: case DType::kF32: case DType::kF16: case DType::kBF16:
    case DType::kF8E4M3: case DType::kF8E5M2: case DType::kI64: case DType::kI32:
    case DType::kI16: case DType::kI8: case DType::kU8: case DType::kU16: case DType::kU32:
    case DType::kU64: case DType::kBool: case DType::kQ8_0: case DType::kQ4_0:
    case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

absl::Status DecodeToF32(DType t, std::span<const uint8_t> bytes, std::span<float> out) {
  if (!CanDecode(t))
    return absl::UnimplementedError(fmt::format("cannot decode dtype {} to float", Name(t)));
  const size_t n = out.size();
  auto need = ByteSize(t, n);
  if (!need.ok()) return need.status();
  if (*need != bytes.size())
    return absl::InvalidArgumentError(fmt::format("decode {}: {} elements need {} bytes, got {}",
                                                  Name(t), n, *need, bytes.size()));
  const uint8_t* p = bytes.data();
  float* y = out.data();
  const size_t nb = n / Info(t).block_size;
  switch (t) {
    case DType::kF32: if (n) std::memcpy(y, p, n * 4); break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(Load<double>(p + 8 * i));
      break;
    case DType::kF16:
      if (HaveF16C()) DecodeF16C(p, y, n);
      else for (size_t i = 0; i < n; ++i) y[i] = F16ToF32(Load<uint16_t>(p + 2 * i));
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) y[i] = BF16ToF32(Load<uint16_t>(p + 2 * i));
      break;
    case DType::kF8E4M3: for (size_t i = 0; i < n; ++i) y[i] = F8E4M3ToF32(p[i]); break;
    case DType::kF8E5M2: for (size_t i = 0; i < n; ++i) y[i] = F8E5M2ToF32(p[i]); break;
    case DType::kI64: DecodeInts<int64_t>(p, y, n); break;
    case DType::kI32: DecodeInts<int32_t>(p, y, n); break;
    case DType::kI16: DecodeInts<int16_t>(p, y, n); break;
    case DType::kI8: DecodeInts<int8_t>(p, y, n); break;
    case DType::kU64: DecodeInts<uint64_t>(p, y, n); break;
    case DType::kU32: DecodeInts<uint32_t>(p, y, n); break;
    case DType::kU16: DecodeInts<uint16_t>(p, y, n); break;
    case DType::kU8: DecodeInts<uint8_t>(p, y, n); break;
    case DType::kBool: for (size_t i = 0; i < n; ++i) y[i] = p[i] ? 1.0f : 0.0f; break;
    case DType::kQ8_0: DecodeQ8_0(p, y, nb); break;
    case DType::kQ4_0: DecodeQ4_0(p, y, nb); break;
    case DType::kQ4_K: DecodeQ4_K(p, y, nb); break;
    case DType::kQ5_K: DecodeQ5_K(p, y, nb); break;
    case DType::kQ6_K: DecodeQ6_K(p, y, nb); break;
    default: break;
  }
  return absl::OkStatus();
}

}  // namespace hart

// IEEE binary16 and bfloat16 scalar conversions, bit-exact and independent
// of the compiler's _Float16 support. Decoding is core's (one definition for
// every module); encoding to f16 lives here, the kernels' tests and tools
// being its users.
#include <bit>
#include <cstdint>

#include "core/decode.h"
#include "runtime/kernels.h"

namespace hart::runtime {

float F16ToF32(uint16_t h) { return hart::F16ToF32(h); }

uint16_t F32ToF16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7FFFFFFF;
  if (abs > 0x7F800000) {  // NaN: keep the top payload bits, stay a NaN
    return sign | 0x7E00 | static_cast<uint16_t>((abs >> 13) & 0x3FF);
  }
  // 65520 is halfway between 65504 (largest half) and 65536; ties go to the
  // even neighbour, which is the overflow, so >= 65520 becomes inf.
  if (abs >= 0x477FF000) return sign | 0x7C00;
  const uint32_t e = abs >> 23;
  if (e < 113) {
    // Half subnormal (or zero): the result is round(|f| * 2^24). With the
    // implicit bit, |f| * 2^24 = full >> (126 - e).
    if (e < 102) return sign;  // below 2^-25: rounds to zero
    const uint32_t full = (abs & 0x7FFFFF) | 0x800000;
    const uint32_t s = 126 - e;  // 14 .. 24
    uint32_t q = full >> s;
    const uint32_t rem = full & ((1u << s) - 1);
    const uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;  // may carry into the smallest normal
    return sign | static_cast<uint16_t>(q);
  }
  uint32_t q = ((e - 112) << 10) | ((abs >> 13) & 0x3FF);
  const uint32_t rem = abs & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) ++q;  // carry may bump the exponent
  return sign | static_cast<uint16_t>(q);
}

float BF16ToF32(uint16_t h) { return hart::BF16ToF32(h); }

}  // namespace hart::runtime

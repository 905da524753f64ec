// Constants and encoding facts shared by the GGUF reader and writer; not part
// of the public surface (gguf.h).
#pragma once

#include <bit>
#include <cstdint>
#include <string_view>

#include "formats/gguf.h"
#include "formats/limits.h"

namespace hart::formats::gguf_internal {

static_assert(std::endian::native == std::endian::little,
              "GGUF is little-endian; the reader copies fields straight from the bytes");

inline constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
inline constexpr uint32_t kWriteVersion = 3;
inline constexpr uint64_t kDefaultAlignment = 32;
inline constexpr std::string_view kAlignmentKey = "general.alignment";
// kMaxDims, kMaxArrayDepth, kMaxMetadataItems, ...: formats/limits.h.

inline bool IsKnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

// Encoded bytes of a fixed-size scalar; 0 for string and array.
inline uint64_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
    case GgufType::kString: case GgufType::kArray: return 0;
  }
  return 0;
}

// Fewest bytes one value of type t can take: bounds array counts before any
// allocation. String: its uint64 length; array: element type + count.
inline uint64_t MinEncodedSize(GgufType t) {
  if (t == GgufType::kString) return 8;
  if (t == GgufType::kArray) return 12;
  return ScalarSize(t);
}

inline bool IsIntegerType(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16: case GgufType::kInt16:
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kUint64: case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}
inline bool IsSignedType(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}
inline bool IsFloatType(GgufType t) {
  return t == GgufType::kFloat32 || t == GgufType::kFloat64;
}

// Rounds up to a multiple of the power of two `a`; false on overflow.
inline bool AlignUp(uint64_t x, uint64_t a, uint64_t* out) {
  uint64_t r;
  if (__builtin_add_overflow(x, a - 1, &r)) return false;
  *out = r & ~(a - 1);
  return true;
}

}  // namespace hart::formats::gguf_internal

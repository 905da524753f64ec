// DType: every element type Hartonomous stores, safetensors and ggml alike.
// Quantized ggml types are opaque blocks: `block_size` elements take
// `type_size` bytes. Plain types have block_size 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"

namespace hart {

enum class DType : uint8_t {
  // Plain element types (safetensors and ggml).
  kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8,
  kBool, kF8E4M3, kF8E5M2,
  // ggml block-quantized types.
  kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ8_0, kQ8_1,
  kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K, kQ8_K,
  kIQ2_XXS, kIQ2_XS, kIQ3_XXS, kIQ1_S, kIQ4_NL, kIQ3_S, kIQ2_S, kIQ4_XS,
  kIQ1_M, kTQ1_0, kTQ2_0, kMXFP4,
  kCount,
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;              // canonical name: "F32", "Q4_K", "F8_E4M3"
  std::string_view safetensors_name;  // "" when safetensors has no such type
  int ggml_type;                      // ggml_type id; -1 when ggml has none
  uint32_t block_size;                // elements per block
  uint32_t type_size;                 // bytes per block
};

const DTypeInfo& Info(DType t);
inline std::string_view Name(DType t) { return Info(t).name; }
inline bool IsQuantized(DType t) { return Info(t).block_size > 1; }

// Lookups return NotFound for unknown names / ids.
absl::StatusOr<DType> DTypeFromName(std::string_view name);
absl::StatusOr<DType> DTypeFromSafetensors(std::string_view name);
absl::StatusOr<DType> DTypeFromGgml(uint32_t ggml_type);

// Bytes taken by `elements` elements; InvalidArgument when `elements` is not a
// whole number of blocks, or on overflow.
absl::StatusOr<uint64_t> ByteSize(DType t, uint64_t elements);

}  // namespace hart

#include "core/dtype.h"

#include <array>

#include "fmt/format.h"

namespace hart {
namespace {

// ggml ids and block layouts follow ggml's type table (ggml.h / ggml.c).
// QK_K = 256. Ids 4, 5 and 31-33, 36-38 are retired in ggml.
constexpr std::array<DTypeInfo, static_cast<size_t>(DType::kCount)> kTable = {{
    {DType::kF64, "F64", "F64", 28, 1, 8},
    {DType::kF32, "F32", "F32", 0, 1, 4},
    {DType::kF16, "F16", "F16", 1, 1, 2},
    {DType::kBF16, "BF16", "BF16", 30, 1, 2},
    {DType::kI64, "I64", "I64", 27, 1, 8},
    {DType::kI32, "I32", "I32", 26, 1, 4},
    {DType::kI16, "I16", "I16", 25, 1, 2},
    {DType::kI8, "I8", "I8", 24, 1, 1},
    {DType::kU64, "U64", "U64", -1, 1, 8},
    {DType::kU32, "U32", "U32", -1, 1, 4},
    {DType::kU16, "U16", "U16", -1, 1, 2},
    {DType::kU8, "U8", "U8", -1, 1, 1},
    {DType::kBool, "BOOL", "BOOL", -1, 1, 1},
    {DType::kF8E4M3, "F8_E4M3", "F8_E4M3", -1, 1, 1},
    {DType::kF8E5M2, "F8_E5M2", "F8_E5M2", -1, 1, 1},
    {DType::kQ4_0, "Q4_0", "", 2, 32, 18},
    {DType::kQ4_1, "Q4_1", "", 3, 32, 20},
    {DType::kQ5_0, "Q5_0", "", 6, 32, 22},
    {DType::kQ5_1, "Q5_1", "", 7, 32, 24},
    {DType::kQ8_0, "Q8_0", "", 8, 32, 34},
    {DType::kQ8_1, "Q8_1", "", 9, 32, 36},
    {DType::kQ2_K, "Q2_K", "", 10, 256, 84},
    {DType::kQ3_K, "Q3_K", "", 11, 256, 110},
    {DType::kQ4_K, "Q4_K", "", 12, 256, 144},
    {DType::kQ5_K, "Q5_K", "", 13, 256, 176},
    {DType::kQ6_K, "Q6_K", "", 14, 256, 210},
    {DType::kQ8_K, "Q8_K", "", 15, 256, 292},
    {DType::kIQ2_XXS, "IQ2_XXS", "", 16, 256, 66},
    {DType::kIQ2_XS, "IQ2_XS", "", 17, 256, 74},
    {DType::kIQ3_XXS, "IQ3_XXS", "", 18, 256, 98},
    {DType::kIQ1_S, "IQ1_S", "", 19, 256, 50},
    {DType::kIQ4_NL, "IQ4_NL", "", 20, 32, 18},
    {DType::kIQ3_S, "IQ3_S", "", 21, 256, 110},
    {DType::kIQ2_S, "IQ2_S", "", 22, 256, 82},
    {DType::kIQ4_XS, "IQ4_XS", "", 23, 256, 136},
    {DType::kIQ1_M, "IQ1_M", "", 29, 256, 56},
    {DType::kTQ1_0, "TQ1_0", "", 34, 256, 54},
    {DType::kTQ2_0, "TQ2_0", "", 35, 256, 66},
    {DType::kMXFP4, "MXFP4", "", 39, 32, 17},
}};

constexpr bool TableInOrder() {
  for (size_t i = 0; i < kTable.size(); ++i)
    if (static_cast<size_t>(kTable[i].dtype) != i) return false;
  return true;
}
static_assert(TableInOrder(), "kTable must follow the DType enum order");

}  // namespace

const DTypeInfo& Info(DType t) { return kTable[static_cast<size_t>(t)]; }

absl::StatusOr<DType> DTypeFromName(std::string_view name) {
  for (const auto& e : kTable)
    if (e.name == name) return e.dtype;
  return absl::NotFoundError(fmt::format("unknown dtype '{}'", name));
}

absl::StatusOr<DType> DTypeFromSafetensors(std::string_view name) {
  for (const auto& e : kTable)
    if (!e.safetensors_name.empty() && e.safetensors_name == name) return e.dtype;
  return absl::NotFoundError(fmt::format("unknown safetensors dtype '{}'", name));
}

absl::StatusOr<DType> DTypeFromGgml(uint32_t ggml_type) {
  for (const auto& e : kTable)
    if (e.ggml_type >= 0 && static_cast<uint32_t>(e.ggml_type) == ggml_type) return e.dtype;
  return absl::NotFoundError(fmt::format("unknown ggml type {}", ggml_type));
}

absl::StatusOr<uint64_t> ByteSize(DType t, uint64_t elements) {
  const DTypeInfo& i = Info(t);
  if (elements % i.block_size != 0)
    return absl::InvalidArgumentError(
        fmt::format("{} elements is not a whole number of {} blocks of {}", elements,
                    i.name, i.block_size));
  uint64_t blocks = elements / i.block_size;
  uint64_t bytes;
  if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(i.type_size), &bytes))
    return absl::InvalidArgumentError("tensor byte size overflows 64 bits");
  return bytes;
}

}  // namespace hart

// The weight types the kernels compute with, and their dequantization, which
// is core's DecodeToF32 (ggml's reference dequantize_row_*, value for value)
// so the store, the MQE and the runtime share one meaning of stored bytes.
#include "core/decode.h"
#include "runtime/kernels.h"

namespace hart::runtime {

bool IsSupportedWeightType(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void Dequantize(DType t, const void* src, float* dst, int64_t n) {
  const auto bytes = ByteSize(t, static_cast<uint64_t>(n));
  if (IsSupportedWeightType(t) && bytes.ok() &&
      DecodeToF32(t, {static_cast<const uint8_t*>(src), *bytes},
                  {dst, static_cast<size_t>(n)}).ok())
    return;
  // Unsupported types or partial blocks have no defined values; NaN makes
  // misuse visible instead of computing with garbage (callers check
  // IsSupportedWeightType / CheckWeightMatrix).
  for (int64_t i = 0; i < n; ++i) dst[i] = __builtin_nanf("");
}

}  // namespace hart::runtime

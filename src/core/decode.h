// Decoding stored tensor elements to float32: every plain element type and
// the ggml block types Q8_0, Q4_0, Q4_K, Q5_K and Q6_K. Core owns this so
// the store (fingerprints at ingest), the MQE (tensor_stats) and the runtime
// share one definition of what a stored byte means. Values follow ggml's
// reference dequantize_row_* exactly (same float operations, same order).
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "core/dtype.h"

namespace hart {

// True for the types DecodeToF32 understands.
bool CanDecode(DType t);

// Decodes out.size() elements from `bytes`, which must hold exactly
// ByteSize(t, out.size()) bytes (for block types, out.size() is a whole
// number of blocks). Unimplemented on a type CanDecode refuses, naming it;
// InvalidArgument on a size mismatch. Integers and bools convert by value
// (large 64-bit values round to the nearest float).
absl::Status DecodeToF32(DType t, std::span<const uint8_t> bytes, std::span<float> out);

// Scalar conversions, exact; NaN payloads and infinities are kept.
float F16ToF32(uint16_t h);
float BF16ToF32(uint16_t h);
float F8E4M3ToF32(uint8_t b);  // OCP "E4M3FN": no infinities, S.1111.111 is NaN, max 448
float F8E5M2ToF32(uint8_t b);  // IEEE-like: the top byte of an F16

}  // namespace hart

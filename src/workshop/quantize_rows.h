// ggml's reference block quantizers (quantize_row_*_ref of ggml-quants.c),
// reimplemented to give the same bytes: the same float operations in the
// same order, round-half-even through the 1.5*2^23 trick (nearest_int),
// roundf for Q8_0, truncation toward zero where ggml casts to int8.
// The library is built with -ffp-contract=off (workshop.cmake) so no
// multiply-add is fused that ggml's C does not fuse.
//
// Every function quantizes n floats (a multiple of the type's block size)
// to out (exactly ByteSize(type, n) bytes). Inputs must be finite; callers
// check (QuantizeRows does).
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "core/dtype.h"

namespace hart::workshop {

// The types QuantizeRows makes.
bool CanQuantizeTo(DType t);

// Quantizes `x` (whole blocks) into `out`. InvalidArgument naming the
// element (its index + first_index) for NaN or infinity, or for sizes that
// do not fit the type.
absl::Status QuantizeRows(DType t, std::span<const float> x, std::span<uint8_t> out,
                          uint64_t first_index = 0);

// One row each, no checks (benchmarks, tests).
void QuantizeQ8_0(const float* x, uint8_t* out, int64_t n);
void QuantizeQ4_0(const float* x, uint8_t* out, int64_t n);
void QuantizeQ4_1(const float* x, uint8_t* out, int64_t n);
void QuantizeQ5_0(const float* x, uint8_t* out, int64_t n);
void QuantizeQ5_1(const float* x, uint8_t* out, int64_t n);
void QuantizeQ4_K(const float* x, uint8_t* out, int64_t n);
void QuantizeQ5_K(const float* x, uint8_t* out, int64_t n);
void QuantizeQ6_K(const float* x, uint8_t* out, int64_t n);

}  // namespace hart::workshop

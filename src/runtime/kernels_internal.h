// Internals of the kernels shared by kernels.cc, the per-ISA files and the
// tests: the activation formats, the per-ISA row-dot table and a MatMul that
// takes the ISA explicitly (so tests run both paths on one machine).
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/kernels.h"

namespace hart::runtime::internal {

// In order of preference; each x86 level needs the one below it (the AVX-512
// file falls back to the AVX2 kernels for types it has none for).
enum class Isa { kPortable, kAvx2, kAvx512 };
const char* IsaName(Isa isa);  // "portable", "avx2", "avx512"


// True when the CPU (and OS) can run `isa`.
bool IsaSupported(Isa isa);
// The ISA MatMul uses: the best supported one (AVX-512 F/BW/VL/VNNI, then
// AVX2+FMA+F16C, then portable); HART_KERNELS=portable|avx2|avx512 caps it
// (a level the CPU lacks gives the best one below it).
Isa ActiveIsa();

// How MatMul presents activation rows to a weight type's dot product.
enum class ActFormat {
  kF32,   // plain float row (F32, F16, BF16 weights)
  kQ8,    // ActBlockQ8 per 32 (Q4_0, Q8_0)
  kQ8K,   // ActBlockQ8K per 256 (Q4_K, Q5_K, Q6_K)
  kQ8x8,  // ActGroupQ8 per 256 (Q4_0, Q8_0 on AVX2 and AVX-512): kQ8's bytes transposed
};
// The format of type t's activations on the portable path (the values every
// path multiplies; kQ8x8 only rearranges kQ8's).
ActFormat ActivationFormat(DType t);
size_t ActivationRowBytes(ActFormat f, int64_t cols);
// Writes one activation row of `cols` floats in format f to dst
// (ActivationRowBytes(f, cols) bytes). cols is a whole number of blocks.
void QuantizeActivationRow(ActFormat f, const float* x, int64_t cols, void* dst);

// out[t * out_stride] = dot(weight row, activation row t) for t < n_x, the
// activation rows lying x_stride bytes apart. One weight row against several
// tokens lets an implementation unpack the weights once.
using RowDotFn = void (*)(const void* w_row, const void* x, size_t x_stride, int n_x,
                          int64_t cols, float* out, size_t out_stride);

// Decode (one activation row) for n_rows <= kRowsPerDot consecutive weight
// rows lying row_bytes apart: out[r] = dot(weight row r, x). Sharing the
// activation loads and per-block work between rows is what makes it faster
// than n_rows RowDot calls; each out[r] must be bit-identical to what RowDot
// gives for that row, so results never depend on how rows are grouped (head
// slices of the streamer, thread chunks).
inline constexpr int kRowsPerDot = 4;
using RowsDotFn = void (*)(const void* w, size_t row_bytes, int n_rows, const void* x, int64_t cols,
                           float* out);

// Row dot of weight type t on `isa`; nullptr when t is unsupported.
RowDotFn PortableRowDot(DType t);
RowDotFn Avx2RowDot(DType t);  // nullptr too when built without AVX2 support
// Multi-row decode kernels; nullptr where a type has none (RowDot is used).
RowsDotFn Avx2RowsDot(DType t);
// AVX-512 VNNI kernels (Q4_0 and Q8_0, activations in kQ8x8 as on AVX2); nullptr for
// other types and when built without AVX-512 support.
RowDotFn Avx512RowDot(DType t);
RowsDotFn Avx512RowsDot(DType t);
// The same kernels for packed rows (runtime::PackRows; Q8_0 and Q4_0, else nullptr):
// bit-identical results, without the per-group transpose.
RowDotFn Avx2PackedRowDot(DType t);
RowsDotFn Avx2PackedRowsDot(DType t);
RowDotFn Avx512PackedRowDot(DType t);
RowsDotFn Avx512PackedRowsDot(DType t);

// What MatMul runs for type t on `isa` (which must be supported): the row
// dot, the multi-row decode kernel (nullptr: none) and the activation format
// both expect. Types an ISA has no kernel for get the next ISA down's.
struct KernelSet {
  RowDotFn dot = nullptr;
  RowsDotFn rows_dot = nullptr;
  ActFormat format = ActFormat::kF32;
};
// `packed`: w.packed matrices (PackRows's layout; Q8_0).
KernelSet SelectKernels(Isa isa, DType t, bool packed = false);

// Quantizes n (a multiple of 32) activations to int8 with scale amax / 127,
// rounding half to even; returns the scale (NaN with zeros when a value is
// not finite). The AVX2 version gives the same bytes as the portable one.
using QuantizeBlockFn = float (*)(const float* x, int n, int8_t* q);
QuantizeBlockFn Avx2QuantizeBlock();  // nullptr when built without AVX2 support

// MatMul on the given ISA (which must be supported).
void MatMulIsa(Isa isa, const WeightMatrix& w, const float* x, float* y, int64_t n_tokens,
               ThreadPool& pool);

}  // namespace hart::runtime::internal

// Kernels: the weight-type table and the matrix routines of the forward pass.
// One row per weight type (block size, bytes per block, dequantize, dot), as
// llama.cpp does; AVX-512 VNNI and AVX2/FMA/F16C variants chosen at run time
// from CPUID, with a portable fallback that gives the same results within
// float rounding.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

namespace hart::runtime {

// Weight types the runtime computes with.
bool IsSupportedWeightType(DType t);

// A row-major weight matrix [rows, cols] in its stored type; each row is
// cols / block_size blocks. `data` is borrowed (mapped from a pack or a file).
// `packed`: the rows are in PackRows's layout (Q8_0 and Q4_0 only).
struct WeightMatrix {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  bool packed = false;
};

// Whether rows of type t, `cols` values long, have a packed layout the
// active kernels read faster (Q8_0 and Q4_0 on AVX2 and AVX-512: each group
// of eight blocks is stored pre-transposed, which the kernels otherwise redo
// on every pass).
bool PackedLayoutHelps(DType t, int64_t cols);
// Rewrites `rows` rows of type t (a type PackedLayoutHelps accepts), `cols`
// values each, in place into the packed layout (PackedGroupQ8_0 and
// PackedGroupQ4_0 in runtime/quant_blocks.h), or back. Each row keeps its size and place, so
// row r of a packed matrix is still at r * row bytes.
void PackRows(DType t, int64_t cols, void* data, int64_t rows);
void UnpackRows(DType t, int64_t cols, void* data, int64_t rows);

// Ok when MatMul/GetRow can compute with w: a supported type, rows > 0, cols
// a positive whole number of blocks, data present, packed only for Q8_0/Q4_0. MatMul and GetRow cannot
// report errors, so on a matrix that fails this they write NaN.
absl::Status CheckWeightMatrix(const WeightMatrix& w);

// y[t, r] = sum_c W[r, c] * x[t, c] for t < n_tokens. x is [n_tokens, cols]
// float, y is [n_tokens, rows] float. Rows are split among the pool's threads;
// n_tokens > 1 (prefill) runs as matrix-matrix work, reusing each weight row
// for every token while it is in cache.
void MatMul(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);

// Dequantizes n elements (a whole number of blocks) of type t to float.
void Dequantize(DType t, const void* src, float* dst, int64_t n);

// Row `row` of an embedding table [rows, cols] of type t, as float.
void GetRow(const WeightMatrix& w, int64_t row, float* dst);

// Which SIMD path is active: "avx512vnni" (Q4_0/Q8_0 on AVX-512 VNNI, the
// other types on AVX2), "avx2+fma+f16c" or "portable". HART_KERNELS=portable,
// avx2 or avx512 in the environment caps the path at that level.
const char* KernelPath();

// Float16/bfloat16 scalar conversions used by kernels, tests and tools.
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);
float BF16ToF32(uint16_t h);

}  // namespace hart::runtime

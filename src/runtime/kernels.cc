// MatMul driver and dispatch: quantizes the activations once per call, splits
// the weight rows into chunks for the thread pool and hands each (row, token
// tile) to the active ISA's row dot.
#include "runtime/kernels.h"

#include "core/cpu.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>

#include "fmt/format.h"
#include "runtime/kernels_internal.h"

namespace hart::runtime {
namespace internal {
namespace {

// Tokens per tile of prefill: a tile's activation rows (about 9 KiB each for
// 8192 Q8 columns) plus the thread's weight chunk stay in L2, so each weight
// row comes from memory once per call however many tokens there are.
constexpr int64_t kTokenTile = 16;
// Rows per work item: enough to stream a few hundred KiB of contiguous
// weights per item (good for the prefetchers), few enough that the items
// balance across threads.
constexpr int64_t kMinChunkRows = 16;
constexpr int64_t kMaxChunkRows = 64;
// Rows per decode kernel call (at most kRowsPerDot). Four rows at a time won
// in cache (Q4_0 13.4 vs 11 GB/s per core) but lost a whole decode step from
// DRAM on the 1B-shaped benchmark (Q4_0 7-9 tok/s with 4 or 2 rows, 19-20
// with 1; Q8_0 likewise), so the shared-work kernel runs one row at a time,
// one weight stream per thread (a two-row tile for batched steps lost from
// DRAM the same way).
constexpr int kDecodeRows = 1;

size_t RowBytes(const WeightMatrix& w) {
  const DTypeInfo& info = Info(w.dtype);
  return static_cast<size_t>(w.cols / info.block_size) * info.type_size;
}

void FillNaN(float* y, int64_t n) {
  std::fill(y, y + n, std::numeric_limits<float>::quiet_NaN());
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kPortable: break;
  }
  return "portable";
}

bool IsaSupported(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return true;
    case Isa::kAvx2: {
      static const bool ok = Cpu().avx2 && Cpu().fma && Cpu().f16c && Avx2RowDot(DType::kF32) != nullptr;
      return ok;
    }
    case Isa::kAvx512: {
      static const bool ok = IsaSupported(Isa::kAvx2) && Cpu().avx512f && Cpu().avx512bw &&
                             Cpu().avx512vl && Cpu().avx512vnni && Avx512RowDot(DType::kQ4_0) != nullptr;
      return ok;
    }
  }
  return false;
}

Isa ActiveIsa() {
  static const Isa isa = [] {
    Isa cap = Isa::kAvx512;
    if (const char* env = std::getenv("HART_KERNELS"); env != nullptr) {
      const std::string_view v(env);
      if (v == "portable") cap = Isa::kPortable;
      else if (v == "avx2") cap = Isa::kAvx2;
    }
    for (Isa i : {Isa::kAvx512, Isa::kAvx2})
      if (static_cast<int>(i) <= static_cast<int>(cap) && IsaSupported(i)) return i;
    return Isa::kPortable;
  }();
  return isa;
}

KernelSet SelectKernels(Isa isa, DType t) {
  if (isa == Isa::kAvx512 && IsaSupported(isa)) {
    // Every AVX-512 kernel takes its activations regrouped (kQ8x8).
    if (RowDotFn dot = Avx512RowDot(t); dot != nullptr) return {dot, Avx512RowsDot(t), ActFormat::kQ8x8};
    isa = Isa::kAvx2;
  }
  if (isa == Isa::kAvx2 && IsaSupported(isa)) {
    // Q4_0 and Q8_0 take the transposed groups (kQ8x8) on AVX2 as well.
    const ActFormat f = ActivationFormat(t) == ActFormat::kQ8 ? ActFormat::kQ8x8 : ActivationFormat(t);
    return {Avx2RowDot(t), Avx2RowsDot(t), f};
  }
  return {PortableRowDot(t), nullptr, ActivationFormat(t)};
}

void MatMulIsa(Isa isa, const WeightMatrix& w, const float* x, float* y, int64_t n_tokens,
               ThreadPool& pool) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const KernelSet kernels = SelectKernels(isa, w.dtype);
  const RowDotFn dot = kernels.dot;
  if (dot == nullptr || !CheckWeightMatrix(w).ok()) {
    // No status to return here: NaN makes a missed CheckWeightMatrix loud.
    FillNaN(y, n_tokens * w.rows);
    return;
  }
  const int64_t rows = w.rows, cols = w.cols;
  const ActFormat format = kernels.format;
  const size_t x_stride = ActivationRowBytes(format, cols);
  const uint8_t* xq = reinterpret_cast<const uint8_t*>(x);
  std::unique_ptr<uint8_t[]> xq_buf;
  if (format != ActFormat::kF32) {
    xq_buf.reset(new uint8_t[x_stride * static_cast<size_t>(n_tokens)]);
    xq = xq_buf.get();
    auto quantize = [&](size_t t) {
      QuantizeActivationRow(format, x + t * cols, cols, xq_buf.get() + t * x_stride);
    };
    // A thread hand-off costs more than quantizing a few rows.
    if (n_tokens * cols >= (int64_t{1} << 16)) {
      pool.ParallelFor(static_cast<size_t>(n_tokens), quantize);
    } else {
      for (int64_t t = 0; t < n_tokens; ++t) quantize(static_cast<size_t>(t));
    }
  }

  const size_t row_bytes = RowBytes(w);
  const auto* wbytes = static_cast<const uint8_t*>(w.data);
  const int64_t threads = static_cast<int64_t>(pool.size());
  const int64_t chunk = std::clamp<int64_t>(rows / (4 * threads), kMinChunkRows, kMaxChunkRows);
  const int64_t items = (rows + chunk - 1) / chunk;
  const RowsDotFn rows_dot = n_tokens == 1 ? kernels.rows_dot : nullptr;
  pool.ParallelFor(static_cast<size_t>(items), [&](size_t item) {
    const int64_t r0 = static_cast<int64_t>(item) * chunk;
    const int64_t r1 = std::min(rows, r0 + chunk);
    if (rows_dot != nullptr) {
      for (int64_t r = r0; r < r1; r += kDecodeRows)
        rows_dot(wbytes + r * row_bytes, row_bytes, static_cast<int>(std::min<int64_t>(kDecodeRows, r1 - r)), xq,
                 cols, y + r);
      return;
    }
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
      const int nt = static_cast<int>(std::min(kTokenTile, n_tokens - t0));
      for (int64_t r = r0; r < r1; ++r)
        dot(wbytes + r * row_bytes, xq + t0 * x_stride, x_stride, nt, cols, y + t0 * rows + r,
            static_cast<size_t>(rows));
    }
  });
}

}  // namespace internal

absl::Status CheckWeightMatrix(const WeightMatrix& w) {
  if (!IsSupportedWeightType(w.dtype))
    return absl::UnimplementedError(
        fmt::format("weight type {} is not supported by the runtime kernels", Name(w.dtype)));
  const int64_t bs = Info(w.dtype).block_size;
  if (w.rows <= 0 || w.cols <= 0 || w.cols % bs != 0)
    return absl::InvalidArgumentError(
        fmt::format("weight matrix [{}, {}] of {}: columns must be a positive multiple of {}",
                    w.rows, w.cols, Name(w.dtype), bs));
  if (w.data == nullptr) return absl::InvalidArgumentError("weight matrix has no data");
  return absl::OkStatus();
}

void MatMul(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  internal::MatMulIsa(internal::ActiveIsa(), w, x, y, n_tokens, pool);
}

void GetRow(const WeightMatrix& w, int64_t row, float* dst) {
  if (row < 0 || row >= w.rows || !CheckWeightMatrix(w).ok()) {
    internal::FillNaN(dst, std::max<int64_t>(w.cols, 0));
    return;
  }
  Dequantize(w.dtype, static_cast<const uint8_t*>(w.data) + row * internal::RowBytes(w), dst,
             w.cols);
}

const char* KernelPath() {
  switch (internal::ActiveIsa()) {
    case internal::Isa::kAvx512: return "avx512vnni";
    case internal::Isa::kAvx2: return "avx2+fma+f16c";
    case internal::Isa::kPortable: break;
  }
  return "portable";
}

}  // namespace hart::runtime

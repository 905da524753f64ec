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
#include <vector>

#include "fmt/format.h"
#include "runtime/kernels_internal.h"
#include "runtime/quant_blocks.h"

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

// The portable path on packed rows: each row put back in order in a
// per-thread buffer, then the plain kernel (the portable path is the
// reference, not a fast path).
template <DType T, typename Block>
void PortablePackedDot(const void* w_row, const void* x, size_t x_stride, int n_x, int64_t cols, float* out,
                       size_t out_stride) {
  thread_local std::vector<uint8_t> row;
  row.resize(static_cast<size_t>(cols / kQK) * sizeof(Block));
  std::memcpy(row.data(), w_row, row.size());
  UnpackRows(T, cols, row.data(), 1);
  PortableRowDot(T)(row.data(), x, x_stride, n_x, cols, out, out_stride);
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

KernelSet SelectKernels(Isa isa, DType t, bool packed) {
  if (packed) {
    // Only Q8_0 and Q4_0 have a packed layout (CheckWeightMatrix); their
    // kernels take the regrouped activations on both SIMD paths.
    if (isa == Isa::kAvx512 && IsaSupported(isa)) return {Avx512PackedRowDot(t), Avx512PackedRowsDot(t), ActFormat::kQ8x8};
    if (isa != Isa::kPortable && IsaSupported(Isa::kAvx2)) return {Avx2PackedRowDot(t), Avx2PackedRowsDot(t), ActFormat::kQ8x8};
    RowDotFn dot = t == DType::kQ8_0   ? PortablePackedDot<DType::kQ8_0, BlockQ8_0>
                   : t == DType::kQ4_0 ? PortablePackedDot<DType::kQ4_0, BlockQ4_0>
                                       : nullptr;
    return {dot, nullptr, ActivationFormat(t)};
  }
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
  const KernelSet kernels = SelectKernels(isa, w.dtype, w.packed);
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
  if (w.packed && w.dtype != DType::kQ8_0 && w.dtype != DType::kQ4_0)
    return absl::InvalidArgumentError(
        fmt::format("weight matrix of {}: only Q8_0 and Q4_0 have a packed layout", Name(w.dtype)));
  return absl::OkStatus();
}

bool PackedLayoutHelps(DType t, int64_t cols) {
  return (t == DType::kQ8_0 || t == DType::kQ4_0) && cols >= kQK * ActGroupQ8::kBlocks && cols % kQK == 0 &&
         internal::ActiveIsa() != internal::Isa::kPortable;
}

namespace {
// One row's whole groups, plain -> packed (pack) or back. Both layouts
// move 4-byte pieces: Q8_0 values 4w .. 4w+3 of a block (row w of the
// group), Q4_0 nibble dword d of a block.
template <typename Block, typename Packed>
void RepackRow(uint8_t* row, int64_t cols, bool pack) {
  constexpr int kG = ActGroupQ8::kBlocks;
  constexpr int kPieces = static_cast<int>(sizeof(Block::qs)) / 4;
  static_assert(sizeof(Packed) == kG * sizeof(Block));
  const int64_t groups = cols / kQK / kG;
  for (int64_t g = 0; g < groups; ++g) {
    uint8_t* p = row + g * sizeof(Packed);
    Block b[kG];
    Packed q;
    if (pack) std::memcpy(b, p, sizeof(b));
    else std::memcpy(&q, p, sizeof(q));
    for (int s = 0; s < kG; ++s) {
      Block& blk = b[ActGroupBlock(s)];
      if (pack) q.d[s] = blk.d;
      else blk.d = q.d[s];
      for (int w = 0; w < kPieces; ++w) {
        if (pack) std::memcpy(q.qs + 4 * kG * w + 4 * s, blk.qs + 4 * w, 4);
        else std::memcpy(blk.qs + 4 * w, q.qs + 4 * kG * w + 4 * s, 4);
      }
    }
    if (pack) std::memcpy(p, &q, sizeof(q));
    else std::memcpy(p, b, sizeof(b));
  }
}

void RepackRows(DType t, int64_t cols, void* data, int64_t rows, bool pack) {
  if (cols % kQK != 0) return;
  auto* p = static_cast<uint8_t*>(data);
  if (t == DType::kQ8_0) {
    const size_t row_bytes = static_cast<size_t>(cols / kQK) * sizeof(BlockQ8_0);
    for (int64_t r = 0; r < rows; ++r) RepackRow<BlockQ8_0, PackedGroupQ8_0>(p + r * row_bytes, cols, pack);
  } else if (t == DType::kQ4_0) {
    const size_t row_bytes = static_cast<size_t>(cols / kQK) * sizeof(BlockQ4_0);
    for (int64_t r = 0; r < rows; ++r) RepackRow<BlockQ4_0, PackedGroupQ4_0>(p + r * row_bytes, cols, pack);
  }
}
}  // namespace

void PackRows(DType t, int64_t cols, void* data, int64_t rows) { RepackRows(t, cols, data, rows, true); }
void UnpackRows(DType t, int64_t cols, void* data, int64_t rows) { RepackRows(t, cols, data, rows, false); }

void MatMul(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  internal::MatMulIsa(internal::ActiveIsa(), w, x, y, n_tokens, pool);
}

void GetRow(const WeightMatrix& w, int64_t row, float* dst) {
  if (row < 0 || row >= w.rows || !CheckWeightMatrix(w).ok()) {
    internal::FillNaN(dst, std::max<int64_t>(w.cols, 0));
    return;
  }
  const uint8_t* src = static_cast<const uint8_t*>(w.data) + row * internal::RowBytes(w);
  if (w.packed) {
    std::vector<uint8_t> plain(src, src + internal::RowBytes(w));
    UnpackRows(w.dtype, w.cols, plain.data(), 1);
    Dequantize(w.dtype, plain.data(), dst, w.cols);
    return;
  }
  Dequantize(w.dtype, src, dst, w.cols);
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

// Quantization of activation rows to int8 blocks, shared by every ISA so that
// the portable and AVX2 dot products see the same integers and differ only in
// the order of their float sums.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/kernels_internal.h"
#include "runtime/quant_blocks.h"

namespace hart::runtime::internal {
namespace {

// Scale so that the largest |x| maps to 127; round half to even. Returns d.
float QuantizeBlockPortable(const float* x, int n, int8_t* q) {
  float amax = 0.0f;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    amax = std::max(amax, std::fabs(x[i]));
    finite &= std::isfinite(x[i]);
  }
  if (!finite || amax == 0.0f) {
    // A NaN or inf has no int8 form; a NaN scale carries it into the dot
    // product as float math would.
    std::memset(q, 0, static_cast<size_t>(n));
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float id = 127.0f / amax;
  for (int i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] * id);
    q[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
  }
  return amax / 127.0f;
}

// The AVX2 version when the CPU has it (same bytes, see Avx2QuantizeBlock).
float QuantizeBlock(const float* x, int n, int8_t* q) {
  static const QuantizeBlockFn fast = IsaSupported(Isa::kAvx2) ? Avx2QuantizeBlock() : nullptr;
  return fast != nullptr ? fast(x, n, q) : QuantizeBlockPortable(x, n, q);
}

}  // namespace

ActFormat ActivationFormat(DType t) {
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ8_0:
      return ActFormat::kQ8;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return ActFormat::kQ8K;
    default:
      return ActFormat::kF32;
  }
}

size_t ActivationRowBytes(ActFormat f, int64_t cols) {
  switch (f) {
    case ActFormat::kQ8:
      return static_cast<size_t>(cols / kQK) * sizeof(ActBlockQ8);
    case ActFormat::kQ8K:
      return static_cast<size_t>(cols / kQKK) * sizeof(ActBlockQ8K);
    case ActFormat::kQ8x8: {
      const int64_t blocks = cols / kQK;
      return static_cast<size_t>((blocks + ActGroupQ8::kBlocks - 1) / ActGroupQ8::kBlocks) *
             sizeof(ActGroupQ8);
    }
    case ActFormat::kF32:
      break;
  }
  return static_cast<size_t>(cols) * sizeof(float);
}

void QuantizeActivationRow(ActFormat f, const float* x, int64_t cols, void* dst) {
  switch (f) {
    case ActFormat::kF32:
      std::memcpy(dst, x, static_cast<size_t>(cols) * sizeof(float));
      return;
    case ActFormat::kQ8: {
      auto* b = static_cast<ActBlockQ8*>(dst);
      for (int64_t i = 0; i < cols / kQK; ++i) b[i].d = QuantizeBlock(x + i * kQK, kQK, b[i].qs);
      return;
    }
    case ActFormat::kQ8x8: {
      // Each block's values go to its slot's lane of the eight transposed
      // 32-byte rows (see ActGroupQ8); a partial last group is zero first.
      auto* g = static_cast<ActGroupQ8*>(dst);
      const int64_t blocks = cols / kQK;
      if (blocks % ActGroupQ8::kBlocks != 0)
        std::memset(&g[blocks / ActGroupQ8::kBlocks], 0, sizeof(ActGroupQ8));
      int8_t q[kQK];
      for (int64_t i = 0; i < blocks; ++i) {
        ActGroupQ8& group = g[i / ActGroupQ8::kBlocks];
        const int slot = ActGroupSlot(static_cast<int>(i % ActGroupQ8::kBlocks));
        group.d[slot] = QuantizeBlock(x + i * kQK, kQK, q);
        int32_t sum = 0;
        for (int l = 0; l < kQK; ++l) sum += q[l];
        group.sum[slot] = sum;
        for (int w = 0; w < kQK / 4; ++w) std::memcpy(group.qs + ActGroupQ8::kRowBytes * w + 4 * slot, q + 4 * w, 4);
      }
      return;
    }
    case ActFormat::kQ8K: {
      auto* b = static_cast<ActBlockQ8K*>(dst);
      for (int64_t i = 0; i < cols / kQKK; ++i) {
        b[i].d = QuantizeBlock(x + i * kQKK, kQKK, b[i].qs);
        for (int g = 0; g < kQKK / 16; ++g) {
          int s = 0;
          for (int l = 0; l < 16; ++l) s += b[i].qs[16 * g + l];
          b[i].bsums[g] = static_cast<int16_t>(s);
        }
      }
      return;
    }
  }
}

}  // namespace hart::runtime::internal

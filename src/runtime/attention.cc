#include "runtime/attention.h"

#include <algorithm>
#include <cmath>

namespace hart::runtime::internal {

void AttendPortable(const AttentionArgs& a, float* scratch) {
  const int64_t hd = a.head_dim, vd = a.value_dim;
  for (int64_t g = 0; g < a.group; ++g) {
    const float* q = a.q + g * hd;
    float* scores = scratch + g * a.n;
    float mx = -INFINITY;
    for (int64_t j = 0; j < a.n; ++j) {
      const float* k = a.k + j * a.k_stride;
      float dot = 0;
      for (int64_t i = 0; i < hd; ++i) dot += q[i] * k[i];
      dot *= a.scale;
      if (a.softcap > 0) dot = static_cast<float>(a.softcap * std::tanh(dot / a.softcap));
      scores[j] = dot;
      mx = std::max(mx, dot);
    }
    float sum = 0;
    for (int64_t j = 0; j < a.n; ++j) sum += (scores[j] = std::exp(scores[j] - mx));
    float* out = a.out + g * vd;
    std::fill(out, out + vd, 0.0f);
    for (int64_t j = 0; j < a.n; ++j) {
      const float w = scores[j] / sum;
      const float* v = a.v + j * a.v_stride;
      for (int64_t i = 0; i < vd; ++i) out[i] += w * v[i];
    }
  }
}

AttendFn SelectAttend(Isa isa) {
  if (isa != Isa::kPortable && IsaSupported(Isa::kAvx2))
    if (AttendFn f = Avx2Attend(); f != nullptr) return f;
  return AttendPortable;
}

}  // namespace hart::runtime::internal

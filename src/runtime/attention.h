// Attention of one query row against one KV head of a cache: the `group`
// query heads that share the KV head (GQA) are done together, so each key and
// value row is read from memory once for all of them, not once per head.
//
// Model::Attention runs one call per (row, KV head); a call reads only its
// own row's queries and its own session's cache, so a row's result never
// depends on the batch it is in or on the thread count.
#pragma once

#include <cstdint>

#include "runtime/kernels_internal.h"

namespace hart::runtime::internal {

struct AttentionArgs {
  const float* q = nullptr;  // group heads of head_dim floats, back to back
  const float* k = nullptr;  // key of the first attended position
  const float* v = nullptr;  // value of the first attended position
  int64_t k_stride = 0;      // floats from one position's key to the next
  int64_t v_stride = 0;      // floats from one position's value to the next
  int64_t n = 0;             // positions attended (>= 1), the last one being the query's own
  int64_t group = 1;         // query heads per KV head
  int64_t head_dim = 0;      // key length per head
  int64_t value_dim = 0;     // value length per head
  float scale = 1;           // applied to q.k before the softcap
  double softcap = 0;        // score = softcap * tanh(score / softcap); 0 = none
  float* out = nullptr;      // group heads of value_dim floats, back to back
};

// Floats of scratch an attention call needs (the scores of every head).
inline int64_t AttentionScratchFloats(const AttentionArgs& a) { return a.group * a.n; }

// out = softmax(scale * q.k) . v for each of the group heads; scratch holds
// AttentionScratchFloats(a) floats.
using AttendFn = void (*)(const AttentionArgs& a, float* scratch);

// The reference: plain C++, one head after another, the float sums in
// position and element order (the runtime's results before the vector
// kernel, bit for bit).
void AttendPortable(const AttentionArgs& a, float* scratch);
// AVX2 + FMA, 8 positions' dot products at a time; nullptr when built without
// AVX2 support. Differs from the reference only in the order of float sums.
AttendFn Avx2Attend();
// The kernel for `isa` (which must be supported): AVX-512 runs the AVX2 one.
AttendFn SelectAttend(Isa isa);

}  // namespace hart::runtime::internal

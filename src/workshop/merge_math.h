// TensorMerger: the arithmetic of one output tensor of a merge, over float
// blocks of its inputs streamed in element order, so a tensor of any size
// merges in a few blocks of memory. Methods follow mergekit:
//   linear           sum(w_i x_i) [/ sum(w_i) when normalize]
//   slerp            spherical interpolation base -> other at t over the
//                    whole tensor as one vector; lerp when |cos| > 0.9995
//   task_arithmetic  base + lambda * sum(w_i (x_i - base)) [/ sum w_i]
//   ties             deltas pruned to the `density` largest magnitudes per
//                    model, sign elected by the sum of weighted deltas,
//                    agreeing deltas summed [/ sum of their weights]
//   dare_linear      deltas dropped at random with probability 1 - density,
//                    kept ones divided by density (rescale), then summed
//   dare_ties        dare's drop, then ties' sign election
// Two-pass methods (slerp: norms and dot; ties: the magnitude threshold, in
// two radix passes) Observe the inputs before Compute. DARE's randomness is
// a pure function of (seed, tensor name, input index, element index)
// (DareKeep), so a merge gives the same bytes every time and in any order.
//
// Parallel: Observe and Compute split a block into kParts fixed parts (the
// split depends on the block alone, never on the threads) and run them on a
// ThreadPool when given one. Every output element is computed by the same
// operations in the same order as serially; slerp's sums stay sequential
// per block (one task per sum); ties' histograms are per part and summed
// at the end (integers); ties' "equal magnitudes in index order" budget is
// handed to the parts by a prefix sum of their counts. So the bytes do not
// depend on the thread count.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <span>
#include <string_view>
#include <vector>

#include "workshop/merge_recipe.h"

namespace hart {
class ThreadPool;
}

namespace hart::workshop {

struct MergeSettings {
  MergeMethod method = MergeMethod::kLinear;
  size_t base = 0;              // index of the base input (slerp, task methods)
  std::vector<double> weight;   // per input (the base's is unused by task methods)
  std::vector<double> density;  // per input
  bool normalize = true;
  bool rescale = true;
  double lambda = 1.0;
  double t = 0.5;               // slerp
  uint64_t seed = 0;            // DARE
  std::string_view name;        // output tensor name (DARE's stream)
};

// Defaults of mergekit per method: normalize (linear, ties: true) and
// rescale (dare_*: true).
bool DefaultNormalize(MergeMethod m);
bool DefaultRescale(MergeMethod m);

// splitmix64 and the DARE keep decision, exposed for tests.
uint64_t SplitMix64(uint64_t z);
uint64_t Fnv1a64(std::string_view s);
// Key of input `input`'s drop stream for tensor `name`.
uint64_t DareKey(uint64_t seed, std::string_view name, size_t input);
// Whether element `index` survives: uniform in [0, 1) from its own
// splitmix64 draw, compared with density.
inline bool DareKeep(uint64_t key, uint64_t index, double density) {
  const uint64_t r = SplitMix64(key + index);
  return static_cast<double>(r >> 11) * 0x1.0p-53 < density;
}

class TensorMerger {
 public:
  TensorMerger(MergeSettings s, size_t n_inputs, uint64_t numel);

  // Passes over the inputs before Compute (0, 1 or 2).
  int observe_passes() const;
  // Pass `pass` sees block [offset, offset + n) of every input. With a
  // pool, the block's parts run on it (same results).
  void Observe(int pass, uint64_t offset, std::span<const float* const> in, size_t n,
               ThreadPool* pool = nullptr);
  // The output block [offset, offset + n). Blocks come in ascending order.
  void Compute(uint64_t offset, std::span<const float* const> in, size_t n, float* out,
               ThreadPool* pool = nullptr);

  // Whether the parts of a block compute independently (every method but
  // ties, whose budget of equal magnitudes runs across them): then
  // ComputeRange may run on disjoint ranges of one block concurrently, and
  // gives what Compute gives for them.
  bool parts_independent() const { return s_.method != MergeMethod::kTies; }
  void ComputeRange(uint64_t offset, std::span<const float* const> in, size_t n, float* out) const;

  // Parts a block is split into, and part k's [begin, end): boundaries on
  // multiples of 256 elements (whole blocks of every ggml type, so callers
  // decode and encode by the same parts).
  static constexpr size_t kParts = 8;
  static std::pair<size_t, size_t> Part(size_t n, size_t k);

 private:
  // d[0, n) = the delta of input i over [offset, offset + n); ties keeps
  // at most *equal_left elements equal to the threshold, first ones first.
  void Delta(size_t i, uint64_t offset, const float* x, const float* b, size_t n, float* d,
             uint64_t* equal_left) const;
  // One part: in[i] and out point at its first element, input i's
  // weighted delta goes to scratch + i * stride.
  void ComputePart(uint64_t offset, std::span<const float* const> in, size_t n, float* scratch,
                   size_t stride, float* out, uint64_t* equal_left) const;

  MergeSettings s_;
  size_t n_;
  uint64_t numel_;
  // slerp
  double n0_ = 0, n1_ = 0, dot_ = 0;
  // ties: per input, the kept magnitude threshold (as float bits), how many
  // elements equal to it are still kept, and the radix histograms.
  struct Ties {
    uint64_t k = 0;
    std::vector<uint64_t> hist;  // kParts histograms of 65536 bins
    uint32_t hi = 0;
    uint64_t above = 0;  // elements whose magnitude bits exceed the threshold's high half
    uint32_t threshold = 0;
    uint64_t equal_left = 0;
    bool all = false;
  };
  std::vector<Ties> ties_;
  std::vector<uint64_t> dare_key_;
  std::vector<float> scratch_;
};

// Float conversions of the merge's output (round to nearest even).
uint16_t F32ToBF16(float f);

}  // namespace hart::workshop

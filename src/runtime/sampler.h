// Sampler: picks the next token from logits. The chain follows llama.cpp's
// order: repetition penalty, top-k, top-p, min-p (all on the unscaled
// distribution), temperature, then a draw from a seeded generator; with
// temperature <= 0 it is greedy (argmax, lowest id on ties). The same seed
// and logits give the same tokens on every run.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>

namespace hart::runtime {

struct SamplerOptions {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;       // tokens the penalty looks back on
  uint64_t seed = 0;
};

// The chain done the plain way: the whole candidate list sorted, then the
// truncations and the draw `u01` in [0, 1). Sampler::Sample sorts only the
// head of the order and must pick the same token; tests and
// bench/sampler_bench hold it to this one.
int32_t ReferenceSample(const SamplerOptions& opts, std::span<const float> logits, double u01);

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& opts);
  // Picks a token; `logits` is scratch (modified).
  int32_t Sample(std::span<float> logits);
  // Records a token of the context (prompt or generated) for the penalty.
  void Accept(int32_t token);
  void Reset();

 private:
  SamplerOptions opts_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
};

}  // namespace hart::runtime

// Generate: prompt -> tokens -> batched prefill -> decode loop, streaming
// text pieces to a callback as they become complete UTF-8, with the numbers
// `hart run --stats` prints.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace hart::runtime {

struct GenerateOptions {
  int n_predict = 128;       // tokens to generate at most
  SamplerOptions sampler;
  bool truncate = false;     // drop the prompt's oldest tokens instead of failing when it is too long
  int prefill_batch = 512;   // prompt tokens per forward call
  bool stop_at_eog = true;
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t truncated_tokens = 0;  // prompt tokens dropped by truncate
  double prefill_seconds = 0;
  double decode_seconds = 0;
  double prefill_tok_s() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  // The first generated token comes from the prefill's logits, so decode
  // rate counts the forward passes of the decode loop.
  int64_t decode_passes = 0;
  double decode_tok_s() const { return decode_seconds > 0 ? decode_passes / decode_seconds : 0; }
  uint64_t peak_rss_bytes = 0;
  uint64_t weight_bytes_per_token = 0;    // weights one decode step reads (memory or storage)
  uint64_t streamed_bytes_per_token = 0;  // of those, read from the source during decode
  StreamerStats streamer;
};

// Called with each generated token and its complete text (possibly ""); return
// false to stop.
using TokenFn = std::function<bool(int32_t id, std::string_view text)>;

// Runs from the model's current position (Reset() first for a fresh prompt;
// `hart chat` keeps the cache between turns and passes only the new tokens).
// Prompt longer than the remaining context: OutOfRange, unless truncate.
absl::StatusOr<GenerateStats> GenerateFromTokens(Model& model, const Tokenizer* tok,
                                                 std::vector<int32_t> prompt,
                                                 const GenerateOptions& opts, Sampler& sampler,
                                                 const TokenFn& on_token);

// Peak resident set size of this process (getrusage), bytes.
uint64_t PeakRssBytes();

}  // namespace hart::runtime

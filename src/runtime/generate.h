// Generate: prompt tokens -> batched prefill -> decode loop on a Session,
// streaming each step to a callback as complete UTF-8 text, with stop
// strings, cancellation, logprobs and the numbers `hart run --stats` prints.
//
// The prompt is the whole sequence the answer continues; the session keeps
// the longest prefix its KV cache already holds and runs only the rest (a
// chat's previous turns, a repeated system prompt). Stop strings are never
// emitted: text that could be the start of a stop string is held back until
// it is known not to be one. Cancellation is checked before every forward
// pass, so a cancelled generation stops within one step.
#pragma once

#include <cstdint>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/cancel.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace hart::runtime {

enum class FinishReason : uint8_t {
  kStop,       // an end-of-generation token or a stop string
  kLength,     // max_tokens reached, or the context is full
  kCancelled,  // the CancelToken was set, or the callback returned false
};
// "stop", "length", "cancelled"
std::string_view FinishReasonName(FinishReason r);

// Shapes the logits before each draw and hears each token drawn: OpenAI's
// logit_bias, a grammar's mask (structured output, tool-call arguments).
// Owned by the caller, one per sequence, used by one thread at a time.
// Issue 13's batching engine calls the same three methods per sequence.
class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  // Changes logits [vocab] in place before sampling; -inf forbids a token.
  // An error ends the generation with that error.
  virtual absl::Status Apply(std::span<float> logits) = 0;
  // The token drawn (after Apply). An error ends the generation.
  virtual absl::Status Accept(int32_t token) = 0;
  // True once the sequence must end here (e.g. a grammar is complete and
  // allows nothing more): the generation finishes with kStop.
  virtual bool Finished() const { return false; }
};

struct GenerateParams {
  int64_t max_tokens = 128;  // tokens to generate at most; < 0: until the context is full
  std::vector<std::string> stop;  // stop strings (empty ones are ignored)
  bool stop_at_eog = true;        // end at the tokenizer's end-of-generation tokens
  // < 0: no logprobs; 0: the chosen token's; N > 0: also the N most likely.
  // Log-softmax of the model's logits, before any sampling transform.
  int logprobs = -1;
  bool truncate = false;   // drop the prompt's oldest tokens (keeping BOS) instead of failing when it is too long
  int prefill_batch = 512;  // prompt tokens per forward pass
  const CancelToken* cancel = nullptr;
  // Applied in order before every draw (logprobs are of the raw logits).
  std::vector<LogitsProcessor*> processors;
};

struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0;
};
struct StepLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;  // most likely first (ties: lowest id)
};

struct GenerateStats {
  int64_t prompt_tokens = 0;     // after truncation, cached ones included
  int64_t cached_tokens = 0;     // of those, reused from the session's KV cache
  int64_t generated_tokens = 0;  // sampled tokens (end-of-generation and stop-string tokens included)
  int64_t truncated_tokens = 0;  // prompt tokens dropped by truncate
  double prefill_seconds = 0;
  double decode_seconds = 0;
  double prefill_tok_s() const {
    return prefill_seconds > 0 ? (prompt_tokens - cached_tokens) / prefill_seconds : 0;
  }
  // The first generated token comes from the prefill's logits, so decode
  // rate counts the forward passes of the decode loop.
  int64_t decode_passes = 0;
  double decode_tok_s() const { return decode_seconds > 0 ? decode_passes / decode_seconds : 0; }
  uint64_t peak_rss_bytes = 0;
  uint64_t kv_cache_bytes = 0;            // of the session
  uint64_t weight_bytes_per_token = 0;    // weights one decode step reads (memory or storage)
  uint64_t streamed_bytes_per_token = 0;  // of those, read from the source during decode
  StreamerStats streamer;
};

// One step of the stream: each sampled token in order (id >= 0), then one
// last event with id -1 for text held back until the end (an incomplete
// UTF-8 sequence, a prefix of a stop string that did not complete). `text`
// is the text this step releases, possibly "": complete UTF-8, never part of
// a stop string; the concatenation of every event's text is the result's
// text. `logprobs` is set for sampled tokens when asked.
struct GenerateEvent {
  int32_t id = -1;
  std::string_view text;
  const StepLogprobs* logprobs = nullptr;
};
// Returns false to stop now (finish reason kCancelled).
using GenerateFn = std::function<bool(const GenerateEvent&)>;

struct GenerateResult {
  std::vector<int32_t> tokens;  // every sampled token
  std::string text;             // the output, without the stop string and what follows it
  std::vector<StepLogprobs> logprobs;  // one per sampled token, when asked
  FinishReason finish_reason = FinishReason::kLength;
  std::string stop;  // the stop string that ended it, or ""
  GenerateStats stats;
};

class StopFilter;  // generate.cc

// One generation as a state machine a caller steps (Generate's loop, or the
// batching engine driving many at once): Start (truncate, reuse the cached
// prefix), then repeatedly Next() -> run those tokens on the session ->
// Fed(logits), until done(); Finish() gives the result. The stop strings,
// the streaming decoder, logprobs, processors and events live here only.
class Sequence {
 public:
  // Validates and (with params.truncate) truncates the prompt, keeps the
  // longest prefix of it the session's cache holds. `session`, `tok`,
  // `params` and `on_event` must outlive the Sequence.
  static absl::StatusOr<std::unique_ptr<Sequence>> Start(Session& session, const Tokenizer* tok,
                                                         std::span<const int32_t> prompt,
                                                         const GenerateParams& params,
                                                         const GenerateFn& on_event);
  ~Sequence();

  // The tokens to run next: a prompt piece of at most max_prefill tokens, or
  // the last sampled token. Empty when done (Next may end the sequence:
  // cancellation is checked here, before each forward pass).
  std::span<const int32_t> Next(int64_t max_prefill);
  // Whether the tokens from Next() need logits (the prompt's last piece, or decode).
  bool wants_logits() const;
  // After those tokens ran on the session: samples from `logits` [vocab]
  // when wants_logits(), emits events, and may finish. An error (a
  // processor's) ends the sequence with it.
  absl::Status Fed(std::span<const float> logits);
  bool done() const { return done_; }
  bool prefilling() const { return next_ < prompt_.size(); }
  Session& session() { return session_; }
  const std::vector<int32_t>& prompt() const { return prompt_; }
  // The result; call once, after done().
  GenerateResult Finish();

 private:
  Sequence(Session& s, const Tokenizer* tok, const GenerateParams& p, const GenerateFn& fn);
  void End(FinishReason why);
  Session& session_;
  const Tokenizer* tok_;
  const GenerateParams& params_;
  const GenerateFn& on_event_;
  GenerateResult r_;
  std::vector<int32_t> prompt_;
  size_t next_ = 0;          // next prompt token to run
  size_t piece_ = 0;         // tokens handed out by the last Next()
  int32_t pending_[1] = {-1};  // the sampled token to run next
  bool decoding_ = false, done_ = false;
  int64_t max_tokens_ = 0;
  uint64_t read_before_ = 0;
  std::unique_ptr<StreamDecoder> decoder_;
  std::unique_ptr<StopFilter> stops_;
  std::chrono::steady_clock::time_point t0_;
};

// Generates after `prompt` with the session's sampler. `tok` may be null
// (ids only: no text, stop strings and end-of-generation ignored). Prompt
// longer than the session's context: OutOfRange, unless params.truncate.
// Cancellation is not an error: the result says kCancelled.
absl::StatusOr<GenerateResult> Generate(Session& session, const Tokenizer* tok,
                                        std::span<const int32_t> prompt, const GenerateParams& params,
                                        const GenerateFn& on_event = nullptr);

// --- The earlier single-sequence API, over the model's default session. ---
struct GenerateOptions {
  int n_predict = 128;       // tokens to generate at most
  SamplerOptions sampler;
  bool truncate = false;     // drop the prompt's oldest tokens instead of failing when it is too long
  int prefill_batch = 512;   // prompt tokens per forward call
  bool stop_at_eog = true;
};

// Called with each generated token and its complete text (possibly ""); return
// false to stop.
using TokenFn = std::function<bool(int32_t id, std::string_view text)>;

// Appends `prompt` to the model's default session (Reset() first for a
// fresh prompt) and generates with `sampler`.
absl::StatusOr<GenerateStats> GenerateFromTokens(Model& model, const Tokenizer* tok,
                                                 std::vector<int32_t> prompt,
                                                 const GenerateOptions& opts, Sampler& sampler,
                                                 const TokenFn& on_token);

// Pooling of an input's final hidden states into one vector.
enum class Pooling : uint8_t {
  kMean,  // mean over every token (llama.cpp's default)
  kCls,   // the first token
  kLast,  // the last token
};
// "mean", "cls", "last"
std::string_view PoolingName(Pooling p);
absl::StatusOr<Pooling> PoolingFromName(std::string_view name);

struct EmbedParams {
  Pooling pooling = Pooling::kMean;
  bool normalize = false;  // scale to unit Euclidean length
  int batch = 512;         // tokens per forward pass
  const CancelToken* cancel = nullptr;  // Cancelled when set
};

// The pooled final hidden states (after the output norm) of `tokens`, run
// in a fresh session of their length: [dim]. InvalidArgument when empty,
// OutOfRange beyond the model's context, Cancelled when cancelled.
absl::StatusOr<std::vector<float>> Embed(const Model& model, std::span<const int32_t> tokens,
                                         const EmbedParams& params);

}  // namespace hart::runtime

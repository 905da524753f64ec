// Model and Session: the decoder-only transformer forward pass (llama 1/2/3,
// mistral, qwen2, qwen3, gemma2, phi3) over weights from a WeightSource.
//
// A Model is the loaded, shared part: config, tensor plan, the weight
// streamer, RoPE tables. It is immutable after Load and safe to use from many
// threads: one Model serves any number of Sessions at once. A Session is one
// sequence's state: its KV cache, position, the tokens in the cache, scratch
// buffers and its sampler (with its RNG). A Session is used by one thread at a
// time; different Sessions of one Model may run Forward concurrently (when
// the weights stream under a budget, the streamer walks one cycle of groups
// per pass, so their passes take turns; see concurrent_forward()).
//
// Weights are reached only through the WeightStreamer, so the same forward
// pass runs fully mapped or under a memory budget, with identical results
// (the bytes are the same; only where they live differs).
//
// Invariants: Load validates every tensor's presence, dtype and shape
// against the config before any compute; a Session's position() tokens are
// in its KV cache; Forward never writes past the session's max_context().
// Issue 13 (continuous batching) adds a pass over several sessions' tokens
// at once on top of the same split: the weights once per step, the KV per
// session.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/thread_pool.h"
#include "runtime/kernels.h"
#include "runtime/model_config.h"
#include "runtime/sampler.h"
#include "runtime/weight_source.h"
#include "runtime/weight_streamer.h"

namespace hart::runtime {

// A LoRA pair applied at run time, without materializing it: after the
// product with the base matrix `tensor` ([out, in]), each row of the output
// gets coef * B @ (A @ x), i.e. the pass runs as if the weight were
// W + coef * B @ A. A is [rank, in], B is [out, rank], row-major F32; coef is
// scale * alpha / rank. Several pairs may target one tensor (they add up).
struct LoraTensor {
  std::string tensor;  // the base tensor's name ("blk.0.attn_q.weight")
  int64_t rank = 0;
  std::vector<float> a, b;
  float coef = 0;
};

struct ModelOptions {
  StreamerOptions stream;
  // Adapters' pairs; Load refuses one whose tensor is not a layer matrix of
  // the model or whose A / B shape does not fit it (naming the tensor).
  std::vector<LoraTensor> lora;
  // The longest session (KV cache length); 0 = the model's context length.
  int64_t max_context = 0;
  ThreadPool* pool = nullptr;  // nullptr = ThreadPool::Default()
};

struct SessionOptions {
  int64_t max_context = 0;  // this session's KV cache length; 0 or more than the model's: the model's
  SamplerOptions sampler;
};

// The per-layer tensors of every supported architecture, under one naming.
enum class Role : uint8_t {
  kAttnNorm, kQ, kK, kV, kQkv, kO, kQBias, kKBias, kVBias, kQNorm, kKNorm, kPostAttnNorm,
  kFfnNorm, kGate, kUp, kGateUp, kDown, kPostFfnNorm, kCount,
};
inline constexpr size_t kRoleCount = static_cast<size_t>(Role::kCount);

struct LayerPlan;  // model_loader.h
struct ModelPlan;

class Model;

// Scratch buffers of one forward pass (a session's own, or a batch's).
struct PassScratch {
  std::vector<float> x, xb, q, k, v, att, hb, hb2, cos, sin, xn, part;
};

// The K and V entries of a token prefix, copied out of a session (the
// prompt cache keeps these): [layer][position][kv heads * head size].
struct KvPrefix {
  std::vector<int32_t> tokens;
  std::vector<float> k, v;
  uint64_t bytes() const { return (k.size() + v.size()) * sizeof(float) + tokens.size() * sizeof(int32_t); }
};

class Session;
// One session's part of a batched forward pass (Model::ForwardBatch): its
// tokens run at positions position().. and, when logits is set, the last
// token's logits [vocab] land there. status is this item's own outcome.
struct BatchItem {
  Session* session = nullptr;
  std::span<const int32_t> tokens;
  std::vector<float>* logits = nullptr;  // null: no logits wanted (a prefill piece)
  absl::Status status;
};

class Session {
 public:
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Model& model() const { return *model_; }
  int64_t max_context() const { return max_context_; }
  int64_t position() const { return static_cast<int64_t>(tokens_.size()); }
  // The tokens in the KV cache, in order (to reuse a common prefix).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // Forgets the KV cache.
  void Reset() { tokens_.clear(); }
  // Drops the cache after position p (p <= position()), to reuse a prefix.
  void Truncate(int64_t p) {
    if (p >= 0 && p < position()) tokens_.resize(static_cast<size_t>(p));
  }

  // Runs `tokens` at positions position()..position()+n-1 as one batch and
  // appends them to the KV cache. logits gets [n, vocab] when all_logits,
  // else [vocab] for the last token. OutOfRange when the cache would
  // overflow, InvalidArgument for an id outside the vocabulary (nothing is
  // appended in either case). An I/O error from the weight source leaves the
  // session's position unchanged (and a model streaming under a budget
  // unusable).
  absl::Status Forward(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits);
  // The same pass, but `hidden` gets the final hidden states after the
  // output norm, [n, dim] (embeddings), instead of logits.
  absl::Status ForwardHidden(std::span<const int32_t> tokens, std::vector<float>* hidden);

  uint64_t kv_cache_bytes() const { return (k_cache_.size() + v_cache_.size()) * sizeof(float); }

  // The first n cached tokens' K/V (n <= position()).
  KvPrefix ExportPrefix(int64_t n) const;
  // Replaces the cache with the first n tokens of `p` (n <= p.tokens.size(),
  // n <= max_context()); InvalidArgument when p is of another model shape.
  absl::Status ImportPrefix(const KvPrefix& p, int64_t n);

  Sampler& sampler() { return sampler_; }
  // A new sampler (and RNG, from opts.seed).
  void SetSampler(const SamplerOptions& opts) { sampler_ = Sampler(opts); }

 private:
  friend class Model;
  explicit Session(const Model* model, int64_t max_context, const SamplerOptions& so);
  const Model* model_;
  int64_t max_context_;
  std::vector<int32_t> tokens_;
  const std::vector<float>* inv_freq_;  // the model's table for this context length
  Sampler sampler_;
  std::vector<float> k_cache_, v_cache_;  // [layer][max_context][kv_heads * head size]
  PassScratch scratch_;
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(WeightSource* source, const ModelOptions& opts);
  ~Model();

  const ModelConfig& config() const;
  int64_t vocab_size() const;
  // The longest context a session may have.
  int64_t max_context() const { return max_context_; }

  // A new session with its own KV cache (allocated here: KvCacheBytes of its
  // context). The session refers to this model, which must outlive it.
  std::unique_ptr<Session> NewSession(const SessionOptions& opts = {}) const;
  uint64_t KvCacheBytes(int64_t context) const;
  // Whether forward passes of different sessions run at the same time (all
  // weights resident), or take turns (weights streamed under a budget).
  bool concurrent_forward() const;

  StreamerStats streamer_stats() const { return streamer_->Stats(); }
  // Weight bytes one forward pass reads (every layer and the output head).
  uint64_t weight_bytes_per_pass() const;
  // The smallest --mem-budget this model runs under: its largest layer (or
  // head slice) plus the pinned norm vectors.
  uint64_t min_budget() const;

  // One-sequence convenience for tests, benchmarks and one-shot tools: a
  // session of max_context() the model owns, created on first use. Not
  // thread-safe; servers create Sessions.
  Session& default_session();
  int64_t position() { return default_session().position(); }
  void Reset() { default_session().Reset(); }
  void Truncate(int64_t p) { default_session().Truncate(p); }
  absl::Status Forward(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits) {
    return default_session().Forward(tokens, all_logits, logits);
  }
  // KV cache bytes of a session of max_context().
  uint64_t kv_cache_bytes() const { return KvCacheBytes(max_context_); }

  // One forward pass over several sessions at once (continuous batching):
  // every item's tokens are stacked into one activation matrix, so each
  // weight matrix is read once per pass (one matrix-matrix product), while
  // RoPE, the KV cache and attention stay per session. Each session's
  // results are bit-identical to its own Session::Forward (the kernels and
  // the activation quantization work per row). An item whose input is bad
  // (a token outside the vocabulary, a full context, no tokens) gets its
  // own status and is left out; the others run. The returned error (an I/O
  // error of the weight source) fails the whole pass: no session advances.
  // Sessions must be distinct and of this model; scratch is the batch's.
  absl::Status ForwardBatch(std::span<BatchItem> items, PassScratch& scratch) const;

 private:
  friend class Session;
  Model() = default;
  // The pass behind Session::Forward / ForwardHidden: n_out rows of logits
  // (or of normed hidden states when `hidden`) for the last n_out tokens.
  absl::Status Run(Session& s, std::span<const int32_t> tokens, int64_t n_out, bool hidden,
                   std::vector<float>* out) const;
  // A pass over segments (one per session) stacked into rows.
  struct Segment {
    Session* s;
    std::span<const int32_t> tokens;
    int64_t n_out;             // output rows: the last n_out tokens' (0: none)
    std::vector<float>* out;   // [n_out, vocab] logits or [n_out, dim] hidden
    int64_t row0 = 0;          // first row in the stacked activations
  };
  absl::Status CheckSegment(const Segment& g) const;
  absl::Status RunSegments(std::span<Segment> segs, bool hidden, PassScratch& sc) const;
  absl::Status Embed(std::span<const int32_t> tokens, float* x) const;
  absl::Status Layer(std::span<Segment> segs, PassScratch& sc, int64_t l, int64_t n, float* x) const;
  absl::Status Head(PassScratch& sc, int64_t n_out, const float* x, float* logits) const;
  void Attention(std::span<Segment> segs, PassScratch& sc, int64_t l, int64_t n) const;
  // out[n, rows] += the LoRA pairs on layer l's `role` matrix applied to in[n, cols].
  void ApplyLora(int64_t l, Role role, const float* in, float* out, int64_t n) const;

  ModelConfig cfg_;
  std::unique_ptr<ModelPlan> plan_;
  std::unique_ptr<WeightStreamer> streamer_;  // internally synchronized
  WeightSource* source_ = nullptr;
  ThreadPool* pool_ = nullptr;
  int64_t max_context_ = 0;
  double rope_mscale_ = 1.0;  // longrope's attention factor on cos and sin
  bool budgeted_ = false;
  // Per rotated pair, scaling applied. longrope has a table for contexts up
  // to the original one and one beyond; a session uses the one its own
  // length calls for (as llama.cpp decides, by context size rather than by
  // position, so a sequence never changes frequencies half-way).
  std::vector<float> inv_freq_, inv_freq_long_;
  // Held for a whole pass while weights stream (the streamer's cycle order).
  mutable std::mutex stream_mu_;
  std::unique_ptr<Session> default_session_;
  // Run-time LoRA pairs by layer and role (empty: no adapter, no effect).
  std::vector<std::array<std::vector<LoraTensor>, kRoleCount>> lora_;
};

}  // namespace hart::runtime

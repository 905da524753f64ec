// Model: the decoder-only transformer forward pass (llama 1/2/3, mistral,
// qwen2, qwen3, gemma2, phi3) over weights from a WeightSource, with a KV
// cache. Weights are reached only through the WeightStreamer, so the same
// forward pass runs fully mapped or under a memory budget, with identical
// results (the bytes are the same; only where they live differs).
//
// Invariants: Load validates every tensor's presence, dtype and shape
// against the config before any compute; position() tokens are in the KV
// cache; Forward never writes past max_context().
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "core/thread_pool.h"
#include "runtime/kernels.h"
#include "runtime/model_config.h"
#include "runtime/weight_source.h"
#include "runtime/weight_streamer.h"

namespace hart::runtime {

struct ModelOptions {
  StreamerOptions stream;
  int64_t max_context = 0;  // KV cache length; 0 = the model's context length
  ThreadPool* pool = nullptr;  // nullptr = ThreadPool::Default()
};

// The per-layer tensors of every supported architecture, under one naming.
enum class Role : uint8_t {
  kAttnNorm, kQ, kK, kV, kQkv, kO, kQBias, kKBias, kVBias, kQNorm, kKNorm, kPostAttnNorm,
  kFfnNorm, kGate, kUp, kGateUp, kDown, kPostFfnNorm, kCount,
};
inline constexpr size_t kRoleCount = static_cast<size_t>(Role::kCount);

struct LayerPlan;  // model_loader.h
struct ModelPlan;

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(WeightSource* source, const ModelOptions& opts);
  ~Model();

  const ModelConfig& config() const;
  int64_t vocab_size() const;
  int64_t max_context() const { return max_context_; }
  int64_t position() const { return pos_; }
  // Forgets the KV cache.
  void Reset() { pos_ = 0; }
  // Drops the cache after position p (p <= position()), to reuse a prefix.
  void Truncate(int64_t p) { if (p < pos_) pos_ = p; }

  // Runs `tokens` at positions position()..position()+n-1 as one batch and
  // appends them to the KV cache. logits gets [n, vocab] when all_logits,
  // else [vocab] for the last token. OutOfRange when the cache would overflow.
  // An I/O error from the weight source leaves the model unusable.
  absl::Status Forward(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits);

  StreamerStats streamer_stats() const { return streamer_->Stats(); }
  // Weight bytes one forward pass reads (every layer and the output head).
  uint64_t weight_bytes_per_pass() const;
  uint64_t kv_cache_bytes() const;
  // The smallest --mem-budget this model runs under: its largest layer (or
  // head slice) plus the pinned norm vectors.
  uint64_t min_budget() const;

 private:
  Model() = default;
  absl::Status Embed(std::span<const int32_t> tokens, float* x);
  absl::Status Layer(int64_t l, int64_t n, float* x);
  absl::Status Head(int64_t n_out, const float* x, float* logits);
  void Attention(int64_t l, int64_t n);

  ModelConfig cfg_;
  std::unique_ptr<ModelPlan> plan_;
  std::unique_ptr<WeightStreamer> streamer_;
  WeightSource* source_ = nullptr;
  ThreadPool* pool_ = nullptr;
  int64_t max_context_ = 0;
  double rope_mscale_ = 1.0;  // longrope's attention factor on cos and sin
  int64_t pos_ = 0;
  bool budgeted_ = false;
  std::vector<float> inv_freq_;  // per rotated pair, scaling applied
  std::vector<float> k_cache_, v_cache_;  // [layer][max_context][kv_heads * head size]
  // Scratch for one batch.
  std::vector<float> xb_, q_, k_, v_, att_, hb_, hb2_, cos_, sin_;
};

}  // namespace hart::runtime

// Engine: continuous batching and the prompt (prefix) cache for one loaded
// model. A scheduler thread runs every active generation together, one
// Model::ForwardBatch per step (each weight matrix read once per step for
// all of them); generations join and leave between steps, and a long
// prompt's prefill is cut into pieces (prefill_chunk tokens per step shared
// by the prefilling sequences) so decoding sequences keep moving. Each
// sequence is a runtime::Sequence (the same stop-string, decoder, logprobs
// and processor logic as runtime::Generate), so a sequence's greedy output
// is the one it gives alone, whatever runs beside it.
//
// Failure isolation: a sequence's own error (a bad token id, a full
// context, a processor's error) ends that sequence only; an I/O error of the
// weight source fails the sequences of that step. Cancellation is per
// sequence (its CancelToken, or its event callback returning false), seen
// before its next step. Events are delivered on the submitting thread, so a
// slow reader never holds up the batch.
//
// Prompt cache: when a sequence finishes, the K/V of its tokens are kept,
// keyed by those tokens; a new sequence whose prompt shares a prefix with a
// kept entry gets that prefix copied into its session and runs only the
// rest (a repeated system prompt, the previous turn of a chat). Bounded in
// bytes, least recently used evicted first. K/V rows are bit-identical
// however they were batched, so a hit gives the tokens a miss gives.
//
// n choices of one prompt (GenerateMany): the prompt is run once, on the
// first choice's session; when it is in, every other choice gets a copy of
// its K/V but the last prompt token, runs that one token beside the first
// choice's next decode step, and from there decodes in the same batch with
// its own sampler. A choice's tokens are the ones it gives alone.
//
// EngineSet: one Engine per loaded model, made on first use.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "app/models.h"
#include "runtime/generate.h"
#include "runtime/model.h"

namespace hart::app {

struct EngineOptions {
  int max_batch = 8;             // sequences stepped together
  int max_queue = 64;            // waiting to join; more: ResourceExhausted
  int64_t prefill_chunk = 128;   // prompt tokens per step, shared by the prefilling sequences
  int64_t idle_prefill_chunk = 512;  // the same when no sequence is decoding (nobody waits)
  uint64_t prefix_cache_bytes = 256ull << 20;  // 0: no prompt cache
  int64_t min_prefix = 4;        // shorter shared prefixes are not worth a copy
};

struct PrefixCacheStats {
  uint64_t hits = 0, misses = 0, evicted = 0;
  uint64_t hit_tokens = 0;  // prompt tokens served from the cache
  uint64_t bytes = 0, entries = 0;
};

// Token-prefix keyed K/V entries, LRU-bounded in bytes. Thread-safe.
class PrefixCache {
 public:
  explicit PrefixCache(uint64_t max_bytes, int64_t min_prefix = 4)
      : max_bytes_(max_bytes), min_prefix_(min_prefix) {}
  // Copies the longest cached prefix of `prompt` (at most prompt.size() - 1
  // tokens, so one token is left to run) into `session`; returns its length
  // (0 on a miss, and the session is left as it was).
  int64_t Lookup(std::span<const int32_t> prompt, runtime::Session& session);
  // Keeps the session's first n cached tokens. An entry that is a prefix of
  // them is replaced; nothing is kept when they are already covered.
  void Insert(const runtime::Session& session, int64_t n);
  PrefixCacheStats Stats() const;

 private:
  struct Entry {
    std::shared_ptr<const runtime::KvPrefix> kv;
  };
  void EvictLocked();
  uint64_t max_bytes_;
  int64_t min_prefix_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recent first
  uint64_t bytes_ = 0;
  PrefixCacheStats stats_;
};

// One choice of Engine::GenerateMany.
struct EngineChoice {
  runtime::Session* session = nullptr;  // of the engine's model; its sampler is the choice's
  runtime::GenerateParams params;
  runtime::GenerateFn on_event;  // called on the submitting thread; false stops this choice
};

class Engine {
 public:
  Engine(const runtime::Model* model, EngineOptions opts);
  ~Engine();  // ends queued and running sequences (Cancelled) and stops the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // runtime::Generate, batched: runs `prompt` on `session` (of this engine's
  // model) with the others, calling on_event on this thread; blocks until
  // the sequence ends. ResourceExhausted when max_queue are already waiting.
  absl::StatusOr<runtime::GenerateResult> Generate(runtime::Session& session, const runtime::Tokenizer* tok,
                                                   std::span<const int32_t> prompt,
                                                   const runtime::GenerateParams& params,
                                                   const runtime::GenerateFn& on_event = nullptr);

  // The choices of one prompt decoded together, the prompt prefilled once
  // (see above). Blocks until every choice ends; the results in order, or
  // the first choice's error (the others still ran to their end).
  absl::StatusOr<std::vector<runtime::GenerateResult>> GenerateMany(const runtime::Tokenizer* tok,
                                                                    std::span<const int32_t> prompt,
                                                                    std::span<EngineChoice> choices);

  const EngineOptions& options() const { return opts_; }
  PrefixCacheStats cache_stats() const { return cache_.Stats(); }
  uint64_t steps() const { return steps_.load(); }
  // Sequences waiting to join the batch.
  size_t queued() {
    std::lock_guard<std::mutex> l(mu_);
    return queue_.size();
  }
  // The most sequences one step has run together so far.
  int64_t max_batch_seen() const { return max_seen_.load(); }

 private:
  struct Job;
  struct Mailbox;
  void Loop();
  void Step(std::vector<std::shared_ptr<Job>>& active);
  void Done(Job& j, absl::Status failure);
  // Starts the choices waiting on a job's prompt once it is in (or the job ended).
  void Release(std::vector<std::shared_ptr<Job>>& active);

  const runtime::Model* model_;
  EngineOptions opts_;
  PrefixCache cache_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  int running_ = 0;
  std::atomic<uint64_t> steps_{0};
  std::atomic<int64_t> max_seen_{0};
  runtime::PassScratch scratch_;
  std::thread thread_;
};

// One Engine per loaded model. Thread-safe.
class EngineSet {
 public:
  explicit EngineSet(EngineOptions opts) : opts_(opts) {}
  // The engine of `model` (made on first use); engines of models that are
  // gone are dropped here.
  std::shared_ptr<Engine> For(const std::shared_ptr<const LoadedModel>& model);
  // Summed over every engine.
  PrefixCacheStats cache_stats() const;

 private:
  EngineOptions opts_;
  mutable std::mutex mu_;
  struct Slot {
    std::weak_ptr<const LoadedModel> model;
    std::shared_ptr<Engine> engine;
  };
  std::map<const LoadedModel*, Slot> engines_;
};

}  // namespace hart::app

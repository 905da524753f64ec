#include "app/engine.h"

#include <algorithm>
#include <optional>
#include <string>

#include "core/status.h"
#include "fmt/format.h"

namespace hart::app {

namespace rt = hart::runtime;

// --- PrefixCache. ---

namespace {

size_t CommonPrefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

int64_t PrefixCache::Lookup(std::span<const int32_t> prompt, rt::Session& session) {
  if (max_bytes_ == 0 || prompt.size() < 2) return 0;
  const size_t cap = std::min<size_t>(prompt.size() - 1, static_cast<size_t>(session.max_context()));
  std::shared_ptr<const rt::KvPrefix> best;
  size_t best_len = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto best_it = lru_.end();
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      const size_t n = std::min(cap, CommonPrefix(it->kv->tokens, prompt));
      if (n > best_len) best_len = n, best_it = it;
    }
    // What the session already holds needs no copy.
    const size_t have = std::min(cap, CommonPrefix(session.tokens(), prompt));
    if (best_it == lru_.end() || static_cast<int64_t>(best_len) < min_prefix_ || best_len <= have) {
      stats_.misses++;
      return 0;
    }
    lru_.splice(lru_.begin(), lru_, best_it);
    best = best_it->kv;
    stats_.hits++;
    stats_.hit_tokens += best_len;
  }
  if (!session.ImportPrefix(*best, static_cast<int64_t>(best_len)).ok()) return 0;
  return static_cast<int64_t>(best_len);
}

void PrefixCache::Insert(const rt::Session& session, int64_t n) {
  n = std::min(n, session.position());
  if (max_bytes_ == 0 || n < min_prefix_) return;
  std::span<const int32_t> toks(session.tokens().data(), static_cast<size_t>(n));
  if (session.model().KvCacheBytes(n) > max_bytes_) return;  // would evict everything and still not fit
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it)
      if (it->kv->tokens.size() >= toks.size() && CommonPrefix(it->kv->tokens, toks) == toks.size()) {
        lru_.splice(lru_.begin(), lru_, it);  // already covered
        return;
      }
  }
  auto kv = std::make_shared<const rt::KvPrefix>(session.ExportPrefix(n));
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->kv->tokens.size() <= toks.size() && CommonPrefix(it->kv->tokens, toks) == it->kv->tokens.size()) {
      bytes_ -= it->kv->bytes();  // a prefix of the new entry: superseded
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  bytes_ += kv->bytes();
  lru_.push_front(Entry{std::move(kv)});
  EvictLocked();
}

void PrefixCache::EvictLocked() {
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    bytes_ -= lru_.back().kv->bytes();
    lru_.pop_back();
    stats_.evicted++;
  }
}

PrefixCacheStats PrefixCache::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  PrefixCacheStats s = stats_;
  s.bytes = bytes_;
  s.entries = lru_.size();
  return s;
}

// --- Engine. ---

struct Engine::Job {
  rt::Session* session = nullptr;
  rt::GenerateParams params;
  rt::GenerateFn relay;
  std::unique_ptr<rt::Sequence> seq;
  std::vector<float> logits;
  bool ended = false;  // scheduler thread only
  std::atomic<bool> stop{false};  // the submitter's callback said stop

  struct Event {
    int32_t id;
    std::string text;
    std::optional<rt::StepLogprobs> logprobs;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  bool finished = false;
  absl::StatusOr<rt::GenerateResult> result = absl::UnknownError("not finished");
};

Engine::Engine(const rt::Model* model, EngineOptions opts)
    : model_(model), opts_(opts), cache_(opts.prefix_cache_bytes, opts.min_prefix) {
  opts_.max_batch = std::max(1, opts_.max_batch);
  opts_.prefill_chunk = std::max<int64_t>(1, opts_.prefill_chunk);
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::StatusOr<rt::GenerateResult> Engine::Generate(rt::Session& session, const rt::Tokenizer* tok,
                                                    std::span<const int32_t> prompt,
                                                    const rt::GenerateParams& params,
                                                    const rt::GenerateFn& on_event) {
  if (&session.model() != model_) return absl::InvalidArgumentError("the session is of another model");
  auto job = std::make_shared<Job>();
  Job* j = job.get();
  job->session = &session;
  job->params = params;
  job->relay = [j](const rt::GenerateEvent& e) {
    {
      std::lock_guard<std::mutex> l(j->mu);
      Job::Event ev{e.id, std::string(e.text), std::nullopt};
      if (e.logprobs) ev.logprobs = *e.logprobs;
      j->events.push_back(std::move(ev));
    }
    j->cv.notify_one();
    return !j->stop.load();
  };
  cache_.Lookup(prompt, session);
  ASSIGN_OR_RETURN(job->seq, rt::Sequence::Start(session, tok, prompt, job->params, job->relay));
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return absl::CancelledError("the engine is stopping");
    if (static_cast<int>(queue_.size()) >= opts_.max_queue)
      return absl::ResourceExhaustedError(
          fmt::format("{} generations are already waiting for this model; retry later", queue_.size()));
    queue_.push_back(job);
  }
  cv_.notify_one();

  // Deliver events here, on the submitter's thread.
  bool told_stop = false;
  std::deque<Job::Event> batch;
  for (;;) {
    bool finished;
    {
      std::unique_lock<std::mutex> l(j->mu);
      j->cv.wait(l, [&] { return j->finished || !j->events.empty(); });
      batch.swap(j->events);
      finished = j->finished;
    }
    for (const auto& ev : batch) {
      if (told_stop || !on_event) continue;
      if (!on_event(rt::GenerateEvent{ev.id, ev.text, ev.logprobs ? &*ev.logprobs : nullptr})) {
        told_stop = true;
        j->stop = true;
      }
    }
    batch.clear();
    if (finished) {
      std::lock_guard<std::mutex> l(j->mu);
      if (j->events.empty()) break;
    }
  }
  absl::StatusOr<rt::GenerateResult> r = std::move(j->result);
  if (r.ok()) {
    if (told_stop) r->finish_reason = rt::FinishReason::kCancelled;
    cache_.Insert(session, session.position());
  }
  return r;
}

void Engine::Done(Job& j, absl::Status failure) {
  j.ended = true;
  {
    std::lock_guard<std::mutex> l(j.mu);
    if (failure.ok()) {
      j.result = j.seq->Finish();
    } else {
      j.result = std::move(failure);
    }
    j.finished = true;
  }
  j.cv.notify_one();
}

void Engine::Loop() {
  std::vector<std::shared_ptr<Job>> active;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty() || !active.empty(); });
      if (stop_) {
        for (auto& j : active) Done(*j, absl::CancelledError("the engine stopped"));
        for (auto& j : queue_) Done(*j, absl::CancelledError("the engine stopped"));
        queue_.clear();
        return;
      }
      while (!queue_.empty() && static_cast<int>(active.size()) < opts_.max_batch) {
        active.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Step(active);
    std::erase_if(active, [](const std::shared_ptr<Job>& j) { return j->ended; });
  }
}

void Engine::Step(std::vector<std::shared_ptr<Job>>& active) {
  std::vector<rt::BatchItem> items;
  std::vector<Job*> jobs;
  items.reserve(active.size());
  // Decoding sequences first (one token each), then prompt pieces sharing
  // the prefill budget, oldest first.
  const bool decoding = std::any_of(active.begin(), active.end(), [](const auto& j) {
    return !j->ended && !j->seq->prefilling();
  });
  int64_t budget = decoding ? opts_.prefill_chunk : std::max(opts_.prefill_chunk, opts_.idle_prefill_chunk);
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& jp : active) {
      Job& j = *jp;
      if (j.ended || j.seq->prefilling() != (pass == 1)) continue;
      if (pass == 1 && budget <= 0) continue;  // waits for the next step
      std::span<const int32_t> toks = j.seq->Next(pass == 1 ? budget : 1);
      if (j.seq->done()) {
        Done(j, absl::OkStatus());
        continue;
      }
      if (pass == 1) budget -= static_cast<int64_t>(toks.size());
      items.push_back(rt::BatchItem{j.session, toks, j.seq->wants_logits() ? &j.logits : nullptr, {}});
      jobs.push_back(&j);
    }
  }
  if (items.empty()) return;
  steps_++;
  max_seen_.store(std::max<int64_t>(max_seen_.load(), static_cast<int64_t>(items.size())));
  absl::Status pass = model_->ForwardBatch(items, scratch_);
  for (size_t i = 0; i < items.size(); ++i) {
    Job& j = *jobs[i];
    if (!pass.ok()) {
      Done(j, pass);
      continue;
    }
    if (!items[i].status.ok()) {
      Done(j, items[i].status);
      continue;
    }
    absl::Status s = j.seq->Fed(items[i].logits ? std::span<const float>(j.logits) : std::span<const float>());
    if (!s.ok()) {
      Done(j, s);
    } else if (j.seq->done()) {
      Done(j, absl::OkStatus());
    }
  }
}

// --- EngineSet. ---

std::shared_ptr<Engine> EngineSet::For(const std::shared_ptr<const LoadedModel>& model) {
  std::lock_guard<std::mutex> l(mu_);
  std::erase_if(engines_, [](const auto& kv) { return kv.second.model.expired(); });
  auto it = engines_.find(model.get());
  if (it != engines_.end() && it->second.model.lock() == model) return it->second.engine;
  auto e = std::make_shared<Engine>(model->model.get(), opts_);
  engines_[model.get()] = Slot{model, e};
  return e;
}

PrefixCacheStats EngineSet::cache_stats() const {
  std::lock_guard<std::mutex> l(mu_);
  PrefixCacheStats t;
  for (const auto& [k, s] : engines_) {
    PrefixCacheStats e = s.engine->cache_stats();
    t.hits += e.hits, t.misses += e.misses, t.evicted += e.evicted, t.hit_tokens += e.hit_tokens;
    t.bytes += e.bytes, t.entries += e.entries;
  }
  return t;
}

}  // namespace hart::app

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

// Where a request's choices leave their events and results, read by the
// submitting thread.
struct Engine::Mailbox {
  struct Event {
    int index;
    int32_t id;
    std::string text;
    std::optional<rt::StepLogprobs> logprobs;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  int unfinished = 0;
};

struct Engine::Job {
  rt::Session* session = nullptr;
  const rt::Tokenizer* tok = nullptr;
  rt::GenerateParams params;
  rt::GenerateFn relay;
  std::unique_ptr<rt::Sequence> seq;  // null for a follower until it is released
  std::vector<float> logits;
  bool ended = false;  // scheduler thread only
  std::atomic<bool> stop{false};  // the submitter's callback said stop
  int index = 0;
  std::shared_ptr<Mailbox> box;
  absl::StatusOr<rt::GenerateResult> result = absl::UnknownError("not finished");  // under box->mu
  // The other choices of this job's prompt, waiting for it to be in; and
  // the prompt they start with.
  std::vector<std::shared_ptr<Job>> followers;
  std::vector<int32_t> prompt;
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
  EngineChoice c{&session, params, on_event};
  ASSIGN_OR_RETURN(auto r, GenerateMany(tok, prompt, std::span<EngineChoice>(&c, 1)));
  return std::move(r[0]);
}

absl::StatusOr<std::vector<rt::GenerateResult>> Engine::GenerateMany(const rt::Tokenizer* tok,
                                                                     std::span<const int32_t> prompt,
                                                                     std::span<EngineChoice> choices) {
  if (choices.empty()) return absl::InvalidArgumentError("no choices to generate");
  for (const EngineChoice& c : choices)
    if (c.session == nullptr || &c.session->model() != model_)
      return absl::InvalidArgumentError("the session is of another model");
  auto box = std::make_shared<Mailbox>();
  std::vector<std::shared_ptr<Job>> jobs;
  for (size_t i = 0; i < choices.size(); ++i) {
    auto job = std::make_shared<Job>();
    Job* j = job.get();
    j->session = choices[i].session;
    j->tok = tok;
    j->params = choices[i].params;
    j->index = static_cast<int>(i);
    j->box = box;
    Mailbox* b = box.get();
    j->relay = [j, b](const rt::GenerateEvent& e) {
      {
        std::lock_guard<std::mutex> l(b->mu);
        Mailbox::Event ev{j->index, e.id, std::string(e.text), std::nullopt};
        if (e.logprobs) ev.logprobs = *e.logprobs;
        b->events.push_back(std::move(ev));
      }
      b->cv.notify_one();
      return !j->stop.load();
    };
    jobs.push_back(std::move(job));
  }
  Job& lead = *jobs[0];
  cache_.Lookup(prompt, *lead.session);
  ASSIGN_OR_RETURN(lead.seq, rt::Sequence::Start(*lead.session, tok, prompt, lead.params, lead.relay));
  for (size_t i = 1; i < jobs.size(); ++i) {
    jobs[i]->prompt.assign(prompt.begin(), prompt.end());
    lead.followers.push_back(jobs[i]);
  }
  box->unfinished = static_cast<int>(jobs.size());
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return absl::CancelledError("the engine is stopping");
    if (static_cast<int>(queue_.size()) >= opts_.max_queue)
      return absl::ResourceExhaustedError(
          fmt::format("{} generations are already waiting for this model; retry later", queue_.size()));
    queue_.push_back(jobs[0]);
  }
  cv_.notify_one();

  // Deliver events here, on the submitter's thread.
  std::vector<bool> told_stop(jobs.size(), false);
  std::deque<Mailbox::Event> batch;
  for (;;) {
    bool finished;
    {
      std::unique_lock<std::mutex> l(box->mu);
      box->cv.wait(l, [&] { return box->unfinished == 0 || !box->events.empty(); });
      batch.swap(box->events);
      finished = box->unfinished == 0;
    }
    for (const auto& ev : batch) {
      const size_t i = static_cast<size_t>(ev.index);
      if (told_stop[i] || !choices[i].on_event) continue;
      if (!choices[i].on_event(rt::GenerateEvent{ev.id, ev.text, ev.logprobs ? &*ev.logprobs : nullptr})) {
        told_stop[i] = true;
        jobs[i]->stop = true;
      }
    }
    batch.clear();
    if (finished) {
      std::lock_guard<std::mutex> l(box->mu);
      if (box->events.empty()) break;
    }
  }
  std::vector<rt::GenerateResult> out;
  absl::Status first = absl::OkStatus();
  for (size_t i = 0; i < jobs.size(); ++i) {
    absl::StatusOr<rt::GenerateResult> r = std::move(jobs[i]->result);
    if (!r.ok()) {
      if (first.ok()) first = r.status();
      continue;
    }
    if (told_stop[i]) r->finish_reason = rt::FinishReason::kCancelled;
    cache_.Insert(*jobs[i]->session, jobs[i]->session->position());
    out.push_back(std::move(*r));
  }
  if (!first.ok()) return first;
  return out;
}

void Engine::Done(Job& j, absl::Status failure) {
  j.ended = true;
  {
    std::lock_guard<std::mutex> l(j.box->mu);
    if (failure.ok()) {
      j.result = j.seq->Finish();
    } else {
      j.result = std::move(failure);
    }
    j.box->unfinished--;
  }
  j.box->cv.notify_one();
}

void Engine::Release(std::vector<std::shared_ptr<Job>>& active) {
  std::vector<std::shared_ptr<Job>> started;
  for (auto& jp : active) {
    Job& lead = *jp;
    if (lead.followers.empty() || (!lead.ended && lead.seq->prefilling())) continue;
    // The prompt (as the leader kept it, truncated or not) but its last
    // token, which each follower runs itself for its own first logits.
    const std::vector<int32_t>& p = lead.seq->prompt();
    const size_t n = std::min(p.size() > 0 ? p.size() - 1 : 0, CommonPrefix(lead.session->tokens(), p));
    std::optional<rt::KvPrefix> kv;
    if (n > 0) kv = lead.session->ExportPrefix(static_cast<int64_t>(n));
    for (auto& f : lead.followers) {
      // Failing (a session of another shape), it runs the whole prompt itself.
      if (kv) f->session->ImportPrefix(*kv, static_cast<int64_t>(n)).IgnoreError();
      auto seq = rt::Sequence::Start(*f->session, f->tok, f->prompt, f->params, f->relay);
      if (!seq.ok()) {
        Done(*f, seq.status());
        continue;
      }
      f->seq = std::move(*seq);
      started.push_back(std::move(f));
    }
    lead.followers.clear();
  }
  for (auto& f : started) active.push_back(std::move(f));
}

void Engine::Loop() {
  std::vector<std::shared_ptr<Job>> active;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty() || !active.empty(); });
      if (stop_) {
        auto cancel = [this](Job& j) {
          for (auto& f : j.followers) Done(*f, absl::CancelledError("the engine stopped"));
          j.followers.clear();
          if (!j.ended) Done(j, absl::CancelledError("the engine stopped"));
        };
        for (auto& j : active) cancel(*j);
        for (auto& j : queue_) cancel(*j);
        queue_.clear();
        return;
      }
      while (!queue_.empty() && static_cast<int>(active.size()) < opts_.max_batch) {
        active.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Step(active);
    Release(active);
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

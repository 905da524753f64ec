// Continuous batching and the prompt cache (app/engine) on a tiny random-
// weight model, resident and streamed under a budget: a batched pass gives
// each session the logits it gets alone, bit for bit; greedy output under
// the engine equals the same request alone for 1..8 sequences of different
// prompt lengths joining at different steps; a failing or cancelled
// sequence leaves the others untouched; a prompt-cache hit gives the tokens
// a miss gives, and the cache stays inside its byte bound.
#include <atomic>
#include <chrono>
#include <thread>

#include "app/engine.h"
#include "gtest/gtest.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "tests/runtime/runtime_fixtures.h"

namespace hart::app {
namespace {

namespace rt = hart::runtime;

class BatchEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gguf_ = new std::string(rt::testing::MakeFixture("engine_q8", "--type q8_0 --layers 3") + "/model.gguf");
  }
  static void TearDownTestSuite() { delete gguf_; }
  void SetUp() override { Load(0); }
  void Load(uint64_t budget) {
    model_.reset();
    auto src = rt::OpenFileWeights(*gguf_);
    ASSERT_TRUE(src.ok()) << src.status();
    src_ = std::move(*src);
    auto tok = rt::LoadTokenizer(*src_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = std::move(*tok);
    rt::ModelOptions mo{.max_context = 128, .pool = &pool_};
    mo.stream.budget = budget;
    auto m = rt::Model::Load(src_.get(), mo);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
  }

  // A deterministic prompt of n ids (BOS-free, inside the vocabulary).
  std::vector<int32_t> Prompt(int n, int salt) const {
    std::vector<int32_t> p;
    uint32_t x = 2654435761u * static_cast<uint32_t>(salt + 1);
    for (int i = 0; i < n; ++i) {
      x = x * 1664525u + 1013904223u;
      p.push_back(static_cast<int32_t>(3 + (x >> 8) % static_cast<uint32_t>(model_->vocab_size() - 3)));
    }
    return p;
  }
  static rt::GenerateParams Greedy(int64_t max_tokens) {
    rt::GenerateParams p;
    p.max_tokens = max_tokens;
    p.stop_at_eog = false;
    return p;
  }
  std::unique_ptr<rt::Session> NewSession(int64_t ctx = 0) const {
    rt::SessionOptions so;
    so.max_context = ctx;
    so.sampler.temperature = 0;
    return model_->NewSession(so);
  }
  // The request alone, through runtime::Generate.
  std::vector<int32_t> Alone(const std::vector<int32_t>& prompt, const rt::GenerateParams& p, int64_t ctx = 0) {
    auto s = NewSession(ctx);
    auto r = rt::Generate(*s, tok_.get(), prompt, p);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->tokens : std::vector<int32_t>{};
  }

  static std::string* gguf_;
  ThreadPool pool_{2};
  std::unique_ptr<rt::WeightSource> src_;
  std::unique_ptr<rt::Tokenizer> tok_;
  std::unique_ptr<rt::Model> model_;
};
std::string* BatchEngineTest::gguf_ = nullptr;

TEST_F(BatchEngineTest, ForwardBatchGivesEachSessionItsOwnLogitsBitForBit) {
  for (uint64_t budget : {uint64_t{0}, uint64_t{1}}) {
    if (budget) Load(model_->min_budget());
    SCOPED_TRACE(budget ? "streamed" : "resident");
    // Three sessions at different positions; one step: a 5-token prefill
    // piece with logits, a decode token, a piece without logits.
    const auto a = Prompt(9, 1), b = Prompt(4, 2), c = Prompt(12, 3);
    auto sa = NewSession(), sb = NewSession(), sc = NewSession();
    auto ra = NewSession(), rb = NewSession(), rc = NewSession();
    std::vector<float> la, lb, lc, ref;
    for (auto* s : {sa.get(), ra.get()}) ASSERT_TRUE(s->Forward(std::span(a).first(4), false, &ref).ok());
    for (auto* s : {sb.get(), rb.get()}) ASSERT_TRUE(s->Forward(b, false, &ref).ok());
    rt::BatchItem items[] = {{sa.get(), std::span(a).subspan(4), &la, {}},
                             {sb.get(), std::span(a).first(1), &lb, {}},
                             {sc.get(), std::span(c).first(7), nullptr, {}}};
    rt::PassScratch scratch;
    ASSERT_TRUE(model_->ForwardBatch(items, scratch).ok());
    for (const auto& it : items) EXPECT_TRUE(it.status.ok()) << it.status;
    ASSERT_TRUE(ra->Forward(std::span(a).subspan(4), false, &ref).ok());
    EXPECT_EQ(la, ref);
    ASSERT_TRUE(rb->Forward(std::span(a).first(1), false, &ref).ok());
    EXPECT_EQ(lb, ref);
    // The piece without logits left the same cache: the next token agrees.
    ASSERT_TRUE(rc->Forward(std::span(c).first(7), false, &ref).ok());
    ASSERT_TRUE(sc->Forward(std::span(c).subspan(7), false, &lc).ok());
    ASSERT_TRUE(rc->Forward(std::span(c).subspan(7), false, &ref).ok());
    EXPECT_EQ(lc, ref);
    EXPECT_EQ(sa->position(), 9);
    EXPECT_EQ(sc->tokens(), c);

    // A bad item fails alone: nothing appended to it, the others run.
    std::vector<int32_t> bad = {1, static_cast<int32_t>(model_->vocab_size())};
    auto sd = NewSession();
    rt::BatchItem mixed[] = {{sd.get(), bad, &lc, {}}, {sb.get(), std::span(b).first(2), &lb, {}}};
    ASSERT_TRUE(model_->ForwardBatch(mixed, scratch).ok());
    EXPECT_EQ(mixed[0].status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(sd->position(), 0);
    EXPECT_TRUE(mixed[1].status.ok());
    ASSERT_TRUE(rb->Forward(std::span(b).first(2), false, &ref).ok());
    EXPECT_EQ(lb, ref);
  }
}

// k sequences, prompts of 3..52 tokens, each joining a few steps after the
// one before, prefill in 16-token pieces beside the decoding ones.
TEST_F(BatchEngineTest, GreedyOutputUnderBatchingEqualsAlone) {
  for (uint64_t budget : {uint64_t{0}, uint64_t{1}}) {
    if (budget) Load(model_->min_budget());
    SCOPED_TRACE(budget ? "streamed" : "resident");
    for (int k : {1, 2, 4, 8}) {
      SCOPED_TRACE(::testing::Message() << k << " sequences");
      std::vector<std::vector<int32_t>> prompts, want(k);
      for (int i = 0; i < k; ++i) prompts.push_back(Prompt(3 + 7 * i, 10 * k + i));
      const rt::GenerateParams p = Greedy(10);
      for (int i = 0; i < k; ++i) want[i] = Alone(prompts[i], p);
      Engine engine(model_.get(), EngineOptions{.max_batch = 8, .prefill_chunk = 16, .idle_prefill_chunk = 16, .prefix_cache_bytes = 0});
      std::vector<std::vector<int32_t>> got(k);
      std::vector<std::thread> threads;
      for (int i = 0; i < k; ++i)
        threads.emplace_back([&, i] {
          // Join after the previous ones ran a few steps (bounded wait).
          for (int w = 0; w < 400 && engine.steps() < static_cast<uint64_t>(2 * i); ++w)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          auto s = NewSession();
          auto r = engine.Generate(*s, tok_.get(), prompts[i], p);
          EXPECT_TRUE(r.ok()) << r.status();
          if (r.ok()) got[i] = r->tokens;
        });
      for (auto& t : threads) t.join();
      for (int i = 0; i < k; ++i) EXPECT_EQ(got[i], want[i]) << "sequence " << i;
      if (k >= 4) EXPECT_GE(engine.max_batch_seen(), 2);
    }
  }
}

// n choices of one prompt (GenerateMany): each choice, sampled with its own
// seed, gives the tokens it gives alone; the prompt runs once (the other
// choices take its K/V and run only its last token); greedy choices agree.
TEST_F(BatchEngineTest, ChoicesOfOnePromptDecodeTogetherAndEqualEachAlone) {
  for (uint64_t budget : {uint64_t{0}, uint64_t{1}}) {
    if (budget) Load(model_->min_budget());
    SCOPED_TRACE(budget ? "streamed" : "resident");
    const std::vector<int32_t> prompt = Prompt(37, 5);
    rt::GenerateParams p = Greedy(12);
    auto sampled = [&](uint64_t seed) {
      rt::SessionOptions so;
      so.sampler.temperature = 1.0f;
      so.sampler.seed = seed;
      return model_->NewSession(so);
    };
    std::vector<std::vector<int32_t>> want;
    for (uint64_t i = 0; i < 3; ++i) {
      auto s = sampled(100 + i);
      auto r = rt::Generate(*s, tok_.get(), prompt, p);
      ASSERT_TRUE(r.ok()) << r.status();
      want.push_back(r->tokens);
    }
    ASSERT_NE(want[0], want[1]);  // the seeds do differ

    Engine engine(model_.get(), EngineOptions{.max_batch = 8, .prefill_chunk = 8, .idle_prefill_chunk = 8, .prefix_cache_bytes = 0});
    std::vector<std::unique_ptr<rt::Session>> sessions;
    std::vector<EngineChoice> choices;
    std::vector<std::string> streamed(3);
    for (uint64_t i = 0; i < 3; ++i) {
      sessions.push_back(sampled(100 + i));
      choices.push_back(EngineChoice{sessions.back().get(), p, [&streamed, i](const rt::GenerateEvent& e) {
                                       streamed[i] += e.text;
                                       return true;
                                     }});
    }
    auto r = engine.GenerateMany(tok_.get(), prompt, choices);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ((*r)[i].tokens, want[i]) << "choice " << i;
      EXPECT_EQ(streamed[i], (*r)[i].text) << "choice " << i;
    }
    // The prompt ran once: the other choices kept all of it but its last token.
    EXPECT_EQ((*r)[0].stats.cached_tokens, 0);
    EXPECT_EQ((*r)[1].stats.cached_tokens, static_cast<int64_t>(prompt.size()) - 1);
    EXPECT_EQ((*r)[2].stats.cached_tokens, static_cast<int64_t>(prompt.size()) - 1);
    EXPECT_EQ(engine.max_batch_seen(), 3);
    // 37 prompt tokens in pieces of 8 (5 steps), then 12 decode steps at most
    // (the followers' last prompt token rides with the first).
    EXPECT_LE(engine.steps(), 5u + 12u);

    // Greedy choices are the same choice.
    std::vector<std::unique_ptr<rt::Session>> gs;
    std::vector<EngineChoice> greedy;
    for (int i = 0; i < 2; ++i) {
      gs.push_back(NewSession());
      greedy.push_back(EngineChoice{gs.back().get(), p, nullptr});
    }
    auto g = engine.GenerateMany(tok_.get(), prompt, greedy);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ((*g)[0].tokens, (*g)[1].tokens);
    EXPECT_EQ((*g)[0].tokens, Alone(prompt, p));
  }
}

// A choice that stops (its reader went away) ends alone; a prompt that does
// not fit fails the request before anything runs.
TEST_F(BatchEngineTest, ChoicesStopAloneAndBadPromptsFailWhole) {
  Engine engine(model_.get(), EngineOptions{.prefix_cache_bytes = 0});
  const std::vector<int32_t> prompt = Prompt(9, 2);
  const rt::GenerateParams p = Greedy(10);
  std::vector<std::unique_ptr<rt::Session>> ss;
  std::vector<EngineChoice> cs;
  for (int i = 0; i < 3; ++i) {
    ss.push_back(NewSession());
    cs.push_back(EngineChoice{ss.back().get(), p, nullptr});
  }
  int seen = 0;
  cs[1].on_event = [&](const rt::GenerateEvent&) { return ++seen < 2; };
  auto r = engine.GenerateMany(tok_.get(), prompt, cs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[1].finish_reason, rt::FinishReason::kCancelled);
  EXPECT_EQ((*r)[0].tokens.size(), 10u);
  EXPECT_EQ((*r)[2].tokens, (*r)[0].tokens);

  std::vector<std::unique_ptr<rt::Session>> small;
  std::vector<EngineChoice> cs2;
  for (int i = 0; i < 2; ++i) {
    small.push_back(NewSession(4));
    cs2.push_back(EngineChoice{small.back().get(), p, nullptr});
  }
  auto bad = engine.GenerateMany(tok_.get(), prompt, cs2);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kOutOfRange) << bad.status();
}

// Fails on its n-th draw.
class FailingProcessor : public rt::LogitsProcessor {
 public:
  explicit FailingProcessor(int n) : n_(n) {}
  absl::Status Apply(std::span<float>) override {
    return ++calls_ >= n_ ? absl::InternalError("processor failed") : absl::OkStatus();
  }
  absl::Status Accept(int32_t) override { return absl::OkStatus(); }

 private:
  int n_, calls_ = 0;
};

// Cancels its token when the third token is drawn.
class CancelOnThird : public rt::LogitsProcessor {
 public:
  explicit CancelOnThird(CancelToken* t) : t_(t) {}
  absl::Status Apply(std::span<float>) override { return absl::OkStatus(); }
  absl::Status Accept(int32_t) override {
    if (++n_ == 3) t_->Cancel();
    return absl::OkStatus();
  }

 private:
  CancelToken* t_;
  int n_ = 0;
};

TEST_F(BatchEngineTest, FailingAndCancelledSequencesLeaveTheOthersAlone) {
  Engine engine(model_.get(), EngineOptions{.max_batch = 8, .prefill_chunk = 8, .idle_prefill_chunk = 8, .prefix_cache_bytes = 0});
  const auto good1 = Prompt(20, 1), good2 = Prompt(7, 2), small = Prompt(10, 3);
  const rt::GenerateParams p = Greedy(12);
  const auto want1 = Alone(good1, p), want2 = Alone(good2, p), want_small = Alone(small, p, 14);
  std::vector<int32_t> bad = Prompt(6, 4);
  bad[3] = static_cast<int32_t>(model_->vocab_size() + 5);
  FailingProcessor failing(3);
  CancelToken cancel;

  std::vector<std::thread> threads;
  std::vector<int32_t> got1, got2, got_small;
  auto run = [&](const std::vector<int32_t>& prompt, rt::GenerateParams gp, int64_t ctx,
                 const rt::GenerateFn& fn = nullptr) {
    auto s = NewSession(ctx);
    return engine.Generate(*s, tok_.get(), prompt, gp, fn);
  };
  threads.emplace_back([&] {
    auto r = run(good1, p, 0);
    ASSERT_TRUE(r.ok()) << r.status();
    got1 = r->tokens;
  });
  threads.emplace_back([&] {
    auto r = run(bad, p, 0);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  });
  threads.emplace_back([&] {
    rt::GenerateParams gp = p;
    gp.processors = {&failing};
    auto r = run(good2, gp, 0);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  });
  threads.emplace_back([&] {
    auto r = run(small, p, 14);  // the context fills after 4 more tokens
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->finish_reason, rt::FinishReason::kLength);
    got_small = r->tokens;
  });
  threads.emplace_back([&] {
    rt::GenerateParams gp = Greedy(-1);
    gp.cancel = &cancel;
    CancelOnThird canceller(&cancel);
    gp.processors = {&canceller};
    auto r = run(Prompt(5, 5), gp, 0);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->finish_reason, rt::FinishReason::kCancelled);
    EXPECT_EQ(r->tokens.size(), 3u);  // seen before the next step
  });
  threads.emplace_back([&] {
    int n = 0;
    auto r = run(Prompt(9, 6), Greedy(-1), 0, [&](const rt::GenerateEvent&) { return ++n < 2; });
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->finish_reason, rt::FinishReason::kCancelled);
    EXPECT_EQ(n, 2);  // no event after the callback said stop
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(got1, want1);
  EXPECT_EQ(got_small, want_small);
  EXPECT_EQ(got_small.size(), 5u);  // 4 free positions, and the last token is never run
  // The processor's failure came at its third draw; good2 itself still runs.
  auto r2 = run(good2, p, 0);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->tokens, want2);
}

// Sleeps 20 ms per draw.
class Slow : public rt::LogitsProcessor {
 public:
  absl::Status Apply(std::span<float>) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return absl::OkStatus();
  }
  absl::Status Accept(int32_t) override { return absl::OkStatus(); }
};

// max_batch running, max_queue waiting, then ResourceExhausted; a queued
// sequence joins when a running one leaves.
TEST_F(BatchEngineTest, FullQueueIsResourceExhausted) {
  Engine engine(model_.get(), EngineOptions{.max_batch = 1, .max_queue = 1, .prefix_cache_bytes = 0});
  CancelToken stop_first;
  rt::GenerateParams endless = Greedy(-1);
  endless.cancel = &stop_first;
  Slow slow;  // keeps the first running (its context lasts 124 steps, >= 2.5 s) until cancelled
  endless.processors = {&slow};
  absl::StatusOr<rt::GenerateResult> first, second;
  std::thread a([&] {
    auto s = NewSession();
    first = engine.Generate(*s, tok_.get(), Prompt(4, 1), endless);
  });
  for (int i = 0; i < 1000 && engine.steps() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GT(engine.steps(), 0u);
  const auto p2 = Prompt(6, 2);
  std::thread b([&] {
    auto s = NewSession();
    second = engine.Generate(*s, tok_.get(), p2, Greedy(5));
  });
  for (int i = 0; i < 1000 && engine.queued() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(engine.queued(), 1u);
  auto s3 = NewSession();
  auto third = engine.Generate(*s3, tok_.get(), Prompt(5, 3), Greedy(5));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  stop_first.Cancel();
  a.join();
  b.join();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->finish_reason, rt::FinishReason::kCancelled);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->tokens, Alone(p2, Greedy(5)));
}

TEST_F(BatchEngineTest, PromptCacheHitGivesTheTokensOfAMiss) {
  for (uint64_t budget : {uint64_t{0}, uint64_t{1}}) {
    if (budget) Load(model_->min_budget());
    SCOPED_TRACE(budget ? "streamed" : "resident");
    Engine engine(model_.get(), EngineOptions{.prefill_chunk = 16});
    const auto system = Prompt(40, 7);
    std::vector<int32_t> a = system, b = system;
    for (int32_t t : Prompt(6, 8)) a.push_back(t);
    for (int32_t t : Prompt(9, 9)) b.push_back(t);
    const rt::GenerateParams p = Greedy(8);
    auto gen = [&](const std::vector<int32_t>& prompt) {
      auto s = NewSession();
      auto r = engine.Generate(*s, tok_.get(), prompt, p);
      EXPECT_TRUE(r.ok()) << r.status();
      return r.ok() ? std::move(*r) : rt::GenerateResult{};
    };
    auto miss = gen(a);
    EXPECT_EQ(miss.stats.cached_tokens, 0);
    EXPECT_EQ(miss.tokens, Alone(a, p));
    auto hit = gen(a);  // the whole prompt but its last token from the cache
    EXPECT_EQ(hit.stats.cached_tokens, static_cast<int64_t>(a.size()) - 1);
    EXPECT_EQ(hit.tokens, miss.tokens);
    auto shared = gen(b);  // the system prompt from the cache
    EXPECT_EQ(shared.stats.cached_tokens, static_cast<int64_t>(system.size()));
    EXPECT_EQ(shared.tokens, Alone(b, p));
    const PrefixCacheStats st = engine.cache_stats();
    EXPECT_EQ(st.hits, 2u);
    EXPECT_EQ(st.misses, 1u);
    EXPECT_EQ(st.hit_tokens, a.size() - 1 + system.size());
    EXPECT_GT(st.bytes, 0u);
    EXPECT_EQ(st.evicted, 0u);
  }
}

TEST_F(BatchEngineTest, PromptCacheEvictsLeastRecentlyUsedWithinItsBound) {
  const uint64_t one = model_->KvCacheBytes(20) + 20 * sizeof(int32_t);
  PrefixCache cache(one * 5 / 2);
  std::vector<std::unique_ptr<rt::Session>> s;
  std::vector<float> logits;
  for (int i = 0; i < 3; ++i) {
    s.push_back(NewSession());
    ASSERT_TRUE(s.back()->Forward(Prompt(20, 30 + i), false, &logits).ok());
  }
  cache.Insert(*s[0], 20);
  cache.Insert(*s[1], 20);
  auto probe = NewSession();
  auto ext = [&](int i) {
    auto p = Prompt(20, 30 + i);
    p.push_back(5);
    return p;
  };
  EXPECT_EQ(cache.Lookup(ext(0), *probe), 20);  // 0 is now the most recent
  cache.Insert(*s[2], 20);                      // evicts 1
  PrefixCacheStats st = cache.Stats();
  EXPECT_EQ(st.entries, 2u);
  EXPECT_EQ(st.evicted, 1u);
  EXPECT_LE(st.bytes, one * 5 / 2);
  probe->Reset();
  EXPECT_EQ(cache.Lookup(ext(1), *probe), 0);
  EXPECT_EQ(probe->position(), 0);
  EXPECT_EQ(cache.Lookup(ext(2), *probe), 20);
  // The imported prefix is the real one: the next logits agree with s[2]'s.
  std::vector<float> want;
  ASSERT_TRUE(probe->Forward(std::span<const int32_t>(ext(2)).subspan(20), false, &logits).ok());
  ASSERT_TRUE(s[2]->Forward(std::span<const int32_t>(ext(2)).subspan(20), false, &want).ok());
  EXPECT_EQ(logits, want);
  st = cache.Stats();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 1u);
  // An entry larger than the whole bound is not kept.
  PrefixCache tiny(one / 2);
  tiny.Insert(*s[0], 20);
  EXPECT_EQ(tiny.Stats().entries, 0u);
}

}  // namespace
}  // namespace hart::app

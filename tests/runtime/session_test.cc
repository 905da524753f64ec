// Model vs Session: one loaded model serves many sessions (interleaved or on
// threads, mapped or streamed, each gives the tokens it gives alone); the
// generation API's stop strings, cancellation, logprobs, seeds, finish
// reasons and prefix reuse; embeddings as pooled final hidden states.
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "runtime_fixtures.h"

namespace hart::runtime {
namespace {

class SessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gguf_ = new std::string(testing::MakeFixture("session_q8", "--type q8_0 --layers 3") + "/model.gguf");
  }
  static void TearDownTestSuite() { delete gguf_; }

  void SetUp() override { Load(0); }
  void Load(uint64_t budget) {
    model_.reset();
    auto src = OpenFileWeights(*gguf_);
    ASSERT_TRUE(src.ok()) << src.status();
    src_ = std::move(*src);
    auto tok = LoadTokenizer(*src_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = std::move(*tok);
    ModelOptions mo{.max_context = 96, .pool = &pool_};
    mo.stream.budget = budget;
    auto m = Model::Load(src_.get(), mo);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
  }

  std::vector<int32_t> Prompt(std::string_view text) const { return tok_->Encode(text, true); }

  GenerateResult Gen(Session& s, std::span<const int32_t> prompt, GenerateParams p,
                     std::string* streamed = nullptr) {
    auto r = Generate(s, tok_.get(), prompt, p, [&](const GenerateEvent& e) {
      if (streamed) *streamed += e.text;
      return true;
    });
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : GenerateResult{};
  }

  static std::string* gguf_;
  ThreadPool pool_{2};
  std::unique_ptr<WeightSource> src_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<Model> model_;
};
std::string* SessionTest::gguf_ = nullptr;

// One greedy step by hand: the argmax of `logits`, fed back.
int32_t Step(Session& s, std::vector<float>& logits) {
  const int32_t id = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const int32_t one[] = {id};
  EXPECT_TRUE(s.Forward(one, false, &logits).ok());
  return id;
}

TEST_F(SessionTest, InterleavedSessionsGiveTheSameTokensAsEachAlone) {
  const auto a = Prompt("Hello there"), b = Prompt("A different, longer prompt");
  auto alone = [&](const std::vector<int32_t>& p) {
    auto s = model_->NewSession({.max_context = 64});
    std::vector<float> logits;
    EXPECT_TRUE(s->Forward(p, false, &logits).ok());
    std::vector<int32_t> out;
    for (int i = 0; i < 12; ++i) out.push_back(Step(*s, logits));
    return out;
  };
  const auto want_a = alone(a), want_b = alone(b);
  ASSERT_EQ(want_a.size(), 12u);
  EXPECT_NE(want_a, want_b);

  auto sa = model_->NewSession({.max_context = 64}), sb = model_->NewSession({.max_context = 48});
  std::vector<float> la, lb;
  ASSERT_TRUE(sa->Forward(a, false, &la).ok());
  ASSERT_TRUE(sb->Forward(b, false, &lb).ok());
  std::vector<int32_t> got_a, got_b;
  for (int i = 0; i < 12; ++i) {
    got_a.push_back(Step(*sa, la));
    got_b.push_back(Step(*sb, lb));
  }
  EXPECT_EQ(got_a, want_a);
  EXPECT_EQ(got_b, want_b);
  EXPECT_EQ(sa->position(), static_cast<int64_t>(a.size()) + 12);
  EXPECT_EQ(sb->tokens().size(), b.size() + 12);
}

// Sessions on threads, sampling with their own seeds, give what they give
// alone; under a budget (streamed weights) their passes take turns.
TEST_F(SessionTest, ConcurrentSessionsOnThreadsMatchAloneMappedAndStreamed) {
  const std::vector<std::string> prompts = {"one", "two two", "three three three", "four"};
  GenerateParams p{.max_tokens = 10, .stop_at_eog = false};
  auto run = [&](size_t i) {
    auto s = model_->NewSession({.max_context = 48, .sampler = {.temperature = 0.9f, .seed = 100 + i}});
    return Gen(*s, Prompt(prompts[i]), p).tokens;
  };
  std::vector<std::vector<int32_t>> want;
  for (size_t i = 0; i < prompts.size(); ++i) want.push_back(run(i));
  for (uint64_t budget : {uint64_t{0}, model_->min_budget()}) {
    SCOPED_TRACE(budget);
    Load(budget);
    EXPECT_EQ(model_->concurrent_forward(), budget == 0);
    std::vector<std::vector<int32_t>> got(prompts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i) threads.emplace_back([&, i] { got[i] = run(i); });
    for (auto& t : threads) t.join();
    EXPECT_EQ(got, want);
  }
}

TEST_F(SessionTest, SameSeedSameOutputOtherSeedOther) {
  auto run = [&](uint64_t seed) {
    auto s = model_->NewSession({.sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0, .seed = seed}});
    return Gen(*s, Prompt("Once"), {.max_tokens = 20, .stop_at_eog = false}).tokens;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST_F(SessionTest, MaxTokensFinishesWithLengthAndCountsUsage) {
  auto s = model_->NewSession({.sampler = {.temperature = 0}});
  const auto prompt = Prompt("Hello");
  GenerateResult r = Gen(*s, prompt, {.max_tokens = 5, .stop_at_eog = false});
  EXPECT_EQ(r.finish_reason, FinishReason::kLength);
  EXPECT_EQ(r.tokens.size(), 5u);
  EXPECT_EQ(r.stats.prompt_tokens, static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(r.stats.generated_tokens, 5);
  EXPECT_EQ(r.stats.decode_passes, 4);
  // The context ends it too.
  auto small = model_->NewSession({.max_context = static_cast<int64_t>(prompt.size()) + 3, .sampler = {.temperature = 0}});
  GenerateResult c = Gen(*small, prompt, {.max_tokens = -1, .stop_at_eog = false});
  EXPECT_EQ(c.finish_reason, FinishReason::kLength);
  EXPECT_EQ(c.tokens.size(), 4u);  // the last one is sampled, never fed back
  EXPECT_EQ(FinishReasonName(FinishReason::kCancelled), "cancelled");
}

TEST_F(SessionTest, CancelStopsWithinOneStep) {
  const auto prompt = Prompt("Hello");
  // Cancelled from another thread while the callback of token 3 runs: no
  // further forward pass, no further token.
  CancelToken cancel;
  std::mutex mu;
  std::condition_variable cv;
  bool at_third = false;
  std::thread canceller([&] {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return at_third; });
    cancel.Cancel();
    cv.notify_all();
  });
  auto s = model_->NewSession({.sampler = {.temperature = 0}});
  int events = 0;
  auto r = Generate(*s, tok_.get(), prompt, {.max_tokens = 50, .stop_at_eog = false, .cancel = &cancel},
                    [&](const GenerateEvent& e) {
                      if (e.id < 0) return true;
                      if (++events == 3) {
                        std::unique_lock<std::mutex> l(mu);
                        at_third = true;
                        cv.notify_all();
                        cv.wait(l, [&] { return cancel.cancelled(); });
                      }
                      return true;
                    });
  canceller.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(r->tokens.size(), 3u);
  EXPECT_EQ(r->stats.decode_passes, 2);
  EXPECT_EQ(s->position(), static_cast<int64_t>(prompt.size()) + 2);

  // Already cancelled: not even the prefill runs.
  auto fresh = model_->NewSession();
  auto none = Generate(*fresh, tok_.get(), prompt, {.cancel = &cancel});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->finish_reason, FinishReason::kCancelled);
  EXPECT_TRUE(none->tokens.empty());
  EXPECT_EQ(fresh->position(), 0);

  // A callback returning false stops the same way.
  auto cb = model_->NewSession({.sampler = {.temperature = 0}});
  int n = 0;
  auto stopped = Generate(*cb, tok_.get(), prompt, {.max_tokens = 50, .stop_at_eog = false},
                          [&](const GenerateEvent&) { return ++n < 2; });
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(stopped->tokens.size(), 2u);
}

TEST_F(SessionTest, StopStringsAreNeitherReturnedNorStreamed) {
  const auto prompt = Prompt("Hello");
  auto s = model_->NewSession({.sampler = {.temperature = 0}});
  GenerateResult full = Gen(*s, prompt, {.max_tokens = 40, .stop_at_eog = false});
  ASSERT_GE(full.text.size(), 8u) << "the fixture should produce text";
  // A stop string from the middle of the greedy text.
  const std::string stop = full.text.substr(full.text.size() / 2, 2);
  const size_t at = full.text.find(stop);
  std::string streamed;
  GenerateResult r = Gen(*s, prompt, {.max_tokens = 40, .stop = {"never-there", stop}, .stop_at_eog = false}, &streamed);
  EXPECT_EQ(r.finish_reason, FinishReason::kStop);
  EXPECT_EQ(r.stop, stop);
  EXPECT_EQ(r.text, full.text.substr(0, at));
  EXPECT_EQ(streamed, r.text);
  EXPECT_LT(r.tokens.size(), full.tokens.size());

  // A stop string whose first bytes appear but which never completes: the
  // held-back bytes come out in the end, nothing is lost.
  std::string partial_stream;
  const std::string partial = full.text.substr(full.text.size() / 2, 1) + "\x01\x02\x03zz";
  GenerateResult p = Gen(*s, prompt, {.max_tokens = 40, .stop = {partial}, .stop_at_eog = false}, &partial_stream);
  EXPECT_EQ(p.finish_reason, FinishReason::kLength);
  EXPECT_EQ(p.text, full.text);
  EXPECT_EQ(partial_stream, full.text);
}

TEST_F(SessionTest, LogprobsAreTheLogSoftmaxOfTheRawLogits) {
  const auto prompt = Prompt("Hello");
  auto ref = model_->NewSession();
  std::vector<float> logits;
  ASSERT_TRUE(ref->Forward(prompt, false, &logits).ok());
  double mx = *std::max_element(logits.begin(), logits.end()), sum = 0;
  for (float l : logits) sum += std::exp(l - mx);
  const double lse = mx + std::log(sum);

  // Sampling transforms (temperature, top-k, a penalty) do not change them.
  auto s = model_->NewSession({.sampler = {.temperature = 0.7f, .top_k = 5, .repeat_penalty = 1.3f, .seed = 3}});
  std::vector<const StepLogprobs*> seen;
  auto r = Generate(*s, tok_.get(), prompt, {.max_tokens = 6, .stop_at_eog = false, .logprobs = 4},
                    [&](const GenerateEvent& e) {
                      if (e.id >= 0) seen.push_back(e.logprobs);
                      return true;
                    });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->logprobs.size(), 6u);
  ASSERT_EQ(seen.size(), 6u);
  const StepLogprobs& first = r->logprobs[0];
  EXPECT_EQ(first.chosen.id, r->tokens[0]);
  EXPECT_NEAR(first.chosen.logprob, logits[first.chosen.id] - lse, 1e-4);
  ASSERT_EQ(first.top.size(), 4u);
  const int32_t argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_EQ(first.top[0].id, argmax);
  EXPECT_NEAR(first.top[0].logprob, mx - lse, 1e-4);
  for (size_t i = 1; i < first.top.size(); ++i) EXPECT_GE(first.top[i - 1].logprob, first.top[i].logprob);
  for (const auto* e : seen) EXPECT_NE(e, nullptr);
  // Off by default.
  auto off = model_->NewSession();
  EXPECT_TRUE(Gen(*off, prompt, {.max_tokens = 2}).logprobs.empty());
}

TEST_F(SessionTest, CachedPrefixIsReusedAndGivesTheSameTokens) {
  const auto first = Prompt("The first turn of a chat");
  auto s = model_->NewSession({.sampler = {.temperature = 0}});
  GenerateResult r1 = Gen(*s, first, {.max_tokens = 4, .stop_at_eog = false});
  // The next prompt continues the cached sequence with new text.
  std::vector<int32_t> next = first;
  next.insert(next.end(), r1.tokens.begin(), r1.tokens.end());
  for (int32_t t : tok_->Encode(" and a second", false)) next.push_back(t);
  GenerateResult r2 = Gen(*s, next, {.max_tokens = 6, .stop_at_eog = false});
  // All but the last reply token (sampled, never fed back) were in the cache.
  EXPECT_EQ(r2.stats.cached_tokens, static_cast<int64_t>(first.size() + r1.tokens.size() - 1));
  EXPECT_EQ(r2.stats.prompt_tokens, static_cast<int64_t>(next.size()));
  auto fresh = model_->NewSession({.sampler = {.temperature = 0}});
  GenerateResult want = Gen(*fresh, next, {.max_tokens = 6, .stop_at_eog = false});
  EXPECT_EQ(want.stats.cached_tokens, 0);
  EXPECT_EQ(r2.tokens, want.tokens);
  // The same prompt again reuses all but its last token.
  GenerateResult r3 = Gen(*fresh, next, {.max_tokens = 1, .stop_at_eog = false});
  EXPECT_EQ(r3.stats.cached_tokens, static_cast<int64_t>(next.size()) - 1);
  EXPECT_EQ(r3.tokens.front(), want.tokens.front());
}

TEST_F(SessionTest, PromptErrorsAndTruncation) {
  auto s = model_->NewSession({.max_context = 8, .sampler = {.temperature = 0}});
  EXPECT_EQ(Generate(*s, tok_.get(), {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  const auto long_prompt = Prompt(std::string(20, 'x'));
  auto r = Generate(*s, tok_.get(), long_prompt, {.max_tokens = 2});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message().find("--"), std::string::npos) << "no CLI flags below the CLI";
  auto t = Generate(*s, tok_.get(), long_prompt, {.max_tokens = 2, .stop_at_eog = false, .truncate = true});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_GT(t->stats.truncated_tokens, 0);
  EXPECT_EQ(s->tokens().front(), tok_->bos_id());
  const int32_t bad[] = {1, 100000};
  std::vector<float> logits;
  EXPECT_EQ(model_->NewSession()->Forward(bad, false, &logits).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionTest, EmbeddingsPoolTheFinalHiddenStates) {
  const auto tokens = Prompt("embed this text please");
  auto s = model_->NewSession();
  std::vector<float> hidden;
  ASSERT_TRUE(s->ForwardHidden(tokens, &hidden).ok());
  const int64_t dim = model_->config().dim, n = static_cast<int64_t>(tokens.size());
  ASSERT_EQ(hidden.size(), static_cast<size_t>(n * dim));

  auto mean = Embed(*model_, tokens, {});
  ASSERT_TRUE(mean.ok()) << mean.status();
  ASSERT_EQ(mean->size(), static_cast<size_t>(dim));
  for (int64_t d = 0; d < dim; d += 37) {
    double want = 0;
    for (int64_t t = 0; t < n; ++t) want += hidden[t * dim + d];
    EXPECT_NEAR((*mean)[d], want / n, 1e-4) << d;
  }
  // Batching the pass does not change it; cls and last pick one row.
  auto batched = Embed(*model_, tokens, {.batch = 2});
  ASSERT_TRUE(batched.ok());
  for (int64_t d = 0; d < dim; ++d) ASSERT_NEAR((*batched)[d], (*mean)[d], 1e-3) << d;
  auto cls = Embed(*model_, tokens, {.pooling = Pooling::kCls});
  auto last = Embed(*model_, tokens, {.pooling = Pooling::kLast});
  ASSERT_TRUE(cls.ok() && last.ok());
  EXPECT_NEAR((*cls)[5], hidden[5], 1e-4);
  EXPECT_NEAR((*last)[5], hidden[(n - 1) * dim + 5], 1e-4);
  auto unit = Embed(*model_, tokens, {.normalize = true});
  ASSERT_TRUE(unit.ok());
  double ss = 0;
  for (float v : *unit) ss += v * v;
  EXPECT_NEAR(ss, 1.0, 1e-4);
  // Errors.
  EXPECT_EQ(Embed(*model_, {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<int32_t> too_long(200, 5);
  EXPECT_EQ(Embed(*model_, too_long, {}).status().code(), absl::StatusCode::kOutOfRange);
  CancelToken c;
  c.Cancel();
  EXPECT_EQ(Embed(*model_, tokens, {.cancel = &c}).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(PoolingFromName("cls").value(), Pooling::kCls);
  EXPECT_FALSE(PoolingFromName("max").ok());
}

}  // namespace
}  // namespace hart::runtime

// Weight streaming: output is bit-identical for every memory budget from
// unlimited down to one layer, and the resident weights respect the budget.
#include <cstring>

#include "gtest/gtest.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime_fixtures.h"

namespace hart::runtime {
namespace {

struct RunResult {
  std::vector<float> prefill_logits;
  std::vector<int32_t> tokens;
  StreamerStats stats;
  uint64_t min_budget = 0;
  uint64_t weight_bytes = 0;
};

RunResult RunModel(const std::string& gguf, uint64_t budget, bool drop_cache = false) {
  RunResult r;
  auto src = OpenFileWeights(gguf);
  EXPECT_TRUE(src.ok()) << src.status();
  if (!src.ok()) return r;
  ThreadPool pool(2);
  ModelOptions mo{.max_context = 64, .pool = &pool};
  mo.stream.budget = budget;
  mo.stream.drop_page_cache = drop_cache;
  auto model = Model::Load(src->get(), mo);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return r;
  Model& m = **model;
  std::vector<int32_t> prompt = {1, 72, 101, 108, 108, 111};
  EXPECT_TRUE(m.Forward(prompt, true, &r.prefill_logits).ok());
  m.Reset();
  Sampler greedy(SamplerOptions{.temperature = 0});
  auto st = GenerateFromTokens(m, nullptr, prompt, GenerateOptions{.n_predict = 16}, greedy,
                               [&](int32_t id, std::string_view) {
                                 r.tokens.push_back(id);
                                 return true;
                               });
  EXPECT_TRUE(st.ok()) << st.status();
  r.stats = m.streamer_stats();
  r.min_budget = m.min_budget();
  r.weight_bytes = m.weight_bytes_per_pass();
  return r;
}

TEST(Streaming, IdenticalOutputForEveryBudget) {
  const std::string dir = testing::MakeFixture("stream_q8", "--type q8_0 --layers 4");
  const std::string gguf = dir + "/model.gguf";
  RunResult full = RunModel(gguf, 0);
  ASSERT_EQ(full.tokens.size(), 16u);
  ASSERT_GT(full.min_budget, 0u);
  const uint64_t total = full.weight_bytes + (1 << 20);
  for (uint64_t budget : {total, total / 2, total / 4, full.min_budget + full.min_budget / 2, full.min_budget}) {
    SCOPED_TRACE(budget);
    RunResult r = RunModel(gguf, budget);
    ASSERT_EQ(r.prefill_logits.size(), full.prefill_logits.size());
    EXPECT_EQ(0, std::memcmp(r.prefill_logits.data(), full.prefill_logits.data(), r.prefill_logits.size() * 4));
    EXPECT_EQ(r.tokens, full.tokens);
    EXPECT_LE(r.stats.resident_bytes, budget);
    if (budget < full.weight_bytes) {
      EXPECT_GT(r.stats.streamed_groups, 0);
      EXPECT_GT(r.stats.bytes_read, full.weight_bytes);  // streamed groups are read every token
    }
    if (budget < full.weight_bytes) {
      // The budget is used up to less than one more group: whatever is
      // left would otherwise have pinned another group or held a slot.
      EXPECT_LT(budget - r.stats.resident_bytes, r.stats.slot_bytes);
      if (budget >= full.min_budget * 3) EXPECT_GE(r.stats.slots, 2);  // reads overlap compute
    }
    if (budget == full.min_budget) EXPECT_EQ(r.stats.slots, 1);
  }
}

TEST(Streaming, DroppingThePageCacheKeepsOutput) {
  const std::string dir = testing::MakeFixture("stream_q4k", "--type q4_k --layers 3");
  RunResult full = RunModel(dir + "/model.gguf", 0);
  RunResult cold = RunModel(dir + "/model.gguf", full.min_budget, /*drop_cache=*/true);
  EXPECT_EQ(cold.tokens, full.tokens);
}

TEST(Streaming, BudgetBelowOneLayerIsRefused) {
  const std::string dir = testing::MakeFixture("stream_small", "--type q8_0 --layers 2");
  auto src = OpenFileWeights(dir + "/model.gguf");
  ASSERT_TRUE(src.ok());
  ModelOptions mo;
  mo.stream.budget = 1000;
  auto model = Model::Load(src->get(), mo);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(model.status().message()).find("too small"), std::string::npos);
}

}  // namespace
}  // namespace hart::runtime

#include "runtime/sampler.h"

#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace hart::runtime {
namespace {

std::vector<float> Logits() { return {0.1f, 2.0f, 1.9f, -1.0f, 0.5f, 1.0f, 3.0f, 2.5f}; }

std::vector<int32_t> Draw(const SamplerOptions& o, int n) {
  Sampler s(o);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    auto l = Logits();
    out.push_back(s.Sample(l));
    s.Accept(out.back());
  }
  return out;
}

TEST(Sampler, GreedyTakesTheArgmaxAndLowestIdOnTies) {
  Sampler s(SamplerOptions{.temperature = 0});
  auto l = Logits();
  EXPECT_EQ(s.Sample(l), 6);
  std::vector<float> tie = {1.0f, 3.0f, 3.0f};
  EXPECT_EQ(s.Sample(tie), 1);
}

TEST(Sampler, SameSeedSameTokensOtherSeedOthers) {
  SamplerOptions o{.temperature = 1.5f, .top_k = 0, .top_p = 1.0f, .min_p = 0, .seed = 42};
  EXPECT_EQ(Draw(o, 50), Draw(o, 50));
  SamplerOptions o2 = o;
  o2.seed = 43;
  EXPECT_NE(Draw(o, 50), Draw(o2, 50));
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplerOptions o{.temperature = 5.0f, .top_k = 1, .top_p = 1.0f, .min_p = 0, .seed = 7};
  for (int32_t t : Draw(o, 30)) EXPECT_EQ(t, 6);
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  SamplerOptions o{.temperature = 10.0f, .top_k = 3, .top_p = 1.0f, .min_p = 0, .seed = 1};
  std::map<int32_t, int> seen;
  for (int32_t t : Draw(o, 300)) seen[t]++;
  for (const auto& [t, n] : seen) EXPECT_TRUE(t == 6 || t == 7 || t == 1) << t;
  EXPECT_EQ(seen.size(), 3u);  // at temperature 10 all three show up
}

TEST(Sampler, TopPCutsTheTail) {
  // Probabilities at T=1: token 6 holds ~0.39, 7 ~0.24, 1 ~0.14 ...; top-p 0.5 keeps 6 and 7.
  SamplerOptions o{.temperature = 1.0f, .top_k = 0, .top_p = 0.5f, .min_p = 0, .seed = 3};
  std::map<int32_t, int> seen;
  for (int32_t t : Draw(o, 300)) seen[t]++;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[6], 0);
  EXPECT_GT(seen[7], 0);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  // min-p 0.5: keep tokens with p >= 0.5 * p(6): exp(2.5-3)=0.61 keeps 7; exp(2-3)=0.37 drops 1.
  SamplerOptions o{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.5f, .seed = 5};
  std::map<int32_t, int> seen;
  for (int32_t t : Draw(o, 300)) seen[t]++;
  EXPECT_EQ(seen.size(), 2u);
}

TEST(Sampler, RepetitionPenaltyMovesGreedyAway) {
  Sampler s(SamplerOptions{.temperature = 0, .repeat_penalty = 2.0f});
  s.Accept(6);
  auto l = Logits();
  EXPECT_EQ(s.Sample(l), 7);  // 3.0 / 2 = 1.5 < 2.5
}

}  // namespace
}  // namespace hart::runtime

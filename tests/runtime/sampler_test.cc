#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <span>
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

TEST(Sampler, GreedyIsTheFirstMaximumAtAnyLengthAndPlace) {
  // Small integers make ties everywhere: in the eight-lane part, the tail,
  // both. Greedy must pick what std::max_element picks.
  std::mt19937_64 gen(3);
  Sampler s(SamplerOptions{.temperature = 0});
  for (int n : {1, 7, 8, 9, 63, 64, 1003, 128256})
    for (int round = 0; round < 20; ++round) {
      std::vector<float> l(n);
      for (float& x : l) x = static_cast<float>(gen() % 50) - 60.0f;
      l[gen() % n] = static_cast<float>(gen() % 3);  // a few maxima, anywhere
      l[gen() % n] = static_cast<float>(gen() % 3);
      if (round % 5 == 0) l[gen() % n] = -INFINITY;
      const int32_t want = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
      EXPECT_EQ(s.Sample(l), want) << "n " << n << " round " << round;
    }
}

TEST(Sampler, SortsOnlyTheHeadButPicksWhatTheFullSortPicks) {
  // A large vocabulary, logits of several spreads (flat ones make the walk
  // go deep, so the prefix has to widen), some banned (-inf, as a grammar
  // mask leaves them), every combination of the truncations.
  std::mt19937_64 gen(7);
  int checked = 0, differ = 0;
  for (float spread : {0.3f, 1.0f, 3.0f, 8.0f}) {
    std::normal_distribution<float> normal(0.0f, spread);
    std::vector<float> base(16000);
    for (float& x : base) x = normal(gen);
    for (size_t i = 0; i < base.size(); i += 7) base[i] = -INFINITY;
    for (float t : {0.5f, 1.0f, 2.0f})
      for (int k : {0, 40})
        for (float top_p : {1.0f, 0.9f})
          for (float min_p : {0.0f, 0.05f}) {
            SamplerOptions o{.temperature = t, .top_k = k, .top_p = top_p, .min_p = min_p, .seed = 11};
            Sampler s(o);
            std::mt19937_64 mirror(o.seed);  // the sampler's own stream
            for (int draw = 0; draw < 4; ++draw) {
              std::vector<float> l = base;
              const double u01 = static_cast<double>(mirror() >> 11) * 0x1.0p-53;
              const int32_t want = ReferenceSample(o, base, u01);
              const int32_t got = s.Sample(l);
              ++checked;
              if (got != want) ++differ;
              EXPECT_EQ(got, want) << "spread " << spread << " T " << t << " top_k " << k << " top_p "
                                   << top_p << " min_p " << min_p << " draw " << draw;
              EXPECT_TRUE(std::isfinite(base[got])) << "a banned token was drawn";
            }
          }
  }
  EXPECT_EQ(checked, 4 * 3 * 2 * 2 * 2 * 4);
  EXPECT_EQ(differ, 0);
}

}  // namespace
}  // namespace hart::runtime

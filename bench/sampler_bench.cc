// sampler_bench: the cost of one Sampler::Sample over a Llama-3-sized
// vocabulary, against the chain that sorts the whole vocabulary for every
// token (how the sampler worked before), measured in the same run.
//
//   sampler_bench [--vocab N] [--draws N]
//
// Logits are normal with a spread of 3 (a trained model's next-token logits
// are of that order). For OpenAI's defaults (temperature 1, nothing
// truncated), the CLI's (0.8, top-k 40, top-p 0.95, min-p 0.05) and top-p 0.9
// alone it prints one JSON line: microseconds per token of each, the
// speed-up, and whether both picked the same tokens.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/sampler.h"

using hart::runtime::Sampler;
using hart::runtime::SamplerOptions;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int vocab = 128256, draws = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--vocab")) vocab = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--draws")) draws = std::atoi(argv[i + 1]);
  }
  std::mt19937_64 gen(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<std::vector<float>> steps(16, std::vector<float>(vocab));
  for (auto& s : steps)
    for (float& x : s) x = normal(gen);
  struct Case {
    const char* name;
    SamplerOptions o;
  };
  const Case cases[] = {
      {"openai defaults (T 1, nothing truncated)", {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0}},
      {"cli defaults (T 0.8, top-k 40, top-p 0.95, min-p 0.05)", {}},
      {"top-p 0.9 (T 1)", {.temperature = 1.0f, .top_k = 0, .top_p = 0.9f, .min_p = 0}},
  };
  for (const Case& c : cases) {
    SamplerOptions o = c.o;
    o.seed = 5;
    Sampler s(o);
    std::vector<int32_t> got, want;
    std::vector<float> scratch;
    double t0 = Now();
    for (int d = 0; d < draws; ++d) {
      scratch = steps[d % steps.size()];
      got.push_back(s.Sample(scratch));
    }
    const double t_new = (Now() - t0) / draws;
    std::mt19937_64 mirror(o.seed);
    t0 = Now();
    for (int d = 0; d < draws; ++d) {
      scratch = steps[d % steps.size()];
      want.push_back(hart::runtime::ReferenceSample(o, scratch, static_cast<double>(mirror() >> 11) * 0x1.0p-53));
    }
    const double t_full = (Now() - t0) / draws;
    nlohmann::json j = {{"case", c.name},
                        {"vocab", vocab},
                        {"draws", draws},
                        {"us_per_token", std::round(t_new * 1e7) / 10},
                        {"full_sort_us_per_token", std::round(t_full * 1e7) / 10},
                        {"speedup", std::round(t_full / t_new * 10) / 10},
                        {"same_tokens", got == want}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

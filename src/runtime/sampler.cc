#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace hart::runtime {

Sampler::Sampler(const SamplerOptions& opts) : opts_(opts), rng_(opts.seed) {}

void Sampler::Reset() {
  rng_.seed(opts_.seed);
  recent_.clear();
}

void Sampler::Accept(int32_t token) {
  if (opts_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (recent_.size() > static_cast<size_t>(opts_.repeat_last_n)) recent_.pop_front();
}

int32_t Sampler::Sample(std::span<float> logits) {
  const int32_t n = static_cast<int32_t>(logits.size());
  if (n == 0) return -1;
  if (opts_.repeat_penalty != 1.0f) {
    std::vector<int32_t> seen(recent_.begin(), recent_.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= n) continue;
      float& l = logits[t];
      l = l > 0 ? l / opts_.repeat_penalty : l * opts_.repeat_penalty;
    }
  }
  if (opts_.temperature <= 0) {
    // max_element returns the first maximum: ties go to the lowest id.
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates sorted by logit, descending; ties by id so the order is total.
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t keep = ids.size();
  if (opts_.top_k > 0 && static_cast<size_t>(opts_.top_k) < keep) {
    keep = static_cast<size_t>(opts_.top_k);
    std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(), by_logit);
  } else {
    std::sort(ids.begin(), ids.end(), by_logit);
  }
  ids.resize(keep);
  const float mx = logits[ids[0]];
  std::vector<double> p(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += (p[i] = std::exp(static_cast<double>(logits[ids[i]] - mx)));
  if (opts_.top_p < 1.0f) {
    double cum = 0;
    size_t k = 0;
    while (k < keep) {
      cum += p[k] / sum;
      ++k;
      if (cum >= opts_.top_p) break;
    }
    keep = std::max<size_t>(k, 1);
  }
  if (opts_.min_p > 0) {
    // p[0] is the largest probability (its unnormalized weight is 1).
    size_t k = 1;
    while (k < keep && p[k] >= opts_.min_p * p[0]) ++k;
    keep = k;
  }
  std::vector<double> w(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i)
    total += (w[i] = std::exp(static_cast<double>(logits[ids[i]] - mx) / opts_.temperature));
  // 53 random bits -> [0, 1): identical on every platform, unlike std distributions.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += w[i];
    if (u < acc) return ids[i];
  }
  return ids[keep - 1];
}

}  // namespace hart::runtime

#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace hart::runtime {
namespace {

// The index of the first largest logit, as std::max_element gives it, in two
// passes the compiler keeps busy: eight independent running maxima (one
// max_element is a chain of dependent compares, ~0.25 ms over a 128k
// vocabulary, paid per sequence per step by greedy batched decoding), then
// the first index holding that value.
int32_t FirstMax(std::span<const float> x) {
  const size_t n = x.size();
  float m[8];
  for (float& v : m) v = -INFINITY;
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
  float best = -INFINITY;
  for (float v : m) best = v > best ? v : best;
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  for (size_t j = 0; j < n; ++j)
    if (x[j] == best) return static_cast<int32_t>(j);
  return 0;  // every logit NaN
}

}  // namespace

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
    // The first maximum: ties go to the lowest id.
    return FirstMax(logits);
  }
  // The chain works on candidates sorted by logit, descending, ties by id so
  // the order is total. Sorting a 128k vocabulary for every token cost
  // 20-30 ms (OpenAI's defaults truncate nothing, so the whole vocabulary was
  // sorted), more than a decode step of a 1B model. Only the head of the
  // order is ever walked, so only the head is sorted: one pass bins every
  // candidate by its distance below the best logit, with the probability
  // mass of each bin, and the head is the bins that hold the mass the
  // truncations and the draw need (plus a margin). The head is exactly the
  // start of the full order, so the tokens are the ones the full sort picks;
  // the one difference is that a sum over an untruncated vocabulary is taken
  // in id order, not sorted order (last-bit rounding).
  float mx = 0;  // the best logit: every weight is taken relative to it
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  auto p_of = [&](int32_t id) { return std::exp(static_cast<double>(logits[id] - mx)); };
  auto w_of = [&](int32_t id) { return std::exp(static_cast<double>(logits[id] - mx) / opts_.temperature); };
  // One draw per call: 53 random bits -> [0, 1), identical on every
  // platform, unlike std distributions.
  const double u01 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;

  std::vector<int32_t> ids;
  size_t keep;
  if (opts_.top_k > 0 && opts_.top_k < n) {
    // The k best (k is small), sorted whole.
    ids.resize(n);
    std::iota(ids.begin(), ids.end(), 0);
    keep = static_cast<size_t>(opts_.top_k);
    std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(), by_logit);
    ids.resize(keep);
    mx = logits[ids[0]];
  } else {
    mx = logits[FirstMax(logits)];
    // Bins of a quarter logit below the best; the last one takes the rest.
    constexpr int kBins = 257;
    constexpr double kPerLogit = 4.0;
    std::vector<uint16_t> bin(n);
    std::vector<double> mass(kBins, 0.0);
    // The truncations decide on unscaled probabilities; an untruncated draw
    // needs the tempered weights of every token.
    const bool truncating = opts_.top_p < 1.0f || opts_.min_p > 0;
    double total = 0;
    for (int32_t i = 0; i < n; ++i) {
      const double below = static_cast<double>(mx) - logits[i];
      const int b = below < (kBins - 1) / kPerLogit ? static_cast<int>(below * kPerLogit) : kBins - 1;
      bin[i] = static_cast<uint16_t>(b);
      const double m = truncating ? p_of(i) : w_of(i);
      mass[b] += m;
      total += m;
    }
    // The head must hold: the top-p share of the mass, every token min-p
    // keeps (and the first one it drops), or the draw's share.
    double want = 0;
    int min_bins = 1;
    if (opts_.top_p < 1.0f) want = opts_.top_p * total;
    else if (!truncating) want = u01 * total;
    if (opts_.min_p > 0) min_bins = static_cast<int>(-std::log(opts_.min_p) * kPerLogit) + 2;
    for (int last = 0;;) {
      double acc = 0;
      last = 0;
      while (last < kBins - 1 && (last + 1 < min_bins || acc <= want * (1 + 1e-9) + 1e-300)) acc += mass[last++];
      if (acc <= want * (1 + 1e-9)) last = kBins;  // not enough: everything
      ids.clear();
      for (int32_t i = 0; i < n; ++i)
        if (bin[i] < last) ids.push_back(i);
      std::sort(ids.begin(), ids.end(), by_logit);
      const bool whole = ids.size() == static_cast<size_t>(n);
      keep = n;
      bool known = true;
      std::vector<double> p(ids.size());
      if (truncating)
        for (size_t i = 0; i < ids.size(); ++i) p[i] = p_of(ids[i]);
      if (opts_.top_p < 1.0f) {
        double sum = 0;
        if (whole) for (double x : p) sum += x;
        else sum = total;
        double cum = 0;
        size_t k = 0;
        bool reached = false;
        while (k < ids.size()) {
          cum += p[k] / sum;
          ++k;
          if (cum >= opts_.top_p) {
            reached = true;
            break;
          }
        }
        if (reached || whole) keep = std::max<size_t>(k, 1);
        else known = false;
      }
      if (known && opts_.min_p > 0) {
        // p[0] is the largest probability (its unnormalized weight is 1).
        size_t k = 1;
        while (k < keep && k < ids.size() && p[k] >= opts_.min_p * p[0]) ++k;
        if (k < keep && k == ids.size() && !whole) known = false;
        else keep = k;
      }
      if (known && keep > ids.size()) {
        // Untruncated: the draw over every token, walked in order.
        const double u = u01 * total;
        double acc_w = 0;
        for (int32_t id : ids) {
          acc_w += w_of(id);
          if (u < acc_w) return id;
        }
        if (whole) return ids.back();
        known = false;
      }
      if (known) break;
      // The margin fell short (rounding at a bin edge): take every token.
      want = INFINITY;
    }
    ids.resize(keep);
  }
  std::vector<double> p(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += (p[i] = p_of(ids[i]));
  if (opts_.top_k > 0 && opts_.top_k < n) {
    // top-k's pool is sorted whole: the old chain's truncations on it.
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
      size_t k = 1;
      while (k < keep && p[k] >= opts_.min_p * p[0]) ++k;
      keep = k;
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += w_of(ids[i]);
  const double u = u01 * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += w_of(ids[i]);
    if (u < acc) return ids[i];
  }
  return ids[keep - 1];
}

int32_t ReferenceSample(const SamplerOptions& o, std::span<const float> logits, double u01) {
  const int32_t n = static_cast<int32_t>(logits.size());
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t keep = ids.size();
  if (o.top_k > 0 && static_cast<size_t>(o.top_k) < keep) {
    keep = o.top_k;
    std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(), by_logit);
  } else {
    std::sort(ids.begin(), ids.end(), by_logit);
  }
  ids.resize(keep);
  const float mx = logits[ids[0]];
  std::vector<double> p(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += (p[i] = std::exp(static_cast<double>(logits[ids[i]] - mx)));
  if (o.top_p < 1.0f) {
    double cum = 0;
    size_t k = 0;
    while (k < keep) {
      cum += p[k] / sum;
      ++k;
      if (cum >= o.top_p) break;
    }
    keep = std::max<size_t>(k, 1);
  }
  if (o.min_p > 0) {
    size_t k = 1;
    while (k < keep && p[k] >= o.min_p * p[0]) ++k;
    keep = k;
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += std::exp(static_cast<double>(logits[ids[i]] - mx) / o.temperature);
  const double u = u01 * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += std::exp(static_cast<double>(logits[ids[i]] - mx) / o.temperature);
    if (u < acc) return ids[i];
  }
  return ids[keep - 1];
}

}  // namespace hart::runtime

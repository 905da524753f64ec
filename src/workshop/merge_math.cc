#include "workshop/merge_math.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/thread_pool.h"

namespace hart::workshop {
namespace {

constexpr double kSlerpDotThreshold = 0.9995;
constexpr double kSlerpEps = 1e-8;

bool IsDare(MergeMethod m) { return m == MergeMethod::kDareLinear || m == MergeMethod::kDareTies; }
bool Consensus(MergeMethod m) { return m == MergeMethod::kTies || m == MergeMethod::kDareTies; }

inline uint32_t MagBits(float v) { return std::bit_cast<uint32_t>(v) & 0x7fffffffu; }

}  // namespace

bool DefaultNormalize(MergeMethod m) { return m == MergeMethod::kLinear || m == MergeMethod::kTies; }
bool DefaultRescale(MergeMethod m) { return IsDare(m); }

uint64_t SplitMix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t DareKey(uint64_t seed, std::string_view name, size_t input) {
  return SplitMix64(seed ^ SplitMix64(Fnv1a64(name) ^ static_cast<uint64_t>(input + 1)));
}

uint16_t F32ToBF16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

TensorMerger::TensorMerger(MergeSettings s, size_t n_inputs, uint64_t numel)
    : s_(std::move(s)), n_(n_inputs), numel_(numel) {
  s_.weight.resize(n_, 1.0);
  s_.density.resize(n_, 1.0);
  if (s_.method == MergeMethod::kTies) {
    ties_.resize(n_);
    for (size_t i = 0; i < n_; ++i) {
      Ties& t = ties_[i];
      if (i == s_.base || s_.density[i] >= 1) {
        t.all = true;
        continue;
      }
      t.k = static_cast<uint64_t>(s_.density[i] * static_cast<double>(numel_));
      if (t.k > 0) t.hist.assign(kParts << 16, 0);
    }
  }
  if (IsDare(s_.method)) {
    dare_key_.resize(n_);
    for (size_t i = 0; i < n_; ++i) dare_key_[i] = DareKey(s_.seed, s_.name, i);
  }
}

std::pair<size_t, size_t> TensorMerger::Part(size_t n, size_t k) {
  const size_t b = k == 0 ? 0 : (n * k / kParts) & ~size_t{255};
  const size_t e = k + 1 == kParts ? n : (n * (k + 1) / kParts) & ~size_t{255};
  return {std::min(b, n), std::min(std::max(b, e), n)};
}

int TensorMerger::observe_passes() const {
  if (s_.method == MergeMethod::kSlerp) return 1;
  if (s_.method == MergeMethod::kTies) return 2;
  return 0;
}

namespace {

// fn(k) for k in [0, n): on the pool when there is one, else in order.
void RunTasks(ThreadPool* pool, size_t n, const std::function<void(size_t)>& fn) {
  if (pool && pool->size() > 1) {
    pool->ParallelFor(n, fn);
  } else {
    for (size_t k = 0; k < n; ++k) fn(k);
  }
}

// The 65536-bin histograms of the parts, summed into the first.
void SumParts(std::vector<uint64_t>& hist) {
  for (size_t k = 1; k < TensorMerger::kParts; ++k)
    for (size_t bin = 0; bin < (1u << 16); ++bin) hist[bin] += hist[(k << 16) + bin];
}

}  // namespace

void TensorMerger::Observe(int pass, uint64_t offset, std::span<const float* const> in, size_t n,
                           ThreadPool* pool) {
  if (s_.method == MergeMethod::kSlerp) {
    // Each sum over the block in element order, as one task: the same
    // double additions in the same order whatever the pool.
    const float* v0 = in[s_.base];
    const float* v1 = in[1 - s_.base];
    double sums[3] = {0, 0, 0};
    RunTasks(pool, 3, [&](size_t j) {
      const float* x = j == 1 ? v1 : v0;
      const float* y = j == 0 ? v0 : v1;
      double acc = 0;
      for (size_t e = 0; e < n; ++e) acc += static_cast<double>(x[e]) * y[e];
      sums[j] = acc;
    });
    n0_ += sums[0];
    n1_ += sums[1];
    dot_ += sums[2];
    return;
  }
  if (s_.method != MergeMethod::kTies) return;
  const float* base = in[s_.base];
  RunTasks(pool, kParts, [&](size_t k) {
    const auto [b, e_end] = Part(n, k);
    for (size_t i = 0; i < n_; ++i) {
      Ties& t = ties_[i];
      if (t.all || t.k == 0) continue;
      const float* x = in[i];
      uint64_t* hist = t.hist.data() + (k << 16);
      if (pass == 0) {
        for (size_t e = b; e < e_end; ++e) ++hist[MagBits(x[e] - base[e]) >> 16];
      } else {
        for (size_t e = b; e < e_end; ++e) {
          const uint32_t m = MagBits(x[e] - base[e]);
          if ((m >> 16) == t.hi) ++hist[m & 0xffff];
        }
      }
    }
  });
  if (offset + n != numel_) return;
  // Last block: the high half (pass 0), then the low half (pass 1) of the
  // k-th largest magnitude.
  for (size_t i = 0; i < n_; ++i) {
    Ties& t = ties_[i];
    if (t.all || t.k == 0) continue;
    SumParts(t.hist);
    if (pass == 0) {
      uint64_t cum = 0;
      for (int64_t bin = (1 << 16) - 1; bin >= 0; --bin) {
        if (cum + t.hist[bin] >= t.k) {
          t.hi = static_cast<uint32_t>(bin);
          t.above = cum;
          break;
        }
        cum += t.hist[bin];
      }
      std::fill(t.hist.begin(), t.hist.end(), 0);
    } else {
      uint64_t cum = t.above;
      for (int64_t bin = (1 << 16) - 1; bin >= 0; --bin) {
        if (cum + t.hist[bin] >= t.k) {
          t.threshold = (t.hi << 16) | static_cast<uint32_t>(bin);
          t.equal_left = t.k - cum;
          break;
        }
        cum += t.hist[bin];
      }
      t.hist.clear();
      t.hist.shrink_to_fit();
    }
  }
}

void TensorMerger::Delta(size_t i, uint64_t offset, const float* x, const float* b, size_t n,
                         float* d, uint64_t* equal_left) const {
  for (size_t e = 0; e < n; ++e) d[e] = x[e] - b[e];
  if (s_.method == MergeMethod::kTies) {
    const Ties& t = ties_[i];
    if (t.all) return;
    if (t.k == 0) {
      std::fill(d, d + n, 0.0f);
      return;
    }
    for (size_t e = 0; e < n; ++e) {
      const uint32_t m = MagBits(d[e]);
      if (m > t.threshold) continue;
      if (m == t.threshold && *equal_left > 0) {
        --*equal_left;
        continue;
      }
      d[e] = 0.0f;
    }
  } else if (IsDare(s_.method) && s_.density[i] < 1) {
    const double p = s_.density[i];
    const float inv = static_cast<float>(p);
    for (size_t e = 0; e < n; ++e) {
      if (!DareKeep(dare_key_[i], offset + e, p)) d[e] = 0.0f;
      else if (s_.rescale) d[e] = d[e] / inv;
    }
  }
}

void TensorMerger::Compute(uint64_t offset, std::span<const float* const> in, size_t n,
                           float* out, ThreadPool* pool) {
  // Ties: how many elements equal to the threshold each part may keep, in
  // index order (the budget a serial pass would have left them).
  std::vector<uint64_t> budget(kParts * n_, 0);
  if (s_.method == MergeMethod::kTies) {
    for (size_t i = 0; i < n_; ++i) {
      Ties& t = ties_[i];
      if (t.all || t.k == 0 || t.equal_left == 0) continue;
      const float* x = in[i];
      const float* base = in[s_.base];
      std::array<uint64_t, kParts> count{};
      RunTasks(pool, kParts, [&](size_t k) {
        const auto [b, e_end] = Part(n, k);
        uint64_t c = 0;
        for (size_t e = b; e < e_end; ++e) c += MagBits(x[e] - base[e]) == t.threshold;
        count[k] = c;
      });
      for (size_t k = 0; k < kParts; ++k) {
        const uint64_t take = std::min(t.equal_left, count[k]);
        budget[k * n_ + i] = take;
        t.equal_left -= take;
      }
    }
  }
  const bool task = s_.method != MergeMethod::kPassthrough && s_.method != MergeMethod::kLinear &&
                    s_.method != MergeMethod::kSlerp;
  if (task) scratch_.resize(n_ * n);
  RunTasks(pool, kParts, [&](size_t k) {
    const auto [b, e_end] = Part(n, k);
    if (e_end == b) return;
    std::vector<const float*> part_in(n_);
    for (size_t i = 0; i < n_; ++i) part_in[i] = in[i] + b;
    ComputePart(offset + b, part_in, e_end - b, task ? scratch_.data() + b : nullptr, n, out + b,
                budget.data() + k * n_);
  });
}

void TensorMerger::ComputeRange(uint64_t offset, std::span<const float* const> in, size_t n,
                                float* out) const {
  const bool task = s_.method != MergeMethod::kPassthrough && s_.method != MergeMethod::kLinear &&
                    s_.method != MergeMethod::kSlerp;
  std::vector<float> scratch(task ? n_ * n : 0);
  std::vector<uint64_t> no_budget(n_, 0);
  ComputePart(offset, in, n, scratch.data(), n, out, no_budget.data());
}

void TensorMerger::ComputePart(uint64_t offset, std::span<const float* const> in, size_t n,
                               float* scratch, size_t stride, float* out,
                               uint64_t* equal_left) const {
  switch (s_.method) {
    case MergeMethod::kPassthrough:
      std::memcpy(out, in[0], n * sizeof(float));
      return;
    case MergeMethod::kLinear: {
      double wsum = 0;
      for (size_t i = 0; i < n_; ++i) wsum += s_.weight[i];
      std::fill(out, out + n, 0.0f);
      for (size_t i = 0; i < n_; ++i) {
        const float w = static_cast<float>(s_.weight[i]);
        for (size_t e = 0; e < n; ++e) out[e] += w * in[i][e];
      }
      if (s_.normalize) {
        const float div = static_cast<float>(wsum);
        for (size_t e = 0; e < n; ++e) out[e] /= div;
      }
      return;
    }
    case MergeMethod::kSlerp: {
      const float* v0 = in[s_.base];
      const float* v1 = in[1 - s_.base];
      const double na = std::sqrt(n0_), nb = std::sqrt(n1_);
      double dot = dot_;
      if (na > kSlerpEps) dot /= na;
      if (nb > kSlerpEps) dot /= nb;
      double c0, c1;
      if (std::abs(dot) > kSlerpDotThreshold) {
        c0 = 1 - s_.t;
        c1 = s_.t;
      } else {
        const double theta0 = std::acos(dot);
        const double sin0 = std::sin(theta0);
        const double theta_t = theta0 * s_.t;
        c0 = std::sin(theta0 - theta_t) / sin0;
        c1 = std::sin(theta_t) / sin0;
      }
      for (size_t e = 0; e < n; ++e)
        out[e] = static_cast<float>(c0 * static_cast<double>(v0[e]) + c1 * static_cast<double>(v1[e]));
      return;
    }
    default:
      break;
  }
  // Task-vector methods.
  const float* base = in[s_.base];
  for (size_t i = 0; i < n_; ++i) {
    if (i == s_.base) continue;
    float* d = scratch + i * stride;
    Delta(i, offset, in[i], base, n, d, equal_left + i);
    const float w = static_cast<float>(s_.weight[i]);
    for (size_t e = 0; e < n; ++e) d[e] *= w;  // weighted delta
  }
  const bool consensus = Consensus(s_.method);
  float wsum = 0;
  for (size_t i = 0; i < n_; ++i)
    if (i != s_.base) wsum += static_cast<float>(s_.weight[i]);
  if (std::abs(wsum) < 1e-8f) wsum = 1;
  const float lambda = static_cast<float>(s_.lambda);
  for (size_t e = 0; e < n; ++e) {
    float mixed = 0;
    float div = wsum;
    if (consensus) {
      float sum = 0;
      for (size_t i = 0; i < n_; ++i)
        if (i != s_.base) sum += scratch[i * stride + e];
      const bool positive = sum >= 0;
      div = 0;
      for (size_t i = 0; i < n_; ++i) {
        if (i == s_.base) continue;
        const float wd = scratch[i * stride + e];
        if ((positive && wd > 0) || (!positive && wd < 0)) {
          mixed += wd;
          div += static_cast<float>(s_.weight[i]);
        }
      }
      if (div == 0) div = 1;
    } else {
      for (size_t i = 0; i < n_; ++i)
        if (i != s_.base) mixed += scratch[i * stride + e];
    }
    if (s_.normalize) mixed /= div;
    out[e] = base[e] + mixed * lambda;
  }
}

}  // namespace hart::workshop

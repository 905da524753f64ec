#include "workshop/merge_math.h"

#include <bit>
#include <cmath>
#include <cstring>

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
      t.hist.assign(1 << 16, 0);
    }
  }
  if (IsDare(s_.method)) {
    dare_key_.resize(n_);
    for (size_t i = 0; i < n_; ++i) dare_key_[i] = DareKey(s_.seed, s_.name, i);
  }
}

int TensorMerger::observe_passes() const {
  if (s_.method == MergeMethod::kSlerp) return 1;
  if (s_.method == MergeMethod::kTies) return 2;
  return 0;
}

void TensorMerger::Observe(int pass, uint64_t offset, std::span<const float* const> in, size_t n) {
  if (s_.method == MergeMethod::kSlerp) {
    const float* v0 = in[s_.base];
    const float* v1 = in[1 - s_.base];
    double a = 0, b = 0, d = 0;
    for (size_t e = 0; e < n; ++e) {
      a += static_cast<double>(v0[e]) * v0[e];
      b += static_cast<double>(v1[e]) * v1[e];
      d += static_cast<double>(v0[e]) * v1[e];
    }
    n0_ += a;
    n1_ += b;
    dot_ += d;
    return;
  }
  if (s_.method != MergeMethod::kTies) return;
  const float* base = in[s_.base];
  for (size_t i = 0; i < n_; ++i) {
    Ties& t = ties_[i];
    if (t.all || t.k == 0) continue;
    const float* x = in[i];
    if (pass == 0) {
      for (size_t e = 0; e < n; ++e) ++t.hist[MagBits(x[e] - base[e]) >> 16];
      if (offset + n == numel_) {  // last block: find the high half of the k-th magnitude
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
      }
    } else {
      for (size_t e = 0; e < n; ++e) {
        const uint32_t m = MagBits(x[e] - base[e]);
        if ((m >> 16) == t.hi) ++t.hist[m & 0xffff];
      }
      if (offset + n == numel_) {
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
}

void TensorMerger::Delta(size_t i, uint64_t offset, const float* x, const float* b, size_t n,
                         float* d) {
  for (size_t e = 0; e < n; ++e) d[e] = x[e] - b[e];
  if (s_.method == MergeMethod::kTies) {
    Ties& t = ties_[i];
    if (t.all) return;
    if (t.k == 0) {
      std::fill(d, d + n, 0.0f);
      return;
    }
    for (size_t e = 0; e < n; ++e) {
      const uint32_t m = MagBits(d[e]);
      if (m > t.threshold) continue;
      if (m == t.threshold && t.equal_left > 0) {
        --t.equal_left;
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
                           float* out) {
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
  scratch_.resize(n_ * n);
  for (size_t i = 0; i < n_; ++i) {
    if (i == s_.base) continue;
    float* d = scratch_.data() + i * n;
    Delta(i, offset, in[i], base, n, d);
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
        if (i != s_.base) sum += scratch_[i * n + e];
      const bool positive = sum >= 0;
      div = 0;
      for (size_t i = 0; i < n_; ++i) {
        if (i == s_.base) continue;
        const float wd = scratch_[i * n + e];
        if ((positive && wd > 0) || (!positive && wd < 0)) {
          mixed += wd;
          div += static_cast<float>(s_.weight[i]);
        }
      }
      if (div == 0) div = 1;
    } else {
      for (size_t i = 0; i < n_; ++i)
        if (i != s_.base) mixed += scratch_[i * n + e];
    }
    if (s_.normalize) mixed /= div;
    out[e] = base[e] + mixed * lambda;
  }
}

}  // namespace hart::workshop

// Summary statistics of a stream of float values, fed block by block so a
// tensor is never materialized whole. Min, max, mean, std and L2 cover the
// finite values only; NaN and Inf are counted apart. Per-block two-pass
// mean/M2 merged with Chan's formula keeps std accurate on large tensors.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace hart::query {

class StatsAccumulator {
 public:
  // Blocks of up to a few thousand values, hot in cache, work best.
  void Add(std::span<const float> values);
  // {"min","max","mean","std","l2","abs_max","zero_fraction","nan_count",
  //  "inf_count","count","dtype"}; min..abs_max null when nothing is finite.
  std::string ToJson(std::string_view dtype) const;

  uint64_t count() const { return count_; }

 private:
  void Merge(uint64_t n, double mean, double m2, float mn, float mx);
  uint64_t count_ = 0;   // all values
  uint64_t finite_ = 0;
  uint64_t zeros_ = 0;
  uint64_t nan_ = 0;
  uint64_t inf_ = 0;
  double mean_ = 0;      // of finite values
  double m2_ = 0;        // sum of squared deviations from mean_
  float min_ = 0, max_ = 0;
};

}  // namespace hart::query

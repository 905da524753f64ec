// Metrics: the server's counters, gauges and histograms, rendered in the
// Prometheus text exposition format (version 0.0.4) for GET /metrics.
// Thread-safe; the hot path (one request) takes one short lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace hart::serve {

// The prompt (prefix) cache's counters, summed over models.
struct PromptCacheCounts {
  uint64_t hits = 0, misses = 0, evicted = 0, hit_tokens = 0, bytes = 0, entries = 0;
};

class Metrics {
 public:
  Metrics();
  // One finished HTTP request: route template ("unmatched" when none), method, status.
  void ObserveRequest(const std::string& route, const std::string& method, int status, double seconds);
  void AddTokensGenerated(uint64_t n) { tokens_generated_ += n; }
  void AddPromptTokens(uint64_t n) { prompt_tokens_ += n; }
  void AddWeightBytesRead(uint64_t n) { weight_bytes_read_ += n; }
  void AddRejected() { generations_rejected_++; }
  std::atomic<int64_t>& sessions_in_flight() { return sessions_in_flight_; }
  std::atomic<int64_t>& queue_depth() { return queue_depth_; }
  std::atomic<int64_t>& connections_open() { return connections_open_; }
  // Read at scrape time (the model registry's resident bytes).
  void SetResidentBytesFn(std::function<uint64_t()> fn);
  // The model registry's budget and counts, read at scrape time.
  struct ModelGauges {
    uint64_t budget = 0, saved = 0, loads = 0, evictions = 0, streamed_loads = 0, loaded = 0;
    uint64_t tokenizer_bytes = 0, tokenizer_saved = 0;  // each shared tokenizer once; what sharing saves
    struct PerModel {
      std::string ref;
      uint64_t resident = 0, shared = 0;
      uint64_t tokenizer = 0;  // its tokenizer's bytes, shared or not
    };
    std::vector<PerModel> per_model;
  };
  void SetModelsFn(std::function<ModelGauges()> fn);
  void SetPromptCacheFn(std::function<PromptCacheCounts()> fn) { prompt_cache_fn_ = std::move(fn); }

  std::string Render() const;

 private:
  struct Hist {
    std::vector<uint64_t> buckets;  // cumulative at render time; stored per bucket
    uint64_t count = 0;
    double sum = 0;
  };
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, Hist> requests_;  // route, method, code
  std::function<uint64_t()> resident_fn_;
  std::function<ModelGauges()> models_fn_;
  std::function<PromptCacheCounts()> prompt_cache_fn_;
  std::atomic<uint64_t> tokens_generated_{0}, prompt_tokens_{0}, weight_bytes_read_{0},
      generations_rejected_{0};
  std::atomic<int64_t> sessions_in_flight_{0}, queue_depth_{0}, connections_open_{0};
};

}  // namespace hart::serve

#include "serve/metrics.h"

#include "absl/strings/str_format.h"

namespace hart::serve {

Metrics::Metrics() : bounds_{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60} {}

void Metrics::ObserveRequest(const std::string& route, const std::string& method, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  Hist& h = requests_[{route, method, std::to_string(status)}];
  if (h.buckets.empty()) h.buckets.assign(bounds_.size(), 0);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (seconds <= bounds_[i]) {
      h.buckets[i]++;
      break;
    }
  }
  h.count++;
  h.sum += seconds;
}

void Metrics::SetResidentBytesFn(std::function<uint64_t()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  resident_fn_ = std::move(fn);
}

void Metrics::SetModelsFn(std::function<ModelGauges()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  models_fn_ = std::move(fn);
}

namespace {
// Label values escape backslash, double quote and newline.
std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}
std::string Num(double v) { return absl::StrFormat("%.17g", v); }
}  // namespace

std::string Metrics::Render() const {
  std::string o;
  std::lock_guard<std::mutex> lock(mu_);
  o += "# HELP hart_http_requests_total HTTP requests answered, by route template, method and status.\n";
  o += "# TYPE hart_http_requests_total counter\n";
  for (const auto& [k, h] : requests_) {
    auto& [route, method, code] = k;
    o += absl::StrFormat("hart_http_requests_total{route=\"%s\",method=\"%s\",code=\"%s\"} %d\n", Esc(route),
                         method, code, h.count);
  }
  o += "# HELP hart_http_request_duration_seconds Time from the request's arrival to its last byte written.\n";
  o += "# TYPE hart_http_request_duration_seconds histogram\n";
  for (const auto& [k, h] : requests_) {
    auto& [route, method, code] = k;
    std::string labels = absl::StrFormat("route=\"%s\",method=\"%s\",code=\"%s\"", Esc(route), method, code);
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cum += h.buckets[i];
      o += absl::StrFormat("hart_http_request_duration_seconds_bucket{%s,le=\"%s\"} %d\n", labels, Num(bounds_[i]),
                           cum);
    }
    o += absl::StrFormat("hart_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", labels, h.count);
    o += absl::StrFormat("hart_http_request_duration_seconds_sum{%s} %s\n", labels, Num(h.sum));
    o += absl::StrFormat("hart_http_request_duration_seconds_count{%s} %d\n", labels, h.count);
  }
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    o += absl::StrFormat("# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v);
  };
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    o += absl::StrFormat("# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v);
  };
  counter("hart_tokens_generated_total", "Tokens generated (completion tokens) over all sessions.",
          tokens_generated_.load());
  counter("hart_prompt_tokens_total", "Prompt tokens processed over all sessions.", prompt_tokens_.load());
  counter("hart_weight_bytes_read_total", "Weight bytes read from the store by generation.",
          weight_bytes_read_.load());
  counter("hart_generations_rejected_total", "Generations refused with 429 because the queue was full.",
          generations_rejected_.load());
  gauge("hart_sessions_in_flight", "Generation sessions running now.", sessions_in_flight_.load());
  gauge("hart_generation_queue_depth", "Generations waiting for a free slot.", queue_depth_.load());
  gauge("hart_http_connections_open", "Client connections open now (idle keep-alive included).",
        connections_open_.load());
  gauge("hart_resident_weight_bytes", "Bytes of model weights resident in memory.",
        resident_fn_ ? static_cast<int64_t>(resident_fn_()) : 0);
  if (models_fn_) {
    const ModelGauges g = models_fn_();
    gauge("hart_weight_budget_bytes", "The --mem-budget for all loaded models' resident weights (0: none).",
          static_cast<int64_t>(g.budget));
    gauge("hart_weight_shared_saved_bytes",
          "Resident bytes that sharing tensors between loaded models saves (the models' bytes summed, less the resident total).",
          static_cast<int64_t>(g.saved));
    gauge("hart_models_loaded", "Models loaded now.", static_cast<int64_t>(g.loaded));
    counter("hart_model_loads_total", "Model loads since start.", g.loads);
    counter("hart_model_evictions_total", "Idle models evicted to keep resident weights under the budget.",
            g.evictions);
    counter("hart_model_streamed_loads_total", "Model loads larger than the free budget, served streamed.",
            g.streamed_loads);
    o += "# HELP hart_model_resident_bytes Resident weight bytes of one loaded model (shared tensors included).\n";
    o += "# TYPE hart_model_resident_bytes gauge\n";
    for (const auto& m : g.per_model)
      o += absl::StrFormat("hart_model_resident_bytes{model=\"%s\"} %d\n", Esc(m.ref), m.resident);
    o += "# HELP hart_model_shared_bytes Of a model's resident bytes, those another loaded model holds too.\n";
    o += "# TYPE hart_model_shared_bytes gauge\n";
    for (const auto& m : g.per_model)
      o += absl::StrFormat("hart_model_shared_bytes{model=\"%s\"} %d\n", Esc(m.ref), m.shared);
    gauge("hart_tokenizer_bytes", "Bytes of the loaded models' tokenizers, each tokenizer shared by models once.",
          static_cast<int64_t>(g.tokenizer_bytes));
    gauge("hart_tokenizer_shared_saved_bytes",
          "Tokenizer bytes that sharing tokenizers between loaded models saves (the models' summed, less the total).",
          static_cast<int64_t>(g.tokenizer_saved));
    o += "# HELP hart_model_tokenizer_bytes Bytes of one loaded model's tokenizer (shared ones included).\n";
    o += "# TYPE hart_model_tokenizer_bytes gauge\n";
    for (const auto& m : g.per_model)
      o += absl::StrFormat("hart_model_tokenizer_bytes{model=\"%s\"} %d\n", Esc(m.ref), m.tokenizer);
  }
  const PromptCacheCounts pc = prompt_cache_fn_ ? prompt_cache_fn_() : PromptCacheCounts{};
  counter("hart_prompt_cache_hits_total", "Generations whose prompt prefix came from the prompt cache.", pc.hits);
  counter("hart_prompt_cache_misses_total", "Generations that found no cached prompt prefix.", pc.misses);
  counter("hart_prompt_cache_evicted_total", "Prompt cache entries evicted (least recently used first).",
          pc.evicted);
  counter("hart_prompt_cache_hit_tokens_total", "Prompt tokens served from the prompt cache.", pc.hit_tokens);
  gauge("hart_prompt_cache_bytes", "Bytes of K/V held by the prompt cache.", static_cast<int64_t>(pc.bytes));
  gauge("hart_prompt_cache_entries", "Prompt prefixes held by the prompt cache.", static_cast<int64_t>(pc.entries));
  return o;
}

}  // namespace hart::serve

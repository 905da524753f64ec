#include "runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "core/memory_usage.h"
#include "core/status.h"

namespace hart::runtime {
namespace {

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Log-softmax of the raw logits: the chosen token's and the n most likely.
StepLogprobs Logprobs(std::span<const float> logits, int32_t chosen, int n) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
  const double lse = mx + std::log(sum);
  auto lp = [&](int32_t id) { return static_cast<float>(logits[id] - lse); };
  StepLogprobs out;
  out.chosen = {chosen, lp(chosen)};
  if (n > 0) {
    const size_t k = std::min<size_t>(static_cast<size_t>(n), logits.size());
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (size_t i = 0; i < k; ++i) out.top.push_back({ids[i], lp(ids[i])});
  }
  return out;
}

}  // namespace

// Holds back text that may be the start of a stop string.
class StopFilter {
 public:
  explicit StopFilter(const std::vector<std::string>& stops) {
    for (const auto& s : stops)
      if (!s.empty()) stops_.push_back(s);
  }
  // Adds text; returns what can be released. Sets matched() when a stop
  // string completed (the text from it on is dropped).
  std::string Push(std::string_view text) {
    held_ += text;
    size_t best = std::string::npos;
    for (const auto& s : stops_) {
      const size_t at = held_.find(s);
      if (at != std::string::npos && at < best) best = at, matched_ = s;
    }
    std::string out;
    if (best != std::string::npos) {
      out = held_.substr(0, best);
      held_.clear();
      return out;
    }
    // The longest suffix of held_ that is a proper prefix of a stop string.
    size_t keep = 0;
    for (const auto& s : stops_)
      for (size_t len = std::min(s.size() - 1, held_.size()); len > keep; --len)
        if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
          keep = len;
          break;
        }
    out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string Flush() { return std::exchange(held_, {}); }
  const std::optional<std::string>& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::optional<std::string> matched_;
};


std::string_view FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "?";
}

std::string_view PoolingName(Pooling p) {
  switch (p) {
    case Pooling::kMean: return "mean";
    case Pooling::kCls: return "cls";
    case Pooling::kLast: return "last";
  }
  return "?";
}

absl::StatusOr<Pooling> PoolingFromName(std::string_view name) {
  for (Pooling p : {Pooling::kMean, Pooling::kCls, Pooling::kLast})
    if (PoolingName(p) == name) return p;
  return absl::InvalidArgumentError(fmt::format("pooling '{}': expected mean, cls or last", name));
}

Sequence::Sequence(Session& s, const Tokenizer* tok, const GenerateParams& p, const GenerateFn& fn)
    : session_(s), tok_(tok), params_(p), on_event_(fn) {}
Sequence::~Sequence() = default;

absl::StatusOr<std::unique_ptr<Sequence>> Sequence::Start(Session& session, const Tokenizer* tok,
                                                          std::span<const int32_t> prompt_in,
                                                          const GenerateParams& params, const GenerateFn& on_event) {
  if (prompt_in.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  std::unique_ptr<Sequence> q(new Sequence(session, tok, params, on_event));
  GenerateStats& st = q->r_.stats;
  std::vector<int32_t>& prompt = q->prompt_;
  prompt.assign(prompt_in.begin(), prompt_in.end());
  const int64_t room = session.max_context();
  if (static_cast<int64_t>(prompt.size()) > room) {
    if (!params.truncate)
      return absl::OutOfRangeError(fmt::format(
          "the prompt has {} tokens but the context holds {}; truncating would drop the oldest tokens",
          prompt.size(), room));
    // Keep the newest tokens, leaving room for part of the answer; keep a
    // leading BOS, which the model expects first.
    const int64_t want = params.max_tokens >= 0 ? params.max_tokens : room / 2;
    const int64_t keep = std::max<int64_t>(1, room - std::min<int64_t>(want, room / 2));
    const bool bos = tok && tok->bos_id() >= 0 && prompt[0] == tok->bos_id() && keep > 1;
    st.truncated_tokens = static_cast<int64_t>(prompt.size()) - keep;
    std::vector<int32_t> kept;
    if (bos) kept.push_back(prompt[0]);
    kept.insert(kept.end(), prompt.end() - (keep - (bos ? 1 : 0)), prompt.end());
    prompt = std::move(kept);
  }
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  // Reuse the longest prefix the cache holds; at least one token must run
  // to get logits.
  const auto& cached = session.tokens();
  size_t p = 0;
  while (p < cached.size() && p < prompt.size() && cached[p] == prompt[p]) ++p;
  if (p == prompt.size()) --p;
  session.Truncate(static_cast<int64_t>(p));
  st.cached_tokens = static_cast<int64_t>(p);
  st.kv_cache_bytes = session.kv_cache_bytes();
  for (size_t i = p; i < prompt.size(); ++i) session.sampler().Accept(prompt[i]);
  q->next_ = p;
  q->max_tokens_ = params.max_tokens >= 0 ? params.max_tokens : std::numeric_limits<int64_t>::max();
  // The generated text continues the prompt: no SentencePiece space is
  // dropped from its first token unless the prompt ends in a special token.
  if (tok) q->decoder_ = std::make_unique<StreamDecoder>(*tok, false, prompt);
  q->stops_ = std::make_unique<StopFilter>(tok ? params.stop : std::vector<std::string>{});
  q->t0_ = std::chrono::steady_clock::now();
  return q;
}

void Sequence::End(FinishReason why) {
  GenerateStats& st = r_.stats;
  if (decoding_) st.decode_seconds = Since(t0_);
  if (why != FinishReason::kCancelled && !stops_->matched()) {
    std::string rest = stops_->Push(decoder_ ? decoder_->Flush() : std::string());
    if (stops_->matched()) {
      r_.stop = *stops_->matched();
      why = FinishReason::kStop;
    } else {
      rest += stops_->Flush();
    }
    r_.text += rest;
    if (!rest.empty() && on_event_) on_event_(GenerateEvent{-1, rest, nullptr});
  }
  if (st.decode_passes > 0)
    st.streamed_bytes_per_token = (session_.model().streamer_stats().bytes_read - read_before_) / st.decode_passes;
  r_.finish_reason = why;
  done_ = true;
}

std::span<const int32_t> Sequence::Next(int64_t max_prefill) {
  piece_ = 0;
  if (done_) return {};
  if (Cancelled(params_.cancel)) {
    End(FinishReason::kCancelled);
    return {};
  }
  if (decoding_) {
    piece_ = 1;
    return pending_;
  }
  piece_ = std::min(static_cast<size_t>(std::max<int64_t>(1, max_prefill)), prompt_.size() - next_);
  return std::span<const int32_t>(prompt_.data() + next_, piece_);
}

bool Sequence::wants_logits() const { return decoding_ || next_ + piece_ == prompt_.size(); }

absl::Status Sequence::Fed(std::span<const float> logits_in) {
  GenerateStats& st = r_.stats;
  if (!decoding_) {
    next_ += piece_;
    if (next_ < prompt_.size()) return absl::OkStatus();
    // The prompt is in: its last logits give the first token.
    st.prefill_seconds = Since(t0_);
    decoding_ = true;
    read_before_ = session_.model().streamer_stats().bytes_read;
    t0_ = std::chrono::steady_clock::now();
    if (max_tokens_ == 0) {
      End(FinishReason::kLength);
      return absl::OkStatus();
    }
  } else {
    ++st.decode_passes;
  }
  std::vector<float> logits(logits_in.begin(), logits_in.end());
  auto fail = [&](absl::Status s) {
    done_ = true;
    return s;
  };
  Sampler& sampler = session_.sampler();
  std::optional<StepLogprobs> lp;
  for (LogitsProcessor* proc : params_.processors)
    if (absl::Status s = proc->Apply(logits); !s.ok()) return fail(s);
  const int32_t id = sampler.Sample(logits);
  if (params_.logprobs >= 0) lp = Logprobs(logits_in, id, params_.logprobs);
  sampler.Accept(id);
  bool processor_done = false;
  for (LogitsProcessor* proc : params_.processors) {
    if (absl::Status s = proc->Accept(id); !s.ok()) return fail(s);
    processor_done = processor_done || proc->Finished();
  }
  ++st.generated_tokens;
  r_.tokens.push_back(id);
  if (lp) r_.logprobs.push_back(*lp);
  const bool eog = params_.stop_at_eog && tok_ && tok_->IsEog(id);
  std::string text = stops_->Push((decoder_ && !eog) ? decoder_->Push(id) : std::string());
  r_.text += text;
  if (on_event_ && !on_event_(GenerateEvent{id, text, lp ? &*lp : nullptr})) {
    End(FinishReason::kCancelled);
  } else if (eog || stops_->matched() || processor_done) {
    if (stops_->matched()) r_.stop = *stops_->matched();
    End(FinishReason::kStop);
  } else if (static_cast<int64_t>(r_.tokens.size()) >= max_tokens_ ||
             session_.position() >= session_.max_context()) {
    End(FinishReason::kLength);
  }
  pending_[0] = id;
  return absl::OkStatus();
}

GenerateResult Sequence::Finish() {
  r_.stats.streamer = session_.model().streamer_stats();
  r_.stats.weight_bytes_per_token = session_.model().weight_bytes_per_pass();
  r_.stats.peak_rss_bytes = hart::PeakRssBytes();
  return std::move(r_);
}

absl::StatusOr<GenerateResult> Generate(Session& session, const Tokenizer* tok,
                                        std::span<const int32_t> prompt, const GenerateParams& params,
                                        const GenerateFn& on_event) {
  ASSIGN_OR_RETURN(auto seq, Sequence::Start(session, tok, prompt, params, on_event));
  std::vector<float> logits;
  while (!seq->done()) {
    std::span<const int32_t> piece = seq->Next(params.prefill_batch);
    if (seq->done()) break;
    RETURN_IF_ERROR(session.Forward(piece, /*all_logits=*/false, &logits));
    RETURN_IF_ERROR(seq->Fed(logits));
  }
  return seq->Finish();
}

absl::StatusOr<GenerateStats> GenerateFromTokens(Model& model, const Tokenizer* tok,
                                                 std::vector<int32_t> prompt,
                                                 const GenerateOptions& opts, Sampler& sampler,
                                                 const TokenFn& on_token) {
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  Session& s = model.default_session();
  // Room is what is left after the cached tokens, as before sessions.
  const int64_t room = s.max_context() - s.position();
  if (static_cast<int64_t>(prompt.size()) > room && !opts.truncate)
    return absl::OutOfRangeError(fmt::format(
        "the prompt has {} tokens but the context holds {} more (context length {}); truncating would "
        "drop the oldest tokens",
        prompt.size(), room, s.max_context()));
  std::vector<int32_t> full = s.tokens();
  if (static_cast<int64_t>(prompt.size()) > room) {
    // Truncation applies to the new tokens only: start from an empty cache.
    full.clear();
    s.Reset();
  }
  full.insert(full.end(), prompt.begin(), prompt.end());
  GenerateParams gp;
  gp.max_tokens = opts.n_predict;
  gp.stop_at_eog = opts.stop_at_eog;
  gp.truncate = opts.truncate;
  gp.prefill_batch = opts.prefill_batch;
  std::swap(s.sampler(), sampler);  // the caller's sampler state carries on
  auto r = Generate(s, tok, full, gp, [&](const GenerateEvent& e) { return on_token(e.id, e.text); });
  std::swap(s.sampler(), sampler);
  if (!r.ok()) return r.status();
  r->stats.prompt_tokens -= r->stats.cached_tokens;  // the tokens this call ran, as before
  r->stats.cached_tokens = 0;
  return r->stats;
}

absl::StatusOr<std::vector<float>> Embed(const Model& model, std::span<const int32_t> tokens,
                                         const EmbedParams& params) {
  if (tokens.empty()) return absl::InvalidArgumentError("the input has no tokens");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > model.max_context())
    return absl::OutOfRangeError(
        fmt::format("the input has {} tokens but the context holds {}", n, model.max_context()));
  auto session = model.NewSession(SessionOptions{.max_context = n});
  const int64_t dim = model.config().dim;
  std::vector<double> acc(dim, 0.0);
  std::vector<float> hidden;
  const size_t batch = static_cast<size_t>(std::max(1, params.batch));
  for (size_t i = 0; i < tokens.size(); i += batch) {
    if (Cancelled(params.cancel)) return absl::CancelledError("embedding cancelled");
    const size_t m = std::min(batch, tokens.size() - i);
    RETURN_IF_ERROR(session->ForwardHidden(tokens.subspan(i, m), &hidden));
    for (size_t t = 0; t < m; ++t) {
      const size_t pos = i + t;
      const bool use = params.pooling == Pooling::kMean ||
                       (params.pooling == Pooling::kCls && pos == 0) ||
                       (params.pooling == Pooling::kLast && pos + 1 == tokens.size());
      if (!use) continue;
      for (int64_t d = 0; d < dim; ++d) acc[d] += hidden[t * dim + d];
    }
  }
  if (params.pooling == Pooling::kMean)
    for (double& v : acc) v /= static_cast<double>(n);
  if (params.normalize) {
    double ss = 0;
    for (double v : acc) ss += v * v;
    if (ss > 0)
      for (double& v : acc) v /= std::sqrt(ss);
  }
  return std::vector<float>(acc.begin(), acc.end());
}

}  // namespace hart::runtime

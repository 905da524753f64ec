#include "runtime/generate.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>

#include "core/status.h"

namespace hart::runtime {
namespace {
double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

uint64_t PeakRssBytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

absl::StatusOr<GenerateStats> GenerateFromTokens(Model& model, const Tokenizer* tok,
                                                 std::vector<int32_t> prompt,
                                                 const GenerateOptions& opts, Sampler& sampler,
                                                 const TokenFn& on_token) {
  GenerateStats st;
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  const int64_t room = model.max_context() - model.position();
  if (static_cast<int64_t>(prompt.size()) > room) {
    if (!opts.truncate)
      return absl::OutOfRangeError(fmt::format(
          "the prompt has {} tokens but the context holds {} more (context length {}); use --truncate "
          "to drop the oldest tokens",
          prompt.size(), room, model.max_context()));
    // Keep the newest tokens, leaving room for part of the answer; keep a
    // leading BOS, which the model expects first.
    const int64_t keep = std::max<int64_t>(1, room - std::min<int64_t>(opts.n_predict, room / 2));
    const bool bos = tok && tok->bos_id() >= 0 && prompt[0] == tok->bos_id() && keep > 1;
    st.truncated_tokens = static_cast<int64_t>(prompt.size()) - keep;
    std::vector<int32_t> kept;
    if (bos) kept.push_back(prompt[0]);
    kept.insert(kept.end(), prompt.end() - (keep - (bos ? 1 : 0)), prompt.end());
    prompt = std::move(kept);
  }
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  for (int32_t t : prompt) sampler.Accept(t);

  std::vector<float> logits;
  auto t0 = std::chrono::steady_clock::now();
  const size_t batch = static_cast<size_t>(std::max(1, opts.prefill_batch));
  for (size_t i = 0; i < prompt.size(); i += batch) {
    std::span<const int32_t> part(prompt.data() + i, std::min(batch, prompt.size() - i));
    RETURN_IF_ERROR(model.Forward(part, /*all_logits=*/false, &logits));
  }
  st.prefill_seconds = Since(t0);

  std::optional<StreamDecoder> decoder;
  if (tok) decoder.emplace(*tok);
  const uint64_t read_before = model.streamer_stats().bytes_read;
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < opts.n_predict; ++i) {
    const int32_t id = sampler.Sample(logits);
    sampler.Accept(id);
    ++st.generated_tokens;
    const bool eog = opts.stop_at_eog && tok && tok->IsEog(id);
    std::string text = (decoder && !eog) ? decoder->Push(id) : std::string();
    if (!on_token(id, text) || eog) break;
    if (i + 1 == opts.n_predict || model.position() >= model.max_context()) break;
    const int32_t one[] = {id};
    RETURN_IF_ERROR(model.Forward(one, false, &logits));
    ++st.decode_passes;
  }
  st.decode_seconds = Since(t0);
  if (decoder) {
    std::string rest = decoder->Flush();
    if (!rest.empty()) on_token(-1, rest);
  }
  st.streamer = model.streamer_stats();
  st.weight_bytes_per_token = model.weight_bytes_per_pass();
  if (st.decode_passes > 0)
    st.streamed_bytes_per_token = (st.streamer.bytes_read - read_before) / st.decode_passes;
  st.peak_rss_bytes = PeakRssBytes();
  return st;
}

}  // namespace hart::runtime

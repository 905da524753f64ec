// `hart run` and `hart chat`: generation from a stored version (MODEL[@V])
// or straight from a file (.gguf, or a safetensors checkpoint directory).
// Generated text streams to stdout; --stats prints the speeds, peak RSS and
// weight bytes per token to stderr.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "core/status.h"
#include "runtime/chat_template.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "runtime/weight_source.h"

namespace hart::cli {
namespace {

namespace rt = hart::runtime;

struct RunArgs {
  std::string model;
  std::string prompt;
  int n_predict = 128;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int64_t seed = -1;
  std::string mem_budget;
  int threads = 0;
  int64_t ctx = 0;
  bool stats = false;
  bool truncate = false;
  bool cold = false;
  bool token_ids = false;
  std::string tokenizer;
};

void AddCommon(CLI::App* c, RunArgs& a) {
  c->add_option("model", a.model,
                "MODEL[@VERSION] in the store, or a .gguf file, safetensors directory or llama2.c checkpoint")
      ->required();
  c->add_option("--tokenizer", a.tokenizer,
                "a llama2.c checkpoint's tokenizer file; default: tokenizer.bin or the one fitting tok*.bin beside it");
  c->add_option("-n,--n-predict", a.n_predict, "tokens to generate at most")->capture_default_str();
  c->add_option("--temp", a.temp, "temperature; 0 = greedy")->capture_default_str();
  c->add_option("--top-k", a.top_k, "keep the K most likely tokens; 0 = off")->capture_default_str();
  c->add_option("--top-p", a.top_p, "nucleus sampling; 1 = off")->capture_default_str();
  c->add_option("--min-p", a.min_p, "drop tokens below P x the top probability; 0 = off")->capture_default_str();
  c->add_option("--repeat-penalty", a.repeat_penalty, "penalty on the last 64 tokens; 1 = off")
      ->capture_default_str();
  c->add_option("--seed", a.seed, "random seed (same seed, same output); default random");
  c->add_option("--mem-budget", a.mem_budget, "keep resident weights under SIZE (1.5G, 800M); default: all mapped");
  c->add_option("--threads", a.threads, "compute threads; default one per core");
  c->add_option("--ctx", a.ctx, "context length (KV cache); default prompt + n, at most the model's");
  c->add_flag("--stats", a.stats, "print prefill/decode tok/s, peak RSS and weight bytes per token to stderr");
  c->add_flag("--truncate", a.truncate, "drop the prompt's oldest tokens when it does not fit the context");
  c->add_flag("--cold", a.cold, "evict the weights from the page cache before and while streaming (benchmarks)");
}

struct Loaded {
  std::shared_ptr<store::Store> store;
  std::unique_ptr<rt::WeightSource> source;
  std::unique_ptr<rt::Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
};

absl::StatusOr<Loaded> Open(const Cli& cli, const RunArgs& a) {
  Loaded l;
  std::error_code ec;
  if (a.model.ends_with(".gguf") || a.model.ends_with(".safetensors") || std::filesystem::exists(a.model, ec)) {
    ASSIGN_OR_RETURN(l.source, rt::OpenFileWeights(a.model, a.tokenizer));
  } else {
    if (!a.tokenizer.empty())
      return absl::InvalidArgumentError("--tokenizer applies to a llama2.c checkpoint file; a stored version has its own");
    ASSIGN_OR_RETURN(auto st, cli.OpenStore());
    l.store = std::shared_ptr<store::Store>(std::move(st));
    ASSIGN_OR_RETURN(l.source, rt::OpenStoreWeights(l.store, a.model));
  }
  ASSIGN_OR_RETURN(l.tokenizer, rt::LoadTokenizer(*l.source));
  l.pool = std::make_unique<ThreadPool>(a.threads > 0 ? a.threads : 0);
  return l;
}

absl::StatusOr<rt::ModelOptions> ModelOptionsFor(const RunArgs& a, Loaded& l, int64_t ctx) {
  rt::ModelOptions mo;
  mo.pool = l.pool.get();
  mo.max_context = ctx;
  if (!a.mem_budget.empty() && !ParseBytes(a.mem_budget, &mo.stream.budget))
    return absl::InvalidArgumentError(fmt::format("--mem-budget: cannot read '{}' as a size", a.mem_budget));
  mo.stream.drop_page_cache = a.cold;
  if (a.cold) l.source->DropPageCache();
  return mo;
}

rt::SamplerOptions SamplerFor(const RunArgs& a) {
  rt::SamplerOptions so;
  so.temperature = a.temp;
  so.top_k = a.top_k;
  so.top_p = a.top_p;
  so.min_p = a.min_p;
  so.repeat_penalty = a.repeat_penalty;
  so.seed = a.seed >= 0 ? static_cast<uint64_t>(a.seed) : std::random_device{}();
  return so;
}

void PrintStats(const rt::GenerateStats& s, const rt::Model& m) {
  const auto& st = s.streamer;
  std::fprintf(stderr,
               "\nprompt %lld tokens, prefill %.2f tok/s; generated %lld tokens, decode %.2f tok/s\n"
               "peak RSS %s; weights %s read per token (%s streamed from storage); KV cache %s\n",
               static_cast<long long>(s.prompt_tokens), s.prefill_tok_s(),
               static_cast<long long>(s.generated_tokens), s.decode_tok_s(), HumanBytes(s.peak_rss_bytes).c_str(),
               HumanBytes(s.weight_bytes_per_token).c_str(), HumanBytes(s.streamed_bytes_per_token).c_str(),
               HumanBytes(m.kv_cache_bytes()).c_str());
  if (st.budget > 0)
    std::fprintf(stderr,
                 "budget %s: resident weights %s (%d groups pinned, %d streamed through %d slots of %s); "
                 "%.2f s waiting on reads\n",
                 HumanBytes(st.budget).c_str(), HumanBytes(st.resident_bytes).c_str(), st.pinned_groups,
                 st.streamed_groups, st.slots, HumanBytes(st.slot_bytes).c_str(), st.wait_seconds);
  if (s.truncated_tokens > 0)
    std::fprintf(stderr, "prompt truncated: %lld oldest tokens dropped\n", static_cast<long long>(s.truncated_tokens));
}

int RunCommand(const Cli& cli, const RunArgs& a) {
  auto l = Open(cli, a);
  if (!l.ok()) return Fail(l.status());
  std::vector<int32_t> prompt =
      l->tokenizer->Encode(a.prompt, l->tokenizer->add_bos_default(), /*parse_special=*/true);
  auto cfg = l->source->Config();
  if (!cfg.ok()) return Fail(cfg.status());
  int64_t ctx = a.ctx > 0 ? a.ctx : static_cast<int64_t>(prompt.size()) + a.n_predict;
  if (a.truncate && a.ctx <= 0) ctx = std::min<int64_t>(ctx, cfg->context_length);
  auto mo = ModelOptionsFor(a, *l, ctx);
  if (!mo.ok()) return Fail(mo.status());
  if (!a.truncate && ctx > cfg->context_length)
    return Fail(absl::OutOfRangeError(fmt::format(
        "the prompt ({} tokens) plus {} to generate exceed the model's context of {} tokens; use --truncate",
        prompt.size(), a.n_predict, cfg->context_length)));
  auto model = rt::Model::Load(l->source.get(), *mo);
  if (!model.ok()) return Fail(model.status());
  rt::GenerateOptions go;
  go.n_predict = a.n_predict;
  go.truncate = a.truncate;
  rt::Sampler sampler(SamplerFor(a));
  auto stats = rt::GenerateFromTokens(**model, l->tokenizer.get(), prompt, go, sampler,
                                      [](int32_t, std::string_view text) {
                                        std::fwrite(text.data(), 1, text.size(), stdout);
                                        std::fflush(stdout);
                                        return true;
                                      });
  std::fputc('\n', stdout);
  if (!stats.ok()) return Fail(stats.status());
  if (a.stats) PrintStats(*stats, **model);
  return kExitOk;
}

// Reads user turns from stdin, one per line; the KV cache keeps the
// conversation, so each turn runs only the tokens after the common prefix.
int ChatCommand(const Cli& cli, const RunArgs& a, const std::string& system, const std::string& format_name) {
  auto l = Open(cli, a);
  if (!l.ok()) return Fail(l.status());
  const auto* md = l->source->gguf_metadata();
  auto cfg = l->source->Config();
  if (!cfg.ok()) return Fail(cfg.status());
  absl::StatusOr<rt::ChatFormat> format =
      !format_name.empty() ? rt::ChatFormatFromName(format_name)
      : md != nullptr      ? rt::DetectChatFormat(*md)
                           : rt::DetectChatFormat(*l->tokenizer, rt::ArchName(cfg->arch));
  if (!format.ok()) return Fail(format.status());
  auto mo = ModelOptionsFor(a, *l, a.ctx > 0 ? a.ctx : std::min<int64_t>(cfg->context_length, 4096));
  if (!mo.ok()) return Fail(mo.status());
  auto model = rt::Model::Load(l->source.get(), *mo);
  if (!model.ok()) return Fail(model.status());
  rt::Model& m = **model;
  const rt::Tokenizer& tok = *l->tokenizer;
  rt::Sampler sampler(SamplerFor(a));
  std::vector<rt::ChatMessage> messages;
  if (!system.empty()) messages.push_back({rt::ChatRole::kSystem, system});
  std::vector<int32_t> cached;  // the tokens in the KV cache, in order
  const bool tty = isatty(0);
  std::string line;
  for (;;) {
    if (tty) std::fputs("> ", stderr);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    messages.push_back({rt::ChatRole::kUser, line});
    std::vector<int32_t> ids =
        tok.Encode(rt::ApplyChatTemplate(*format, messages, true), tok.add_bos_default(), true);
    size_t p = 0;
    while (p < cached.size() && p < ids.size() && cached[p] == ids[p]) ++p;
    if (p == ids.size()) --p;  // at least one token must run to get logits
    m.Truncate(static_cast<int64_t>(p));
    cached.assign(ids.begin(), ids.begin() + p);
    std::vector<int32_t> fresh(ids.begin() + p, ids.end());
    std::string reply;
    std::vector<int32_t> reply_ids;
    rt::GenerateOptions go;
    go.n_predict = a.n_predict;
    go.truncate = false;
    auto st = rt::GenerateFromTokens(m, &tok, fresh, go, sampler, [&](int32_t id, std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      reply += text;
      if (id >= 0) reply_ids.push_back(id);
      return true;
    });
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (!st.ok()) return Fail(st.status());
    if (a.stats) PrintStats(*st, m);
    // The cache holds the prompt and every reply token but the last (sampled,
    // never fed back); next turn reuses the longest prefix the template
    // re-renders identically.
    cached.insert(cached.end(), fresh.begin(), fresh.end());
    cached.insert(cached.end(), reply_ids.begin(), reply_ids.end());
    cached.resize(std::min<size_t>(cached.size(), static_cast<size_t>(m.position())));
    messages.push_back({rt::ChatRole::kAssistant, reply});
  }
  return kExitOk;
}

}  // namespace

void RegisterRun(Cli& cli) {
  static RunArgs run;
  CLI::App* c = cli.AddCommand("run", "generate text from a model, streaming tokens to stdout",
                               [&cli] { return RunCommand(cli, run); });
  AddCommon(c, run);
  c->add_option("prompt", run.prompt, "the prompt")->required();

  static RunArgs chat;
  static std::string system, format;
  CLI::App* h = cli.AddCommand("chat", "a conversation with a chat model: user turns from stdin, one per line",
                               [&cli] { return ChatCommand(cli, chat, system, format); });
  AddCommon(h, chat);
  h->add_option("--system", system, "system message");
  h->add_option("--chat-format", format, "llama3, chatml, mistral, llama2, gemma, phi3; default from the model");
}

}  // namespace hart::cli

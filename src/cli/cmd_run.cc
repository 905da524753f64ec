// `hart run` and `hart chat`: generation from a stored version (MODEL[@V])
// or straight from a file (.gguf, or a safetensors checkpoint directory),
// rendered over app/generate (the server runs the same code).
// Generated text streams to stdout; --stats prints the speeds, peak RSS and
// weight bytes per token to stderr.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "app/generate.h"
#include "app/models.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "core/status.h"
#include "runtime/generate.h"
#include "runtime/tokenizer.h"
#include "store/store.h"

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
  std::vector<std::string> lora;
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
  c->add_option("--lora", a.lora,
                "ADAPTER[:SCALE]: a stored LoRA adapter (`hart lora`) applied at run time, scale 1 by default; repeatable")
      ->allow_extra_args(false);
  c->add_flag("--cold", a.cold, "evict the weights from the page cache before and while streaming (benchmarks)");
}

absl::StatusOr<std::shared_ptr<const app::LoadedModel>> Open(const Cli& cli, const RunArgs& a) {
  std::shared_ptr<store::Store> store;
  if (!app::LooksLikePath(a.model)) {
    if (!a.tokenizer.empty())
      return absl::InvalidArgumentError("--tokenizer applies to a llama2.c checkpoint file; a stored version has its own");
    ASSIGN_OR_RETURN(auto st, cli.OpenStore());
    store = std::shared_ptr<store::Store>(std::move(st));
  }
  app::ModelLoadOptions lo;
  lo.max_context = a.ctx;
  lo.threads = a.threads;
  if (!a.mem_budget.empty() && !ParseBytes(a.mem_budget, &lo.stream.budget))
    return absl::InvalidArgumentError(fmt::format("--mem-budget: cannot read '{}' as a size", a.mem_budget));
  lo.stream.drop_page_cache = a.cold;
  lo.tokenizer = a.tokenizer;
  for (const std::string& l : a.lora) {
    // ADAPTER[:SCALE]: a trailing :number is the scale.
    app::ModelLoadOptions::Lora x{l, 1.0};
    const size_t colon = l.rfind(':');
    if (colon != std::string::npos) {
      const std::string tail = l.substr(colon + 1);
      char* end = nullptr;
      x.scale = std::strtod(tail.c_str(), &end);
      if (tail.empty() || *end != '\0')
        return absl::InvalidArgumentError(fmt::format("--lora {}: {} is not a number", l, tail));
      x.ref = l.substr(0, colon);
    }
    lo.lora.push_back(std::move(x));
  }
  return app::LoadModel(a.model, std::move(store), lo);
}

app::GenerationParams ParamsFor(const RunArgs& a) {
  app::GenerationParams p;
  p.max_tokens = a.n_predict;
  p.temperature = a.temp;
  p.top_k = a.top_k;
  p.top_p = a.top_p;
  p.min_p = a.min_p;
  p.repeat_penalty = a.repeat_penalty;
  if (a.seed >= 0) p.seed = static_cast<uint64_t>(a.seed);
  p.max_context = a.ctx;
  return p;
}

// Generated text goes to stdout as it comes.
app::GenerateControl Print() {
  return {.on_delta = [](const app::StreamDelta& d) {
    std::fwrite(d.text.data(), 1, d.text.size(), stdout);
    std::fflush(stdout);
    return true;
  }};
}

// The app's errors name no flags; the CLI adds the one that helps.
int FailGenerate(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kOutOfRange)
    return Fail(absl::OutOfRangeError(fmt::format("{}; use --truncate to drop the oldest tokens", std::string(s.message()))));
  return Fail(s);
}

void PrintStats(const rt::GenerateStats& s) {
  const auto& st = s.streamer;
  std::fprintf(stderr,
               "\nprompt %lld tokens, prefill %.2f tok/s; generated %lld tokens, decode %.2f tok/s\n"
               "peak RSS %s; weights %s read per token (%s streamed from storage); KV cache %s\n",
               static_cast<long long>(s.prompt_tokens - s.cached_tokens), s.prefill_tok_s(),
               static_cast<long long>(s.generated_tokens), s.decode_tok_s(), HumanBytes(s.peak_rss_bytes).c_str(),
               HumanBytes(s.weight_bytes_per_token).c_str(), HumanBytes(s.streamed_bytes_per_token).c_str(),
               HumanBytes(s.kv_cache_bytes).c_str());
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
  auto m = Open(cli, a);
  if (!m.ok()) return Fail(m.status());
  app::CompletionRequest req{.model = a.model, .prompt = a.prompt, .params = ParamsFor(a)};
  req.params.truncate = a.truncate;
  if (!a.truncate) {
    // The session holds the prompt and the tokens to generate (or --ctx).
    const rt::Tokenizer& tok = *(*m)->tokenizer;
    const size_t prompt = tok.Encode(a.prompt, tok.add_bos_default(), /*parse_special=*/true).size();
    const int64_t context = (*m)->model->config().context_length;
    if ((a.ctx > 0 ? a.ctx : static_cast<int64_t>(prompt) + a.n_predict) > context)
      return Fail(absl::OutOfRangeError(fmt::format(
          "the prompt ({} tokens) plus {} to generate exceed the model's context of {} tokens; use --truncate",
          prompt, a.n_predict, context)));
  }
  auto r = app::Complete(*m, req, Print());
  std::fputc('\n', stdout);
  if (!r.ok()) return FailGenerate(r.status());
  if (a.stats) PrintStats(r->stats);
  return kExitOk;
}

// Reads user turns from stdin, one per line; the chat session keeps the
// conversation in its KV cache, so each turn runs only the new tokens.
int ChatCommand(const Cli& cli, const RunArgs& a, const std::string& system, const std::string& format_name) {
  auto m = Open(cli, a);
  if (!m.ok()) return Fail(m.status());
  auto chat = app::ChatSession::Create(
      *m, {.system = system, .chat_format = format_name, .max_context = a.ctx, .params = ParamsFor(a)});
  if (!chat.ok()) return Fail(chat.status());
  const bool tty = isatty(0);
  std::string line;
  for (;;) {
    if (tty) std::fputs("> ", stderr);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    auto r = (*chat)->Send(line, Print());
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (!r.ok()) return Fail(r.status());
    if (a.stats) PrintStats(r->stats);
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

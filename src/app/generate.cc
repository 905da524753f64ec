#include "app/generate.h"

#include <charconv>
#include <cmath>
#include <optional>
#include <random>

#include "app/engine.h"
#include "core/status.h"
#include "runtime/chat_template.h"
#include "runtime/grammar/token_mask.h"

namespace hart::app {
namespace {

namespace rt = hart::runtime;
using nlohmann::json;

// --- JSON reading with errors that name the field. ---

absl::Status CheckFields(const json& j, std::string_view what, std::initializer_list<std::string_view> known) {
  if (!j.is_object()) return absl::InvalidArgumentError(fmt::format("{}: expected an object", what));
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (auto n : known) ok = ok || k == n;
    if (!ok) return absl::InvalidArgumentError(fmt::format("{}: unknown field '{}'", what, k));
  }
  return absl::OkStatus();
}

std::string Field(std::string_view what, std::string_view key) {
  return what.empty() ? std::string(key) : fmt::format("{}.{}", what, key);
}

template <typename T>
absl::Status Get(const json& j, std::string_view what, std::string_view key, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  const json& v = *it;
  const std::string f = Field(what, key);
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return absl::InvalidArgumentError(fmt::format("{}: expected true or false", f));
    *out = v.get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return absl::InvalidArgumentError(fmt::format("{}: expected a string", f));
    *out = v.get<std::string>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return absl::InvalidArgumentError(fmt::format("{}: expected a number", f));
    *out = v.get<T>();
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0))
      return absl::InvalidArgumentError(fmt::format("{}: expected a non-negative integer", f));
    *out = v.get<uint64_t>();
  } else {
    static_assert(std::is_integral_v<T>);
    if (!v.is_number_integer()) return absl::InvalidArgumentError(fmt::format("{}: expected an integer", f));
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())
                               : (v.get<int64_t>() < std::numeric_limits<T>::min() ||
                                  v.get<int64_t>() > std::numeric_limits<T>::max()))
      return absl::InvalidArgumentError(fmt::format("{}: {} is out of range", f, v.dump()));
    *out = static_cast<T>(v.get<int64_t>());
  }
  return absl::OkStatus();
}

absl::Status GetRequired(const json& j, std::string_view what, std::string_view key, std::string* out) {
  if (!j.contains(key)) return absl::InvalidArgumentError(fmt::format("{}: missing", Field(what, key)));
  return Get(j, what, key, out);
}

absl::StatusOr<std::map<int32_t, float>> LogitBiasFromJson(const json& j, const std::string& field) {
  std::map<int32_t, float> out;
  const std::string key = field.substr(field.rfind('.') + 1);
  if (!j.contains(key) || j[key].is_null()) return out;
  const json& b = j[key];
  if (!b.is_object()) return absl::InvalidArgumentError(fmt::format("{}: expected an object of token id: bias", field));
  for (const auto& [k, v] : b.items()) {
    int64_t id = -1;
    auto [end, ec] = std::from_chars(k.data(), k.data() + k.size(), id);
    if (ec != std::errc() || end != k.data() + k.size() || k.empty() || id < 0 || id > INT32_MAX)
      return absl::InvalidArgumentError(fmt::format("{}: '{}' is not a token id", field, k));
    if (!v.is_number()) return absl::InvalidArgumentError(fmt::format("{}.{}: expected a number", field, k));
    const double d = v.get<double>();
    if (!(d >= -100 && d <= 100))
      return absl::InvalidArgumentError(fmt::format("{}.{}: {} is not in -100..100", field, k, d));
    out[static_cast<int32_t>(id)] = static_cast<float>(d);
  }
  return out;
}

// --- Generation. ---

rt::SamplerOptions SamplerFor(const GenerationParams& p) {
  rt::SamplerOptions so;
  so.temperature = p.temperature;
  so.top_k = p.top_k;
  so.top_p = p.top_p;
  so.min_p = p.min_p;
  so.repeat_penalty = p.repeat_penalty;
  so.seed = p.seed ? *p.seed : std::random_device{}();
  return so;
}

rt::GenerateParams RuntimeParams(const GenerationParams& p, const CancelToken* cancel) {
  rt::GenerateParams gp;
  gp.max_tokens = p.max_tokens;
  gp.stop = p.stop;
  gp.logprobs = p.logprobs ? p.top_logprobs : -1;
  gp.truncate = p.truncate;
  gp.cancel = cancel;
  return gp;
}

TopLogprob MakeTop(const rt::Tokenizer& tok, const rt::TokenLogprob& l) {
  TopLogprob t;
  t.id = l.id;
  std::string_view piece = tok.TokenToPiece(l.id, /*render_special=*/true);
  t.token = ValidUtf8(piece);
  t.bytes.assign(piece.begin(), piece.end());
  t.logprob = l.logprob;
  return t;
}

TokenLogprob MakeLogprob(const rt::Tokenizer& tok, const rt::StepLogprobs& s) {
  TokenLogprob out;
  static_cast<TopLogprob&>(out) = MakeTop(tok, s.chosen);
  for (const auto& t : s.top) out.top_logprobs.push_back(MakeTop(tok, t));
  return out;
}

struct Outcome {
  rt::GenerateResult result;
  std::vector<TokenLogprob> logprobs;
  size_t streamed = 0;  // bytes of the text given to on_delta
};

// What constrains the sampling beyond the params: a grammar (structured
// output, a forced tool call) over the model's token index.
struct Constraint {
  std::shared_ptr<const rt::grammar::JsonGrammar> grammar;
  std::shared_ptr<const rt::grammar::TokenIndex> index;
  // tool_choice auto: this grammar applies after `trigger` ("<tool_call>"),
  // or (opening) when the reply opens with a call (llama 3.1, mistral).
  std::shared_ptr<const rt::grammar::JsonGrammar> triggered;
  std::string trigger;
  OpeningTrigger opening;
};

// One choice's generation on its own session: the runtime params, the
// processors they point to, and the event relay. Not movable (the params
// point into it).
struct ChoiceRun {
  ChoiceRun() = default;
  ChoiceRun(const ChoiceRun&) = delete;
  ChoiceRun& operator=(const ChoiceRun&) = delete;
  std::unique_ptr<rt::Session> owned;  // the session, when the run made it
  rt::Session* session = nullptr;
  rt::GenerateParams rp;
  std::optional<rt::grammar::LogitBiasProcessor> bias;
  std::optional<rt::grammar::GrammarProcessor> grammar;
  std::optional<rt::grammar::TriggeredGrammarProcessor> triggered;
  std::optional<rt::grammar::OpeningGrammarProcessor> opening;
  std::optional<ToolCallStreamFilter> filter;
  rt::GenerateFn on_event;
  Outcome out;
};

// Sets `r` up to generate on r.session after `ids`, streaming deltas to
// ctl.on_delta (as choice `index`, through r.filter when tool calls may be
// held back). End-of-generation tokens get no logprobs entry (they have no
// text).
void Prepare(ChoiceRun& r, const rt::Tokenizer& tok, std::span<const int32_t> ids, const GenerationParams& params,
             const GenerateControl& ctl, const Constraint& c, int index) {
  rt::Session& session = *r.session;
  r.rp = RuntimeParams(params, ctl.cancel);
  if (!params.logit_bias.empty()) {
    r.bias.emplace(params.logit_bias);
    r.rp.processors.push_back(&*r.bias);
  }
  // The tokens the generation may take: max_tokens, and the context left
  // after the prompt (the prompt as Generate keeps it when truncating).
  const int64_t room = session.max_context();
  int64_t prompt = static_cast<int64_t>(ids.size());
  if (prompt > room && params.truncate) {
    const int64_t want = params.max_tokens >= 0 ? params.max_tokens : room / 2;
    prompt = std::max<int64_t>(1, room - std::min<int64_t>(want, room / 2));
  }
  int64_t budget = std::max<int64_t>(0, room - prompt);
  if (params.max_tokens >= 0) budget = std::min(budget, params.max_tokens);
  if (c.grammar) {
    r.grammar.emplace(c.grammar, c.index, tok.StripsLeadingSpaceAfter(ids), budget);
    r.rp.processors.push_back(&*r.grammar);
  }
  if (c.triggered && c.opening.opening) {
    r.opening.emplace(
        c.triggered, c.index, c.opening.tag, c.opening.json_open,
        [&tok](int32_t id) { return std::string(tok.TokenToPiece(id, true)); }, tok.add_space_prefix(), budget);
    r.rp.processors.push_back(&*r.opening);
  } else if (c.triggered) {
    r.triggered.emplace(
        c.triggered, c.index, c.trigger, [&tok](int32_t id) { return std::string(tok.TokenToPiece(id, true)); },
        tok.add_space_prefix(), budget);
    r.rp.processors.push_back(&*r.triggered);
  }
  const bool want_lp = params.logprobs;
  ChoiceRun* rr = &r;
  const DeltaFn* on_delta = &ctl.on_delta;
  r.on_event = [rr, &tok, want_lp, on_delta, index](const rt::GenerateEvent& e) {
    Outcome& out = rr->out;
    size_t first = out.logprobs.size();
    if (want_lp && e.logprobs != nullptr && !tok.IsEog(e.id)) out.logprobs.push_back(MakeLogprob(tok, *e.logprobs));
    if (!*on_delta) return true;
    std::span<const TokenLogprob> lps(out.logprobs.data() + first, out.logprobs.size() - first);
    std::string shown = rr->filter ? rr->filter->Push(e.text) : std::string(e.text);
    if (rr->filter && rr->filter->held()) lps = {};
    if (shown.empty() && lps.empty()) return true;
    out.streamed += shown.size();
    return (*on_delta)(StreamDelta{shown, lps, index});
  };
}

// Runs the prepared choices of one prompt: through the model's batching
// engine where the caller has one (the server), all of them in the same
// batch with the prompt run once; else one after another on this thread
// (stopping after a cancelled one).
absl::Status RunAll(const std::shared_ptr<const LoadedModel>& model, const rt::Tokenizer& tok,
                    std::span<const int32_t> ids, const GenerateControl& ctl,
                    std::span<const std::unique_ptr<ChoiceRun>> runs) {
  if (ctl.engines != nullptr && model != nullptr) {
    std::vector<EngineChoice> choices;
    for (const auto& r : runs) choices.push_back(EngineChoice{r->session, r->rp, r->on_event});
    ASSIGN_OR_RETURN(auto results, ctl.engines->For(model)->GenerateMany(&tok, ids, choices));
    for (size_t i = 0; i < runs.size(); ++i) runs[i]->out.result = std::move(results[i]);
    return absl::OkStatus();
  }
  for (const auto& r : runs) {
    ASSIGN_OR_RETURN(r->out.result, rt::Generate(*r->session, &tok, ids, r->rp, r->on_event));
    if (r->out.result.finish_reason == FinishReason::kCancelled) break;
  }
  return absl::OkStatus();
}

// Generates on `session` after `ids` (one choice).
absl::StatusOr<Outcome> Run(const std::shared_ptr<const LoadedModel>& model, rt::Session& session,
                            const rt::Tokenizer& tok, std::span<const int32_t> ids,
                            const GenerationParams& params, const GenerateControl& ctl, const Constraint& c = {}) {
  std::vector<std::unique_ptr<ChoiceRun>> runs;
  runs.push_back(std::make_unique<ChoiceRun>());
  runs[0]->session = &session;
  Prepare(*runs[0], tok, ids, params, ctl, c, 0);
  RETURN_IF_ERROR(RunAll(model, tok, ids, ctl, runs));
  return std::move(runs[0]->out);
}

// The parameters of choice i: its own seed stream.
GenerationParams ChoiceParams(const GenerationParams& p, int i) {
  GenerationParams q = p;
  if (q.seed && i > 0) q.seed = *q.seed + static_cast<uint64_t>(i);
  return q;
}

absl::StatusOr<Constraint> ConstraintFor(const std::shared_ptr<const LoadedModel>& model, const GenerationParams& p,
                                         std::shared_ptr<const rt::grammar::JsonGrammar> forced = nullptr) {
  RETURN_IF_ERROR(CheckLogitBias(p.logit_bias, model->tokenizer->vocab_size()));
  Constraint c;
  if (forced) {
    c.grammar = std::move(forced);
  } else {
    ASSIGN_OR_RETURN(c.grammar, GrammarFor(p.response_format));
  }
  if (c.grammar) c.index = TokenIndexFor(model);
  return c;
}

// tool_choice auto in a family whose calls open with a marker: the call's
// arguments are constrained once the model opens one.
absl::Status AddTrigger(const std::shared_ptr<const LoadedModel>& model, rt::ChatFormat f,
                        std::span<const ToolFunction> tools, Constraint* c) {
  ASSIGN_OR_RETURN(c->triggered, TriggeredToolGrammar(f, tools));
  if (!c->triggered) return absl::OkStatus();
  c->trigger = rt::ToolSyntax(f).opener;
  c->opening = OpeningTriggerFor(f);
  if (!c->index) c->index = TokenIndexFor(model);
  return absl::OkStatus();
}

Usage UsageOf(const rt::GenerateStats& s) {
  return Usage{.prompt_tokens = s.prompt_tokens, .completion_tokens = s.generated_tokens,
               .cached_tokens = s.cached_tokens};
}

int64_t SessionContext(const rt::Model& m, const GenerationParams& p, size_t prompt_tokens) {
  if (p.max_context > 0) return std::min(p.max_context, m.max_context());
  if (p.max_tokens < 0) return m.max_context();
  return std::min<int64_t>(m.max_context(), static_cast<int64_t>(prompt_tokens) + p.max_tokens);
}

// The n choices' runs, each with its own session and seed stream (choice
// i samples with seed + i).
std::vector<std::unique_ptr<ChoiceRun>> NewRuns(const LoadedModel& m, const GenerationParams& params,
                                                size_t prompt_tokens) {
  std::vector<std::unique_ptr<ChoiceRun>> runs;
  for (int i = 0; i < params.n; ++i) {
    const GenerationParams p = ChoiceParams(params, i);
    auto r = std::make_unique<ChoiceRun>();
    r->owned = m.model->NewSession(
        {.max_context = SessionContext(*m.model, p, prompt_tokens), .sampler = SamplerFor(p)});
    r->session = r->owned.get();
    runs.push_back(std::move(r));
  }
  return runs;
}

absl::StatusOr<rt::ChatFormat> FormatFor(const LoadedModel& m, const std::string& name) {
  if (!name.empty()) {
    auto f = rt::ChatFormatFromName(name);
    if (!f.ok()) return absl::InvalidArgumentError(fmt::format("chat_format: {}", std::string(f.status().message())));
    return f;
  }
  if (!m.chat_format.ok())
    return absl::InvalidArgumentError(fmt::format(
        "model {} has no chat template that identifies its chat format ({}); name one (llama3, chatml, "
        "mistral, llama2, gemma, phi3)",
        m.ref, std::string(m.chat_format.status().message())));
  return *m.chat_format;
}

absl::StatusOr<std::vector<rt::ChatMessage>> ToRuntime(std::span<const ChatMessage> messages) {
  if (messages.empty()) return absl::InvalidArgumentError("messages: empty");
  std::vector<rt::ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    auto role = rt::ChatRoleFromName(messages[i].role);
    if (!role.ok())
      return absl::InvalidArgumentError(
          fmt::format("messages[{}].role: '{}' is not system, user, assistant or tool", i, messages[i].role));
    if (!messages[i].tool_calls.empty() && *role != rt::ChatRole::kAssistant)
      return absl::InvalidArgumentError(fmt::format("messages[{}].tool_calls: only assistant messages make calls", i));
    rt::ChatMessage m{*role, messages[i].content};
    for (const ToolCall& c : messages[i].tool_calls) m.tool_calls.push_back({c.id, c.name, c.arguments});
    m.tool_call_id = messages[i].tool_call_id;
    m.name = messages[i].name;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<int32_t> ChatPrompt(const rt::Tokenizer& tok, rt::ChatFormat f, std::span<const rt::ChatMessage> msgs) {
  return tok.Encode(rt::ApplyChatTemplate(f, msgs, /*add_generation_prompt=*/true), tok.add_bos_default(),
                    /*parse_special=*/true);
}

ChatResponse ChatResponseOf(const LoadedModel& m, Outcome o) {
  ChatResponse r;
  r.model = m.ref;
  r.message = {"assistant", std::move(o.result.text)};
  r.finish_reason = o.result.finish_reason;
  r.usage = UsageOf(o.result.stats);
  r.logprobs = std::move(o.logprobs);
  r.stats = o.result.stats;
  r.choices.push_back({r.message, r.finish_reason, r.logprobs});
  return r;
}

}  // namespace

std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<uint8_t>(s[i + k]) & 0xC0) == 0x80;
    if (ok && n > 1) {
      uint32_t cp = c & (0xFF >> (n + 1));
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
      const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= min[n] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

absl::Status Validate(const GenerationParams& p) {
  auto bad = [](std::string_view f, std::string_view why) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", f, why));
  };
  if (!std::isfinite(p.temperature) || p.temperature < 0) return bad("temperature", "must be >= 0");
  if (!std::isfinite(p.top_p) || p.top_p <= 0 || p.top_p > 1) return bad("top_p", "must be in (0, 1]");
  if (p.top_k < 0) return bad("top_k", "must be >= 0");
  if (!std::isfinite(p.min_p) || p.min_p < 0 || p.min_p > 1) return bad("min_p", "must be in [0, 1]");
  if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0) return bad("repeat_penalty", "must be > 0");
  if (p.top_logprobs < 0 || p.top_logprobs > 20) return bad("top_logprobs", "must be in 0..20");
  if (p.top_logprobs > 0 && !p.logprobs) return bad("top_logprobs", "needs logprobs");
  if (p.stop.size() > 4) return bad("stop", "at most 4 stop strings");
  for (size_t i = 0; i < p.stop.size(); ++i)
    if (p.stop[i].empty() || p.stop[i].size() > 256)
      return bad(fmt::format("stop[{}]", i), "must be 1 to 256 bytes");
  if (p.max_context < 0) return bad("max_context", "must be >= 0");
  if (p.n < 1 || p.n > 8) return bad("n", fmt::format("must be in 1..8, got {}", p.n));
  RETURN_IF_ERROR(CheckLogitBias(p.logit_bias, std::numeric_limits<int32_t>::max()));
  const std::string& t = p.response_format.type;
  if (t != "text" && t != "json_object" && t != "json_schema")
    return bad("response_format.type", fmt::format("'{}' is not text, json_object or json_schema", t));
  RETURN_IF_ERROR(GrammarFor(p.response_format).status());
  return absl::OkStatus();
}

// --- JSON. ---

json ToJson(const GenerationParams& p) {
  json j = {{"max_tokens", p.max_tokens},         {"temperature", p.temperature},
            {"top_p", p.top_p},                   {"top_k", p.top_k},
            {"min_p", p.min_p},                   {"repeat_penalty", p.repeat_penalty},
            {"seed", p.seed ? json(*p.seed) : json()}, {"stop", p.stop},
            {"logprobs", p.logprobs},             {"top_logprobs", p.top_logprobs},
            {"truncate", p.truncate},             {"max_context", p.max_context}};
  j["n"] = p.n;
  json bias = json::object();
  for (const auto& [id, v] : p.logit_bias) bias[std::to_string(id)] = v;
  j["logit_bias"] = bias;
  j["response_format"] = ToJson(p.response_format);
  return j;
}

json ToJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.total_tokens()},
          {"cached_tokens", u.cached_tokens}};
}

namespace {
json TopJson(const TopLogprob& t) {
  return {{"id", t.id}, {"token", t.token}, {"bytes", t.bytes}, {"logprob", t.logprob}};
}
json LogprobsJson(const std::vector<TokenLogprob>& v) {
  json a = json::array();
  for (const auto& l : v) a.push_back(ToJson(l));
  return a;
}
json StatsJson(const rt::GenerateStats& s) {
  return {{"prefill_seconds", s.prefill_seconds}, {"decode_seconds", s.decode_seconds},
          {"prefill_tok_s", s.prefill_tok_s()},   {"decode_tok_s", s.decode_tok_s()},
          {"truncated_tokens", s.truncated_tokens}};
}
}  // namespace

json ToJson(const TokenLogprob& l) {
  json j = TopJson(l);
  json top = json::array();
  for (const auto& t : l.top_logprobs) top.push_back(TopJson(t));
  j["top_logprobs"] = std::move(top);
  return j;
}

json ToJson(const ChatMessage& m) {
  json j = {{"role", m.role}, {"content", ValidUtf8(m.content)}};
  if (!m.tool_calls.empty()) {
    json calls = json::array();
    for (const ToolCall& c : m.tool_calls) calls.push_back(ToJson(c));
    j["tool_calls"] = calls;
  }
  if (!m.tool_call_id.empty()) j["tool_call_id"] = m.tool_call_id;
  if (!m.name.empty()) j["name"] = m.name;
  return j;
}

json ToJson(const CompletionRequest& r) {
  return {{"model", r.model}, {"prompt", ValidUtf8(r.prompt)}, {"params", ToJson(r.params)}};
}

json ToJson(const CompletionResponse& r) {
  json choices = json::array();
  for (const CompletionChoice& c : r.choices)
    choices.push_back({{"text", ValidUtf8(c.text)},
                       {"finish_reason", rt::FinishReasonName(c.finish_reason)},
                       {"logprobs", LogprobsJson(c.logprobs)}});
  return {{"model", r.model},
          {"text", ValidUtf8(r.text)},
          {"finish_reason", rt::FinishReasonName(r.finish_reason)},
          {"usage", ToJson(r.usage)},
          {"logprobs", LogprobsJson(r.logprobs)},
          {"choices", choices},
          {"timings", StatsJson(r.stats)}};
}

json ToJson(const ChatRequest& r) {
  json msgs = json::array();
  for (const auto& m : r.messages) msgs.push_back(ToJson(m));
  json j = {{"model", r.model}, {"messages", msgs}, {"params", ToJson(r.params)}, {"chat_format", r.chat_format}};
  j["tools"] = ToolsJson(r.tools);
  j["tool_choice"] = ToJson(r.tool_choice);
  return j;
}

json ToJson(const ChatResponse& r) {
  json choices = json::array();
  for (const ChatChoice& c : r.choices)
    choices.push_back({{"message", ToJson(c.message)},
                       {"finish_reason", rt::FinishReasonName(c.finish_reason)},
                       {"logprobs", LogprobsJson(c.logprobs)}});
  return {{"model", r.model},
          {"message", ToJson(r.message)},
          {"finish_reason", rt::FinishReasonName(r.finish_reason)},
          {"usage", ToJson(r.usage)},
          {"logprobs", LogprobsJson(r.logprobs)},
          {"choices", choices},
          {"timings", StatsJson(r.stats)}};
}

json ToJson(const EmbeddingRequest& r) {
  json in = json::array();
  for (const auto& s : r.input) in.push_back(ValidUtf8(s));
  return {{"model", r.model}, {"input", in}, {"pooling", rt::PoolingName(r.pooling)}, {"normalize", r.normalize}};
}

json ToJson(const EmbeddingResponse& r) {
  return {{"model", r.model}, {"data", r.data}, {"usage", ToJson(r.usage)}};
}

absl::StatusOr<GenerationParams> GenerationParamsFromJson(const json& j) {
  GenerationParams p;
  constexpr std::string_view w = "params";
  RETURN_IF_ERROR(CheckFields(j, w, {"max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty",
                                     "seed", "stop", "logprobs", "top_logprobs", "truncate", "max_context", "n",
                                     "logit_bias", "response_format"}));
  RETURN_IF_ERROR(Get(j, w, "max_tokens", &p.max_tokens));
  RETURN_IF_ERROR(Get(j, w, "temperature", &p.temperature));
  RETURN_IF_ERROR(Get(j, w, "top_p", &p.top_p));
  RETURN_IF_ERROR(Get(j, w, "top_k", &p.top_k));
  RETURN_IF_ERROR(Get(j, w, "min_p", &p.min_p));
  RETURN_IF_ERROR(Get(j, w, "repeat_penalty", &p.repeat_penalty));
  if (j.contains("seed") && !j["seed"].is_null()) {
    uint64_t seed = 0;
    RETURN_IF_ERROR(Get(j, w, "seed", &seed));
    p.seed = seed;
  }
  if (j.contains("stop") && !j["stop"].is_null()) {
    const json& s = j["stop"];
    if (s.is_string()) {
      p.stop = {s.get<std::string>()};
    } else if (s.is_array()) {
      for (size_t i = 0; i < s.size(); ++i) {
        if (!s[i].is_string()) return absl::InvalidArgumentError(fmt::format("params.stop[{}]: expected a string", i));
        p.stop.push_back(s[i].get<std::string>());
      }
    } else {
      return absl::InvalidArgumentError("params.stop: expected a string or an array of strings");
    }
  }
  RETURN_IF_ERROR(Get(j, w, "logprobs", &p.logprobs));
  RETURN_IF_ERROR(Get(j, w, "top_logprobs", &p.top_logprobs));
  RETURN_IF_ERROR(Get(j, w, "truncate", &p.truncate));
  RETURN_IF_ERROR(Get(j, w, "max_context", &p.max_context));
  RETURN_IF_ERROR(Get(j, w, "n", &p.n));
  ASSIGN_OR_RETURN(p.logit_bias, LogitBiasFromJson(j, "params.logit_bias"));
  if (j.contains("response_format") && !j["response_format"].is_null()) {
    ASSIGN_OR_RETURN(p.response_format, ResponseFormatFromJson(j["response_format"], "params.response_format"));
  }
  RETURN_IF_ERROR(Validate(p));
  return p;
}

absl::StatusOr<CompletionRequest> CompletionRequestFromJson(const json& j) {
  CompletionRequest r;
  RETURN_IF_ERROR(CheckFields(j, "request", {"model", "prompt", "params"}));
  RETURN_IF_ERROR(GetRequired(j, "", "model", &r.model));
  RETURN_IF_ERROR(GetRequired(j, "", "prompt", &r.prompt));
  if (j.contains("params")) {
    ASSIGN_OR_RETURN(r.params, GenerationParamsFromJson(j["params"]));
  }
  return r;
}

absl::StatusOr<ChatRequest> ChatRequestFromJson(const json& j) {
  ChatRequest r;
  RETURN_IF_ERROR(CheckFields(j, "request", {"model", "messages", "params", "chat_format", "tools", "tool_choice"}));
  RETURN_IF_ERROR(GetRequired(j, "", "model", &r.model));
  RETURN_IF_ERROR(Get(j, "", "chat_format", &r.chat_format));
  if (!j.contains("messages") || !j["messages"].is_array())
    return absl::InvalidArgumentError("messages: expected an array of {role, content}");
  for (size_t i = 0; i < j["messages"].size(); ++i) {
    const json& m = j["messages"][i];
    const std::string w = fmt::format("messages[{}]", i);
    RETURN_IF_ERROR(CheckFields(m, w, {"role", "content", "tool_calls", "tool_call_id", "name"}));
    ChatMessage msg;
    RETURN_IF_ERROR(GetRequired(m, w, "role", &msg.role));
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array()) return absl::InvalidArgumentError(w + ".tool_calls: expected an array");
      for (size_t k = 0; k < m["tool_calls"].size(); ++k) {
        ASSIGN_OR_RETURN(ToolCall c, ToolCallFromJson(m["tool_calls"][k], fmt::format("{}.tool_calls[{}]", w, k)));
        msg.tool_calls.push_back(std::move(c));
      }
      RETURN_IF_ERROR(Get(m, w, "content", &msg.content));
    } else {
      RETURN_IF_ERROR(GetRequired(m, w, "content", &msg.content));
    }
    RETURN_IF_ERROR(Get(m, w, "tool_call_id", &msg.tool_call_id));
    RETURN_IF_ERROR(Get(m, w, "name", &msg.name));
    r.messages.push_back(std::move(msg));
  }
  RETURN_IF_ERROR(ToRuntime(r.messages).status());
  if (j.contains("params")) {
    ASSIGN_OR_RETURN(r.params, GenerationParamsFromJson(j["params"]));
  }
  if (j.contains("tools") && !j["tools"].is_null()) {
    if (!j["tools"].is_array()) return absl::InvalidArgumentError("tools: expected an array");
    for (size_t i = 0; i < j["tools"].size(); ++i) {
      ASSIGN_OR_RETURN(ToolFunction t, ToolFromJson(j["tools"][i], fmt::format("tools[{}]", i)));
      r.tools.push_back(std::move(t));
    }
  }
  if (j.contains("tool_choice") && !j["tool_choice"].is_null()) {
    ASSIGN_OR_RETURN(r.tool_choice, ToolChoiceFromJson(j["tool_choice"], "tool_choice"));
  }
  RETURN_IF_ERROR(ValidateTools(r.tools, r.tool_choice));
  return r;
}

absl::StatusOr<EmbeddingRequest> EmbeddingRequestFromJson(const json& j) {
  EmbeddingRequest r;
  RETURN_IF_ERROR(CheckFields(j, "request", {"model", "input", "pooling", "normalize"}));
  RETURN_IF_ERROR(GetRequired(j, "", "model", &r.model));
  if (!j.contains("input")) return absl::InvalidArgumentError("input: missing");
  const json& in = j["input"];
  if (in.is_string()) {
    r.input = {in.get<std::string>()};
  } else if (in.is_array() && !in.empty()) {
    for (size_t i = 0; i < in.size(); ++i) {
      if (!in[i].is_string()) return absl::InvalidArgumentError(fmt::format("input[{}]: expected a string", i));
      r.input.push_back(in[i].get<std::string>());
    }
  } else {
    return absl::InvalidArgumentError("input: expected a string or a non-empty array of strings");
  }
  std::string pooling;
  RETURN_IF_ERROR(Get(j, "", "pooling", &pooling));
  if (!pooling.empty()) {
    ASSIGN_OR_RETURN(r.pooling, rt::PoolingFromName(pooling));
  }
  RETURN_IF_ERROR(Get(j, "", "normalize", &r.normalize));
  return r;
}

// --- Use cases. ---

absl::StatusOr<CompletionResponse> Complete(const std::shared_ptr<const LoadedModel>& model,
                                            const CompletionRequest& req, const GenerateControl& ctl) {
  RETURN_IF_ERROR(Validate(req.params));
  const rt::Tokenizer& tok = *model->tokenizer;
  std::vector<int32_t> ids = tok.Encode(req.prompt, tok.add_bos_default(), /*parse_special=*/true);
  if (ids.empty()) return absl::InvalidArgumentError("prompt: no tokens (an empty prompt, and the model adds no BOS)");
  ASSIGN_OR_RETURN(Constraint c, ConstraintFor(model, req.params));
  CompletionResponse r;
  r.model = model->ref;
  // Each choice its own sequence and seed stream, decoded together; the
  // prompt runs and counts once.
  std::vector<std::unique_ptr<ChoiceRun>> runs = NewRuns(*model, req.params, ids.size());
  for (int i = 0; i < req.params.n; ++i) Prepare(*runs[i], tok, ids, ChoiceParams(req.params, i), ctl, c, i);
  RETURN_IF_ERROR(RunAll(model, tok, ids, ctl, runs));
  for (int i = 0; i < req.params.n; ++i) {
    Outcome& o = runs[i]->out;
    if (i == 0) {
      r.usage = UsageOf(o.result.stats);
      r.stats = o.result.stats;
    } else {
      r.usage.completion_tokens += o.result.stats.generated_tokens;
    }
    r.choices.push_back({std::move(o.result.text), o.result.finish_reason, std::move(o.logprobs)});
    if (r.choices.back().finish_reason == FinishReason::kCancelled) break;
  }
  r.text = r.choices[0].text;
  r.finish_reason = r.choices[0].finish_reason;
  r.logprobs = r.choices[0].logprobs;
  return r;
}

absl::StatusOr<ChatResponse> Chat(const std::shared_ptr<const LoadedModel>& model, const ChatRequest& req,
                                  const GenerateControl& ctl) {
  RETURN_IF_ERROR(Validate(req.params));
  RETURN_IF_ERROR(ValidateTools(req.tools, req.tool_choice));
  ASSIGN_OR_RETURN(auto format, FormatFor(*model, req.chat_format));
  ASSIGN_OR_RETURN(auto msgs, ToRuntime(req.messages));
  const rt::Tokenizer& tok = *model->tokenizer;
  // Tools in the family's own template; a forced call continues a prompt
  // that already opened it, under a grammar of the call.
  const bool tools = !req.tools.empty() && req.tool_choice.mode != ToolChoice::kNone;
  const rt::ToolCallSyntax syntax = rt::ToolSyntax(format);
  std::shared_ptr<const rt::grammar::JsonGrammar> forced;
  if (tools) {
    ASSIGN_OR_RETURN(forced, ForcedToolGrammar(format, req.tools, req.tool_choice));
  }
  std::string text = rt::ApplyChatTemplate(format, msgs, /*add_generation_prompt=*/true,
                                           tools ? ToolsJson(req.tools) : json());
  if (forced) text += syntax.forced_prefix;
  std::vector<int32_t> ids = tok.Encode(text, tok.add_bos_default(), /*parse_special=*/true);
  ASSIGN_OR_RETURN(Constraint c, ConstraintFor(model, req.params, forced));
  if (tools && !forced && !c.grammar) RETURN_IF_ERROR(AddTrigger(model, format, req.tools, &c));
  ChatResponse r;
  r.model = model->ref;
  std::vector<std::unique_ptr<ChoiceRun>> runs = NewRuns(*model, req.params, ids.size());
  for (int i = 0; i < req.params.n; ++i) {
    if (tools) runs[i]->filter.emplace(format, forced != nullptr);
    Prepare(*runs[i], tok, ids, ChoiceParams(req.params, i), ctl, c, i);
  }
  RETURN_IF_ERROR(RunAll(model, tok, ids, ctl, runs));
  for (int i = 0; i < req.params.n; ++i) {
    Outcome& o = runs[i]->out;
    if (i == 0) {
      r.usage = UsageOf(o.result.stats);
      r.stats = o.result.stats;
    } else {
      r.usage.completion_tokens += o.result.stats.generated_tokens;
    }
    ChatChoice choice{{"assistant", o.result.text}, o.result.finish_reason, std::move(o.logprobs)};
    if (tools) {
      std::string out = o.result.text;
      if (forced) out = syntax.forced_prefix + out + (syntax.opener == "<tool_call>" ? "\n</tool_call>" : "");
      std::string content;
      std::vector<rt::ToolCallText> calls = rt::ParseToolCalls(format, out, &content);
      if (!calls.empty()) {
        choice.message.content = content;
        for (auto& k : calls)
          choice.message.tool_calls.push_back({k.id.empty() ? NewToolCallId() : k.id, k.name, k.arguments});
      } else if (ctl.on_delta && o.streamed < o.result.text.size() &&
                 o.result.finish_reason != FinishReason::kCancelled) {
        // Held back as a possible call, and it was not one: the rest now.
        std::string rest = o.result.text.substr(o.streamed);
        if (!ctl.on_delta(StreamDelta{rest, {}, i})) choice.finish_reason = FinishReason::kCancelled;
      }
    }
    r.choices.push_back(std::move(choice));
    if (r.choices.back().finish_reason == FinishReason::kCancelled) break;
  }
  r.message = r.choices[0].message;
  r.finish_reason = r.choices[0].finish_reason;
  r.logprobs = r.choices[0].logprobs;
  return r;
}

absl::StatusOr<EmbeddingResponse> Embed(const std::shared_ptr<const LoadedModel>& model,
                                        const EmbeddingRequest& req, const CancelToken* cancel) {
  if (req.input.empty()) return absl::InvalidArgumentError("input: empty");
  const rt::Tokenizer& tok = *model->tokenizer;
  EmbeddingResponse r;
  r.model = model->ref;
  rt::EmbedParams ep{.pooling = req.pooling, .normalize = req.normalize, .cancel = cancel};
  for (size_t i = 0; i < req.input.size(); ++i) {
    std::vector<int32_t> ids = tok.Encode(req.input[i], tok.add_bos_default(), /*parse_special=*/true);
    if (ids.empty()) return absl::InvalidArgumentError(fmt::format("input[{}]: no tokens", i));
    auto v = rt::Embed(*model->model, ids, ep);
    if (!v.ok()) {
      if (v.status().code() == absl::StatusCode::kOutOfRange)
        return absl::InvalidArgumentError(fmt::format("input[{}]: {}", i, std::string(v.status().message())));
      return v.status();
    }
    r.data.push_back(std::move(*v));
    r.usage.prompt_tokens += static_cast<int64_t>(ids.size());
  }
  return r;
}

absl::StatusOr<CompletionResponse> Complete(ModelRegistry& registry, const CompletionRequest& req,
                                            const GenerateControl& ctl) {
  ASSIGN_OR_RETURN(auto m, registry.Get(req.model));
  return Complete(m, req, ctl);
}

absl::StatusOr<ChatResponse> Chat(ModelRegistry& registry, const ChatRequest& req, const GenerateControl& ctl) {
  ASSIGN_OR_RETURN(auto m, registry.Get(req.model));
  return Chat(m, req, ctl);
}

absl::StatusOr<EmbeddingResponse> Embed(ModelRegistry& registry, const EmbeddingRequest& req,
                                        const CancelToken* cancel) {
  ASSIGN_OR_RETURN(auto m, registry.Get(req.model));
  return Embed(m, req, cancel);
}

// --- ChatSession. ---

absl::StatusOr<std::unique_ptr<ChatSession>> ChatSession::Create(std::shared_ptr<const LoadedModel> model,
                                                                 ChatSessionOptions opts) {
  RETURN_IF_ERROR(Validate(opts.params));
  std::unique_ptr<ChatSession> c(new ChatSession());
  ASSIGN_OR_RETURN(c->format_, FormatFor(*model, opts.chat_format));
  const int64_t ctx = opts.max_context > 0 ? opts.max_context : std::min<int64_t>(model->model->max_context(), 4096);
  c->session_ = model->model->NewSession({.max_context = ctx, .sampler = SamplerFor(opts.params)});
  if (!opts.system.empty()) c->messages_.push_back({"system", opts.system});
  c->model_ = std::move(model);
  c->opts_ = std::move(opts);
  return c;
}

ChatSession::~ChatSession() = default;

absl::StatusOr<ChatResponse> ChatSession::Send(std::string user, const GenerateControl& ctl) {
  std::vector<ChatMessage> msgs = messages_;
  msgs.push_back({"user", std::move(user)});
  return Reply(std::move(msgs), ctl);
}

absl::StatusOr<ChatResponse> ChatSession::Reply(std::vector<ChatMessage> messages, const GenerateControl& ctl) {
  ASSIGN_OR_RETURN(auto msgs, ToRuntime(messages));
  const rt::Tokenizer& tok = *model_->tokenizer;
  std::vector<int32_t> ids = ChatPrompt(tok, format_, msgs);
  ASSIGN_OR_RETURN(Constraint c, ConstraintFor(model_, opts_.params));
  ASSIGN_OR_RETURN(Outcome o, Run(nullptr, *session_, tok, ids, opts_.params, ctl, c));
  ChatResponse r = ChatResponseOf(*model_, std::move(o));
  messages.push_back(r.message);
  messages_ = std::move(messages);
  return r;
}

}  // namespace hart::app

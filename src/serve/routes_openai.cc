// The OpenAI-compatible API over app/generate: /v1/models,
// /v1/chat/completions, /v1/completions, /v1/embeddings. Only wire JSON is
// converted here (strictly: unknown fields are refused as OpenAI refuses
// them); generation itself is app::Chat / app::Complete / app::Embed on the
// registry's shared LoadedModel, one session per request, on a worker
// thread holding one of the service's generation slots; the model's
// app::Engine decodes the running ones together (continuous batching) and
// reuses cached prompt prefixes. stream: true
// answers server-sent events as OpenAI sends them; a client that goes away
// cancels its generation at the next decode step.
#include <ctime>
#include <optional>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/catalog.h"
#include "app/generate.h"
#include "app/models.h"
#include "core/status.h"
#include "serve/errors.h"
#include "app/access.h"
#include "serve/service.h"
#include "serve/service_state.h"

namespace hart::serve {

namespace {

using nlohmann::json;

absl::Status Bad(const std::string& param, const std::string& msg) {
  return absl::InvalidArgumentError(param.empty() ? msg : "'" + param + "': " + msg);
}

// Fields OpenAI accepts that change nothing here (metadata, user, store...).
const std::set<std::string> kIgnored = {"user", "metadata", "store", "service_tier", "parallel_tool_calls"};

absl::Status CheckKnown(const json& body, const std::set<std::string>& known) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (!known.count(it.key()) && !kIgnored.count(it.key())) {
      return Bad(it.key(), "Unrecognized request argument supplied: " + it.key());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetModel(const json& b) {
  if (!b.contains("model")) return Bad("model", "you must provide a model parameter");
  if (!b["model"].is_string() || b["model"].get<std::string>().empty()) {
    return Bad("model", "expected a non-empty string naming a model in the store (\"name\" or \"name@3\")");
  }
  return b["model"].get<std::string>();
}

// The sampling fields shared by chat and completions, into GenerationParams.
absl::Status ReadSampling(const json& b, app::GenerationParams* p, bool chat) {
  auto number = [&](const char* k, double lo, double hi, float* out) -> absl::Status {
    if (!b.contains(k) || b[k].is_null()) return absl::OkStatus();
    if (!b[k].is_number()) return Bad(k, "expected a number");
    double v = b[k].get<double>();
    if (v < lo || v > hi) return Bad(k, absl::StrFormat("must be between %g and %g, got %g", lo, hi, v));
    *out = static_cast<float>(v);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(number("temperature", 0, 2, &p->temperature));
  RETURN_IF_ERROR(number("top_p", 0, 1, &p->top_p));
  if (b.contains("top_p") && b["top_p"].is_number() && b["top_p"].get<double>() == 0) p->top_p = 1e-6f;
  for (const char* k : {"frequency_penalty", "presence_penalty"}) {
    float v = 0;
    RETURN_IF_ERROR(number(k, -2, 2, &v));
    if (v != 0) return Bad(k, "not supported (only 0)");
  }
  for (const char* k : {"max_tokens", "max_completion_tokens"}) {
    if (!b.contains(k) || b[k].is_null()) continue;
    if (!b[k].is_number_integer() || b[k].get<int64_t>() < 1) return Bad(k, "expected an integer >= 1");
    p->max_tokens = b[k].get<int64_t>();
  }
  if (b.contains("seed") && !b["seed"].is_null()) {
    if (!b["seed"].is_number_integer()) return Bad("seed", "expected an integer");
    p->seed = static_cast<uint64_t>(b["seed"].get<int64_t>());
  }
  if (b.contains("stop") && !b["stop"].is_null()) {
    const json& s = b["stop"];
    if (s.is_string()) {
      p->stop = {s.get<std::string>()};
    } else if (s.is_array()) {
      if (s.size() > 4) return Bad("stop", "at most 4 stop sequences");
      for (const json& e : s) {
        if (!e.is_string()) return Bad("stop", "expected a string or an array of strings");
        p->stop.push_back(e.get<std::string>());
      }
    } else {
      return Bad("stop", "expected a string or an array of strings");
    }
  }
  if (b.contains("n") && !b["n"].is_null()) {
    if (!b["n"].is_number_integer()) return Bad("n", "expected an integer");
    const int64_t n = b["n"].get<int64_t>();
    if (n < 1 || n > 8) return Bad("n", absl::StrFormat("must be between 1 and 8, got %d", n));
    p->n = static_cast<int>(n);
  }
  if (b.contains("logit_bias") && !b["logit_bias"].is_null()) {
    const json& lb = b["logit_bias"];
    if (!lb.is_object()) return Bad("logit_bias", "expected an object mapping token ids to -100..100");
    for (auto it = lb.begin(); it != lb.end(); ++it) {
      const std::string& k = it.key();
      int64_t id = -1;
      if (k.empty() || k.size() > 10 || k.find_first_not_of("0123456789") != std::string::npos ||
          (id = std::stoll(k)) > INT32_MAX) {
        return Bad("logit_bias", "'" + k + "' is not a token id");
      }
      if (!it.value().is_number()) return Bad("logit_bias", "the bias of token " + k + " must be a number");
      const double v = it.value().get<double>();
      if (!(v >= -100 && v <= 100)) return Bad("logit_bias", absl::StrFormat("the bias of token %s must be in -100..100, got %g", k, v));
      p->logit_bias[static_cast<int32_t>(id)] = static_cast<float>(v);
    }
  }
  if (chat) {
    if (b.contains("logprobs") && !b["logprobs"].is_null()) {
      if (!b["logprobs"].is_boolean()) return Bad("logprobs", "expected a boolean");
      p->logprobs = b["logprobs"].get<bool>();
    }
    if (b.contains("top_logprobs") && !b["top_logprobs"].is_null()) {
      if (!b["top_logprobs"].is_number_integer()) return Bad("top_logprobs", "expected an integer 0..20");
      int64_t n = b["top_logprobs"].get<int64_t>();
      if (n < 0 || n > 20) return Bad("top_logprobs", "must be between 0 and 20");
      if (!p->logprobs && n > 0) return Bad("top_logprobs", "requires logprobs: true");
      p->top_logprobs = static_cast<int>(n);
    }
  } else if (b.contains("logprobs") && !b["logprobs"].is_null()) {
    // Legacy completions: logprobs is the number of top alternatives (0..5).
    if (!b["logprobs"].is_number_integer()) return Bad("logprobs", "expected an integer 0..5");
    int64_t n = b["logprobs"].get<int64_t>();
    if (n < 0 || n > 5) return Bad("logprobs", "must be between 0 and 5");
    p->logprobs = true;
    p->top_logprobs = static_cast<int>(n);
  }
  return app::Validate(*p);
}

struct StreamOpts {
  bool stream = false;
  bool include_usage = false;
};

absl::Status ReadStream(const json& b, StreamOpts* s) {
  if (b.contains("stream") && !b["stream"].is_null()) {
    if (!b["stream"].is_boolean()) return Bad("stream", "expected a boolean");
    s->stream = b["stream"].get<bool>();
  }
  if (b.contains("stream_options") && !b["stream_options"].is_null()) {
    const json& o = b["stream_options"];
    if (!o.is_object()) return Bad("stream_options", "expected an object");
    if (!s->stream) return Bad("stream_options", "only allowed when stream is true");
    for (auto it = o.begin(); it != o.end(); ++it) {
      if (it.key() != "include_usage") return Bad("stream_options." + it.key(), "Unrecognized argument");
      if (!it.value().is_boolean()) return Bad("stream_options.include_usage", "expected a boolean");
      s->include_usage = it.value().get<bool>();
    }
  }
  return absl::OkStatus();
}

json Bytes(const std::vector<uint8_t>& b) {
  json a = json::array();
  for (uint8_t c : b) a.push_back(c);
  return a;
}

json ChatLogprob(const app::TokenLogprob& l) {
  json top = json::array();
  for (const auto& t : l.top_logprobs)
    top.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", Bytes(t.bytes)}});
  return {{"token", l.token}, {"logprob", l.logprob}, {"bytes", Bytes(l.bytes)}, {"top_logprobs", top}};
}

json ChatLogprobs(std::span<const app::TokenLogprob> ls) {
  json c = json::array();
  for (const auto& l : ls) c.push_back(ChatLogprob(l));
  return {{"content", c}, {"refusal", nullptr}};
}

// Legacy completions' logprobs object.
json TextLogprobs(std::span<const app::TokenLogprob> ls, size_t text_offset) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const auto& l : ls) {
    tokens.push_back(l.token);
    lps.push_back(l.logprob);
    json t = json::object();
    for (const auto& x : l.top_logprobs) t[x.token] = x.logprob;
    tops.push_back(t);
    offs.push_back(text_offset);
    text_offset += l.token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

std::string Finish(app::FinishReason r) {
  // OpenAI knows stop and length; a cancelled stream has no reader left.
  return r == app::FinishReason::kLength ? "length" : "stop";
}

json UsageJson(const app::Usage& u) {
  json j = {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.total_tokens()}};
  if (u.cached_tokens > 0) j["prompt_tokens_details"] = {{"cached_tokens", u.cached_tokens}};
  return j;
}

// The server's own speed figures, as llama.cpp's server reports them
// (`timings`): prompt = the prefill of the tokens not reused from the KV
// cache, predicted = the decode loop (its forward passes per second).
json TimingsJson(const runtime::GenerateStats& st) {
  const int64_t prompt_n = st.prompt_tokens - st.cached_tokens;
  const double prompt_ms = st.prefill_seconds * 1000.0, predicted_ms = st.decode_seconds * 1000.0;
  auto per_token = [](double ms, int64_t n) { return n > 0 ? ms / static_cast<double>(n) : 0.0; };
  return {{"cache_n", st.cached_tokens},
          {"prompt_n", prompt_n},
          {"prompt_ms", prompt_ms},
          {"prompt_per_token_ms", per_token(prompt_ms, prompt_n)},
          {"prompt_per_second", st.prefill_tok_s()},
          {"predicted_n", st.generated_tokens},
          {"predicted_ms", predicted_ms},
          {"predicted_per_token_ms", per_token(predicted_ms, st.decode_passes)},
          {"predicted_per_second", st.decode_tok_s()}};
}

// A stream's include_usage chunk (chat and legacy completions alike): no
// choices, the usage, and the timings beside it.
json UsageChunk(const std::string& id, const char* object, int64_t created, const std::string& ref,
                const app::Usage& u, const runtime::GenerateStats& st) {
  return {{"id", id},
          {"object", object},
          {"created", created},
          {"model", ref},
          {"system_fingerprint", nullptr},
          {"choices", json::array()},
          {"usage", UsageJson(u)},
          {"timings", TimingsJson(st)}};
}

std::string Sse(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

void Account(Service& svc, const app::Usage& u, const runtime::GenerateStats& st) {
  svc.metrics().AddPromptTokens(static_cast<uint64_t>(u.prompt_tokens));
  svc.metrics().AddTokensGenerated(static_cast<uint64_t>(u.completion_tokens));
  svc.metrics().AddWeightBytesRead(st.streamer.bytes_read);
}

// Loads the model named by the request (404 naming it when unknown).
absl::StatusOr<std::shared_ptr<const app::LoadedModel>> Model(Service& svc, const std::string& ref) {
  auto m = State(svc).registry->Get(ref);
  if (!m.ok() && m.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError("The model '" + ref + "' does not exist (" + std::string(m.status().message()) +
                               "); GET /v1/models lists them");
  }
  return m;
}

// What a generation route holds while it runs: its place among the bounded
// generations (given back on return), the loaded model, and the id, time and
// model name every response object of the request repeats. Responds with
// the error itself (429 when the queue is full, 404 naming the model) and
// returns nullopt.
struct Started {
  GenerationSlots::Slot slot;
  std::shared_ptr<const app::LoadedModel> model;
  std::string id;
  int64_t created = 0;
  std::string ref;
};

std::optional<Started> Start(Service& svc, Exchange& ex, const Caller& caller, const std::string& model,
                             const std::string& id_prefix) {
  // The access rule (app/access.h) before anything is loaded: a model the
  // caller may not read is as unknown as one that does not exist.
  if (absl::Status a = app::CheckRead(svc.ContextFor(ex, caller), app::ModelOfRef(model)); !a.ok()) {
    RespondError(ex, absl::IsNotFound(a) ? absl::NotFoundError("The model '" + model + "' does not exist; GET /v1/models lists them") : a, "model");
    return std::nullopt;
  }
  auto slot = svc.slots().Acquire(ex.cancel_token());
  if (!slot.ok()) {
    RespondError(ex, slot.status());
    return std::nullopt;
  }
  auto loaded = Model(svc, model);
  if (!loaded.ok()) {
    RespondError(ex, loaded.status(), "model");
    return std::nullopt;
  }
  std::string ref = (*loaded)->ref;
  return Started{std::move(*slot), std::move(*loaded), id_prefix + ex.request().request_id,
                 static_cast<int64_t>(std::time(nullptr)), std::move(ref)};
}

// Runs a generation with streaming or not. `run` gets the control block and
// returns the final response; `chunk` renders one delta as an SSE chunk.
struct StreamState {
  Exchange* ex = nullptr;
  bool began = false;
  bool ok = true;
};

bool EmitSse(StreamState& s, const json& j) {
  if (!s.ok) return false;
  if (!s.began) {
    s.began = true;
    Headers h = {{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}, {"x-accel-buffering", "no"}};
    if (!s.ex->Begin(200, h, -1)) {
      s.ok = false;
      return false;
    }
  }
  s.ok = s.ex->Write(Sse(j));
  return s.ok;
}

void HandleChat(Service& svc, Exchange& ex, const Caller& caller) {
  auto body = ParseJsonBody(ex.request());
  if (!body.ok()) return RespondError(ex, body.status());
  const json& b = *body;
  absl::Status st =
      CheckKnown(b, {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed",
                     "stop", "stream", "stream_options", "logprobs", "top_logprobs", "n", "frequency_penalty",
                     "presence_penalty", "response_format", "tools", "tool_choice", "logit_bias"});
  if (!st.ok()) return RespondError(ex, st);
  app::ChatRequest req;
  auto model = GetModel(b);
  if (!model.ok()) return RespondError(ex, model.status(), "model");
  req.model = *model;
  if (!b.contains("messages") || !b["messages"].is_array() || b["messages"].empty()) {
    return RespondError(ex, Bad("messages", "expected a non-empty array of messages"), "messages");
  }
  for (size_t i = 0; i < b["messages"].size(); ++i) {
    const json& m = b["messages"][i];
    std::string where = absl::StrFormat("messages[%d]", i);
    if (!m.is_object()) return RespondError(ex, Bad(where, "expected an object"), where);
    if (!m.contains("role") || !m["role"].is_string()) {
      return RespondError(ex, Bad(where + ".role", "expected a string"), where + ".role");
    }
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return RespondError(
          ex, Bad(where + ".role", "must be system, developer, user, assistant or tool; got \"" + role + "\""),
          where + ".role");
    }
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (it.key() != "role" && it.key() != "content" && it.key() != "name" && it.key() != "tool_calls" &&
          it.key() != "tool_call_id" && it.key() != "refusal") {
        return RespondError(ex, Bad(where + "." + it.key(), "Unrecognized argument"), where + "." + it.key());
      }
    }
    app::ChatMessage msg;
    msg.role = role;
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (role != "assistant" || !m["tool_calls"].is_array()) {
        return RespondError(ex, Bad(where + ".tool_calls", "an array, on assistant messages only"), where + ".tool_calls");
      }
      for (size_t k = 0; k < m["tool_calls"].size(); ++k) {
        auto call = app::ToolCallFromJson(m["tool_calls"][k], absl::StrFormat("%s.tool_calls[%d]", where, k));
        if (!call.ok()) return RespondError(ex, call.status(), where + ".tool_calls");
        msg.tool_calls.push_back(*call);
      }
    }
    if (role == "tool") {
      if (!m.contains("tool_call_id") || !m["tool_call_id"].is_string()) {
        return RespondError(ex, Bad(where + ".tool_call_id", "is required on tool messages"), where + ".tool_call_id");
      }
      msg.tool_call_id = m["tool_call_id"].get<std::string>();
    }
    if (m.contains("name") && m["name"].is_string()) msg.name = m["name"].get<std::string>();
    std::string content;
    if (!m.contains("content") || m["content"].is_null()) {
      if (role != "assistant") return RespondError(ex, Bad(where + ".content", "is required"), where + ".content");
    } else if (m["content"].is_string()) {
      content = m["content"].get<std::string>();
    } else if (m["content"].is_array()) {
      for (const json& part : m["content"]) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return RespondError(ex, Bad(where + ".content", "only parts of type \"text\" are supported"),
                              where + ".content");
        }
        content += part["text"].get<std::string>();
      }
    } else {
      return RespondError(ex, Bad(where + ".content", "expected a string or an array of text parts"),
                          where + ".content");
    }
    msg.content = content;
    req.messages.push_back(std::move(msg));
  }
  if (b.contains("response_format") && !b["response_format"].is_null()) {
    auto rf = app::ResponseFormatFromJson(b["response_format"], "response_format");
    if (!rf.ok()) return RespondError(ex, rf.status(), "response_format");
    req.params.response_format = *rf;
  }
  if (b.contains("tools") && !b["tools"].is_null()) {
    if (!b["tools"].is_array() || b["tools"].size() > 128) {
      return RespondError(ex, Bad("tools", "expected an array of at most 128 tools"), "tools");
    }
    for (size_t i = 0; i < b["tools"].size(); ++i) {
      auto t = app::ToolFromJson(b["tools"][i], absl::StrFormat("tools[%d]", i));
      if (!t.ok()) return RespondError(ex, t.status(), "tools");
      req.tools.push_back(*t);
    }
  }
  if (b.contains("tool_choice") && !b["tool_choice"].is_null()) {
    auto c = app::ToolChoiceFromJson(b["tool_choice"], "tool_choice");
    if (!c.ok()) return RespondError(ex, c.status(), "tool_choice");
    if (req.tools.empty() && c->mode != app::ToolChoice::kNone && c->mode != app::ToolChoice::kAuto) {
      return RespondError(ex, Bad("tool_choice", "names a tool, but the request has no tools"), "tool_choice");
    }
    req.tool_choice = *c;
  }
  if (absl::Status ts = app::ValidateTools(req.tools, req.tool_choice); !ts.ok()) {
    return RespondError(ex, ts, "tool_choice");
  }
  StreamOpts so;
  st = ReadSampling(b, &req.params, true);
  if (st.ok()) st = ReadStream(b, &so);
  if (!st.ok()) return RespondError(ex, st);

  auto g = Start(svc, ex, caller, req.model, "chatcmpl-");
  if (!g) return;
  const std::string& id = g->id;
  const int64_t created = g->created;
  const std::string& ref = g->ref;
  app::GenerateControl ctl;
  ctl.cancel = &ex.cancel_token();
  ctl.engines = State(svc).engines.get();
  StreamState ss;
  ss.ex = &ex;
  auto chunk = [&](int index, json delta, json logprobs, json finish) {
    json c = {{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", created},
              {"model", ref},
              {"system_fingerprint", nullptr},
              {"choices", {{{"index", index}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}}}}};
    if (so.include_usage) c["usage"] = nullptr;
    return c;
  };
  if (so.stream) {
    for (int i = 0; i < req.params.n; ++i) {
      if (!EmitSse(ss, chunk(i, {{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr, nullptr))) {
        return;
      }
    }
    ctl.on_delta = [&](const app::StreamDelta& d) {
      if (d.text.empty() && d.logprobs.empty()) return !ex.Cancelled();
      json lp = req.params.logprobs ? ChatLogprobs(d.logprobs) : json(nullptr);
      return EmitSse(ss, chunk(d.index, {{"content", std::string(d.text)}}, lp, nullptr));
    };
  }
  auto resp = app::Chat(g->model, req, ctl);
  if (!resp.ok()) {
    if (!ss.began) return RespondError(ex, resp.status());
    // Mid-stream: an error event as OpenAI sends one, then the end.
    EmitSse(ss, json::parse(ErrorBody(std::string(resp.status().message()),
                                      ErrorTypeFor(HttpStatusFor(resp.status())))));
    ex.End();
    return;
  }
  Account(svc, resp->usage, resp->stats);
  auto finish = [](const app::ChatChoice& c) {
    return c.message.tool_calls.empty() ? Finish(c.finish_reason) : std::string("tool_calls");
  };
  auto calls_json = [](const app::ChatChoice& c, bool with_index) {
    json a = json::array();
    for (size_t k = 0; k < c.message.tool_calls.size(); ++k) {
      json t = app::ToJson(c.message.tool_calls[k]);
      if (with_index) t["index"] = k;
      a.push_back(t);
    }
    return a;
  };
  if (so.stream) {
    if (resp->finish_reason == app::FinishReason::kCancelled || ex.Cancelled()) {
      ex.End();
      return;
    }
    for (size_t i = 0; i < resp->choices.size(); ++i) {
      const app::ChatChoice& c = resp->choices[i];
      if (!c.message.tool_calls.empty()) {
        // The calls whole in one delta (clients join argument fragments; one is a valid split).
        EmitSse(ss, chunk(static_cast<int>(i), {{"tool_calls", calls_json(c, true)}}, nullptr, nullptr));
      }
      json last = chunk(static_cast<int>(i), json::object(), nullptr, finish(c));
      if (i + 1 == resp->choices.size()) last["timings"] = TimingsJson(resp->stats);  // as llama.cpp's last chunk
      EmitSse(ss, last);
    }
    if (so.include_usage) EmitSse(ss, UsageChunk(id, "chat.completion.chunk", created, ref, resp->usage, resp->stats));
    if (ss.ok) ex.Write("data: [DONE]\n\n");
    ex.End();
    return;
  }
  json choices = json::array();
  for (size_t i = 0; i < resp->choices.size(); ++i) {
    const app::ChatChoice& c = resp->choices[i];
    json msg = {{"role", "assistant"}, {"content", c.message.content}, {"refusal", nullptr}};
    if (!c.message.tool_calls.empty()) {
      msg["tool_calls"] = calls_json(c, false);
      if (c.message.content.empty()) msg["content"] = nullptr;
    }
    choices.push_back({{"index", i},
                       {"message", msg},
                       {"logprobs", req.params.logprobs ? ChatLogprobs(c.logprobs) : json(nullptr)},
                       {"finish_reason", finish(c)}});
  }
  json out = {{"id", id},
              {"object", "chat.completion"},
              {"created", created},
              {"model", ref},
              {"system_fingerprint", nullptr},
              {"choices", choices},
              {"usage", UsageJson(resp->usage)},
              {"timings", TimingsJson(resp->stats)}};
  RespondJson(ex, out);
}

void HandleCompletion(Service& svc, Exchange& ex, const Caller& caller) {
  auto body = ParseJsonBody(ex.request());
  if (!body.ok()) return RespondError(ex, body.status());
  const json& b = *body;
  absl::Status st = CheckKnown(b, {"model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "stream",
                                   "stream_options", "logprobs", "n", "frequency_penalty", "presence_penalty",
                                   "echo", "suffix", "best_of", "logit_bias"});
  if (!st.ok()) return RespondError(ex, st);
  app::CompletionRequest req;
  auto model = GetModel(b);
  if (!model.ok()) return RespondError(ex, model.status(), "model");
  req.model = *model;
  if (!b.contains("prompt")) return RespondError(ex, Bad("prompt", "is required"), "prompt");
  const json& p = b["prompt"];
  if (p.is_string()) {
    req.prompt = p.get<std::string>();
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    req.prompt = p[0].get<std::string>();
  } else {
    return RespondError(ex, Bad("prompt", "expected a string (or an array of one string)"), "prompt");
  }
  if (b.value("echo", false) == true) return RespondError(ex, Bad("echo", "not supported"), "echo");
  if (b.contains("suffix") && !b["suffix"].is_null()) return RespondError(ex, Bad("suffix", "not supported"), "suffix");
  if (b.contains("best_of") && !b["best_of"].is_null() && b["best_of"] != 1) {
    return RespondError(ex, Bad("best_of", "only 1 is supported"), "best_of");
  }
  req.params.max_tokens = 16;  // OpenAI's default for completions
  StreamOpts so;
  st = ReadSampling(b, &req.params, false);
  if (st.ok()) st = ReadStream(b, &so);
  if (!st.ok()) return RespondError(ex, st);

  auto g = Start(svc, ex, caller, req.model, "cmpl-");
  if (!g) return;
  const std::string& id = g->id;
  const int64_t created = g->created;
  const std::string& ref = g->ref;
  app::GenerateControl ctl;
  ctl.cancel = &ex.cancel_token();
  ctl.engines = State(svc).engines.get();
  StreamState ss;
  ss.ex = &ex;
  std::vector<size_t> offset(req.params.n, 0);
  auto chunk = [&](int index, const std::string& text, json logprobs, json finish) {
    json c = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", ref},
              {"system_fingerprint", nullptr},
              {"choices", {{{"index", index}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish}}}}};
    if (so.include_usage) c["usage"] = nullptr;
    return c;
  };
  if (so.stream) {
    ctl.on_delta = [&](const app::StreamDelta& d) {
      if (d.text.empty() && d.logprobs.empty()) return !ex.Cancelled();
      json lp = req.params.logprobs ? TextLogprobs(d.logprobs, offset[d.index]) : json(nullptr);
      offset[d.index] += d.text.size();
      return EmitSse(ss, chunk(d.index, std::string(d.text), lp, nullptr));
    };
  }
  auto resp = app::Complete(g->model, req, ctl);
  if (!resp.ok()) {
    if (!ss.began) return RespondError(ex, resp.status());
    EmitSse(ss, json::parse(ErrorBody(std::string(resp.status().message()),
                                      ErrorTypeFor(HttpStatusFor(resp.status())))));
    ex.End();
    return;
  }
  Account(svc, resp->usage, resp->stats);
  if (so.stream) {
    if (resp->finish_reason == app::FinishReason::kCancelled || ex.Cancelled()) {
      ex.End();
      return;
    }
    for (size_t i = 0; i < resp->choices.size(); ++i) {
      json last = chunk(static_cast<int>(i), "", nullptr, Finish(resp->choices[i].finish_reason));
      if (i + 1 == resp->choices.size()) last["timings"] = TimingsJson(resp->stats);  // as the chat route
      EmitSse(ss, last);
    }
    if (so.include_usage) EmitSse(ss, UsageChunk(id, "text_completion", created, ref, resp->usage, resp->stats));
    if (ss.ok) ex.Write("data: [DONE]\n\n");
    ex.End();
    return;
  }
  json out = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", ref},
              {"system_fingerprint", nullptr},
              {"choices", json::array()},
              {"usage", UsageJson(resp->usage)},
              {"timings", TimingsJson(resp->stats)}};
  for (size_t i = 0; i < resp->choices.size(); ++i) {
    const app::CompletionChoice& c = resp->choices[i];
    out["choices"].push_back({{"index", i},
                              {"text", c.text},
                              {"logprobs", req.params.logprobs ? TextLogprobs(c.logprobs, 0) : json(nullptr)},
                              {"finish_reason", Finish(c.finish_reason)}});
  }
  RespondJson(ex, out);
}

void HandleEmbeddings(Service& svc, Exchange& ex, const Caller& caller) {
  auto body = ParseJsonBody(ex.request());
  if (!body.ok()) return RespondError(ex, body.status());
  const json& b = *body;
  absl::Status st = CheckKnown(b, {"model", "input", "encoding_format", "dimensions"});
  if (!st.ok()) return RespondError(ex, st);
  app::EmbeddingRequest req;
  auto model = GetModel(b);
  if (!model.ok()) return RespondError(ex, model.status(), "model");
  req.model = *model;
  if (!b.contains("input")) return RespondError(ex, Bad("input", "is required"), "input");
  const json& in = b["input"];
  if (in.is_string()) {
    req.input = {in.get<std::string>()};
  } else if (in.is_array() && !in.empty() && in.size() <= 2048) {
    for (const json& e : in) {
      if (!e.is_string()) {
        return RespondError(ex, Bad("input", "expected a string or an array of strings (token arrays are not supported)"),
                            "input");
      }
      req.input.push_back(e.get<std::string>());
    }
  } else {
    return RespondError(ex, Bad("input", "expected a string or an array of 1..2048 strings"), "input");
  }
  for (const std::string& s : req.input) {
    if (s.empty()) return RespondError(ex, Bad("input", "inputs must not be empty strings"), "input");
  }
  std::string format = "float";
  if (b.contains("encoding_format") && !b["encoding_format"].is_null()) {
    if (!b["encoding_format"].is_string() ||
        (b["encoding_format"] != "float" && b["encoding_format"] != "base64")) {
      return RespondError(ex, Bad("encoding_format", "must be \"float\" or \"base64\""), "encoding_format");
    }
    format = b["encoding_format"].get<std::string>();
  }
  if (b.contains("dimensions") && !b["dimensions"].is_null()) {
    return RespondError(ex, Bad("dimensions", "not supported: the embedding has the model's hidden size"),
                        "dimensions");
  }
  auto g = Start(svc, ex, caller, req.model, "");
  if (!g) return;
  auto resp = app::Embed(g->model, req, &ex.cancel_token());
  if (!resp.ok()) return RespondError(ex, resp.status());
  svc.metrics().AddPromptTokens(static_cast<uint64_t>(resp->usage.prompt_tokens));
  json data = json::array();
  for (size_t i = 0; i < resp->data.size(); ++i) {
    json e = {{"object", "embedding"}, {"index", i}};
    if (format == "base64") {
      const auto& v = resp->data[i];
      e["embedding"] = absl::Base64Escape(absl::string_view(
          reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
    } else {
      e["embedding"] = resp->data[i];
    }
    data.push_back(e);
  }
  RespondJson(ex, {{"object", "list"},
                   {"data", data},
                   {"model", g->ref},
                   {"usage", {{"prompt_tokens", resp->usage.prompt_tokens},
                              {"total_tokens", resp->usage.prompt_tokens}}}});
}

json ModelObject(const std::string& id, int64_t created) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "hartonomous"}};
}

// Hartonomous' fields beside OpenAI's on a loaded model: what it costs in
// memory now (clients ignore fields they do not know).
void AddResidency(json& obj, const app::LoadedModelInfo* m) {
  obj["loaded"] = m != nullptr;
  if (m == nullptr) return;
  obj["mode"] = m->residency.streamed ? "streamed" : "resident";
  obj["resident_bytes"] = m->residency.resident_bytes;
  obj["shared_bytes"] = m->residency.shared_bytes;
  obj["tokenizer_bytes"] = m->residency.tokenizer_bytes;
  obj["tokenizer_shared"] = m->residency.tokenizer_shared;
  obj["last_used"] = m->last_used;
}

void HandleModels(Service& svc, Exchange& ex, const Caller& caller) {
  app::Context ctx = svc.ContextFor(ex, caller);
  auto versions = ctx.st().ListVersions();
  if (!versions.ok()) return RespondError(ex, versions.status());
  auto readable = app::ReadableFilter(ctx);  // only what the caller may read
  if (!readable.ok()) return RespondError(ex, readable.status());
  std::erase_if(*versions, [&](const store::VersionRow& v) { return !(*readable)(v.model); });
  const app::RegistryStats st = State(svc).registry->Stats();
  std::map<std::string, const app::LoadedModelInfo*> loaded;
  for (const auto& m : st.models) loaded[m.ref] = &m;
  // Residency (resident and shared bytes) would tell a caller what its models
  // share with others' private ones: Admins only (app/access.h).
  const bool admin = caller.role == app::AccessRole::kAdmin;
  auto find = [&](const std::string& ref) -> const app::LoadedModelInfo* {
    if (!admin) return nullptr;
    auto it = loaded.find(ref);
    return it == loaded.end() ? nullptr : it->second;
  };
  // Every model by name (its newest version) and every version as name@N.
  std::map<std::string, std::pair<int64_t, const store::VersionRow*>> newest;  // created, newest version
  json data = json::array();
  for (const auto& v : *versions) {
    auto& c = newest[v.model];
    c.first = std::max(c.first, v.created_at);
    if (c.second == nullptr || v.number > c.second->number) c.second = &v;
  }
  for (const auto& [name, c] : newest) {
    json o = ModelObject(name, c.first);
    AddResidency(o, find(c.second->ref()));
    data.push_back(std::move(o));
  }
  for (const auto& v : *versions) {
    json o = ModelObject(v.ref(), v.created_at);
    AddResidency(o, find(v.ref()));
    data.push_back(std::move(o));
  }
  RespondJson(ex, {{"object", "list"}, {"data", data}});
}

void HandleModel(Service& svc, Exchange& ex, const Caller& caller) {
  app::Context ctx = svc.ContextFor(ex, caller);
  const std::string& ref = ex.request().params.at("model");
  auto v = app::ResolveVersion(ctx, ref);
  if (!v.ok()) {
    if (v.status().code() == absl::StatusCode::kNotFound || v.status().code() == absl::StatusCode::kInvalidArgument) {
      return RespondError(ex, absl::NotFoundError("The model '" + ref + "' does not exist"), "model");
    }
    return RespondError(ex, v.status());
  }
  json o = ModelObject(ref, v->created_at);
  const app::RegistryStats st = State(svc).registry->Stats();
  const app::LoadedModelInfo* info = nullptr;
  for (const auto& m : st.models)
    if (m.ref == v->ref()) info = &m;
  AddResidency(o, info);
  RespondJson(ex, o);
}

json GenSchema(bool chat) {
  json props = {{"model", {{"type", "string"}, {"description", "A model in the store: name or name@N"}}},
                {"max_tokens", {{"type", "integer"}, {"minimum", 1}}},
                {"temperature", {{"type", "number"}, {"minimum", 0}, {"maximum", 2}}},
                {"top_p", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}}},
                {"seed", {{"type", "integer"}}},
                {"stop", {{"oneOf", {{{"type", "string"}}, {{"type", "array"}, {"items", {{"type", "string"}}}}}}}},
                {"stream", {{"type", "boolean"}}},
                {"stream_options", {{"type", "object"}, {"properties", {{"include_usage", {{"type", "boolean"}}}}}}}};
  props["n"] = {{"type", "integer"}, {"minimum", 1}, {"maximum", 8}};
  props["logit_bias"] = {{"type", "object"}, {"additionalProperties", {{"type", "number"}, {"minimum", -100}, {"maximum", 100}}}};
  json req = {"model"};
  if (chat) {
    props["response_format"] = {{"type", "object"},
                                {"properties",
                                 {{"type", {{"type", "string"}, {"enum", {"text", "json_object", "json_schema"}}}},
                                  {"json_schema", {{"type", "object"}}}}}};
    props["tools"] = {{"type", "array"}, {"items", {{"type", "object"}}}};
    props["tool_choice"] = {{"oneOf", {{{"type", "string"}, {"enum", {"auto", "none", "required"}}}, {{"type", "object"}}}}};
    props["messages"] = {{"type", "array"},
                         {"items",
                          {{"type", "object"},
                           {"required", {"role"}},
                           {"properties",
                            {{"role", {{"type", "string"}, {"enum", {"system", "developer", "user", "assistant", "tool"}}}},
                             {"content", {{"type", "string"}}}}}}}};
    props["max_completion_tokens"] = {{"type", "integer"}, {"minimum", 1}};
    props["logprobs"] = {{"type", "boolean"}};
    props["top_logprobs"] = {{"type", "integer"}, {"minimum", 0}, {"maximum", 20}};
    req.push_back("messages");
  } else {
    props["prompt"] = {{"type", "string"}};
    props["logprobs"] = {{"type", "integer"}, {"minimum", 0}, {"maximum", 5}};
    req.push_back("prompt");
  }
  return {{"type", "object"}, {"required", req}, {"properties", props}, {"additionalProperties", false}};
}

}  // namespace

void AddOpenAiRoutes(Service& svc) {
  Router& r = svc.router();
  r.Add({.method = "GET",
         .path = "/v1/models",
         .operation_id = "listModels",
         .summary = "Models in the store, as OpenAI lists them (each name and each name@N).",
         .tag = "openai",
         .handler = [&svc](Exchange& ex, const Caller& c) { HandleModels(svc, ex, c); }});
  r.Add({.method = "GET",
         .path = "/v1/models/{model}",
         .operation_id = "retrieveModel",
         .summary = "One model (name or name@N).",
         .tag = "openai",
         .handler = [&svc](Exchange& ex, const Caller& c) { HandleModel(svc, ex, c); }});
  r.Add({.method = "POST",
         .path = "/v1/chat/completions",
         .operation_id = "createChatCompletion",
         .summary = "Chat completion with the model's own chat template; stream: true answers server-sent events.",
         .tag = "openai",
         .handler = [&svc](Exchange& ex, const Caller& c) { HandleChat(svc, ex, c); },
         .request_schema = GenSchema(true),
         .response_types = {"application/json", "text/event-stream"}});
  r.Add({.method = "POST",
         .path = "/v1/completions",
         .operation_id = "createCompletion",
         .summary = "Text completion of a prompt; stream: true answers server-sent events.",
         .tag = "openai",
         .handler = [&svc](Exchange& ex, const Caller& c) { HandleCompletion(svc, ex, c); },
         .request_schema = GenSchema(false),
         .response_types = {"application/json", "text/event-stream"}});
  r.Add({.method = "POST",
         .path = "/v1/embeddings",
         .operation_id = "createEmbedding",
         .summary = "Embeddings: the mean-pooled final hidden states, unit length.",
         .tag = "openai",
         .handler = [&svc](Exchange& ex, const Caller& c) { HandleEmbeddings(svc, ex, c); },
         .request_schema = {{"type", "object"},
                            {"required", {"model", "input"}},
                            {"properties",
                             {{"model", {{"type", "string"}}},
                              {"input",
                               {{"oneOf",
                                 {{{"type", "string"}}, {{"type", "array"}, {"items", {{"type", "string"}}}}}}}},
                              {"encoding_format", {{"type", "string"}, {"enum", {"float", "base64"}}}}}}}});
}

}  // namespace hart::serve

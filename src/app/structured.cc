#include "app/structured.h"

#include <mutex>
#include <random>
#include <set>

#include "app/models.h"
#include "core/status.h"

namespace hart::app {
namespace {

using nlohmann::json;
namespace g = hart::runtime::grammar;

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", field, why));
}

absl::Status OnlyFields(const json& j, const std::string& field, std::initializer_list<std::string_view> known) {
  if (!j.is_object()) return Bad(field, "expected an object");
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (auto n : known) ok = ok || k == n;
    if (!ok) return Bad(field, fmt::format("unknown field '{}'", k));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> String(const json& j, const std::string& field, const char* key, bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return Bad(field + "." + key, "missing");
    return std::string();
  }
  if (!j[key].is_string()) return Bad(field + "." + key, "expected a string");
  return j[key].get<std::string>();
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

}  // namespace

json ToJson(const ResponseFormat& f) {
  json j = {{"type", f.type}};
  if (f.type == "json_schema") {
    j["json_schema"] = {{"name", f.name}, {"schema", f.schema}, {"strict", f.strict}};
  }
  return j;
}

json ToJson(const ToolFunction& t) {
  json fn = {{"name", t.name}};
  if (!t.description.empty()) fn["description"] = t.description;
  if (!t.parameters.is_null()) fn["parameters"] = t.parameters;
  return {{"type", "function"}, {"function", fn}};
}

json ToJson(const ToolChoice& c) {
  switch (c.mode) {
    case ToolChoice::kAuto: return "auto";
    case ToolChoice::kNone: return "none";
    case ToolChoice::kRequired: return "required";
    case ToolChoice::kFunction: return {{"type", "function"}, {"function", {{"name", c.function}}}};
  }
  return "auto";
}

json ToJson(const ToolCall& c) {
  return {{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
}

absl::StatusOr<ResponseFormat> ResponseFormatFromJson(const json& j, const std::string& field) {
  RETURN_IF_ERROR(OnlyFields(j, field, {"type", "json_schema"}));
  ResponseFormat f;
  ASSIGN_OR_RETURN(f.type, String(j, field, "type", true));
  if (f.type == "text" || f.type == "json_object") {
    if (j.contains("json_schema") && !j["json_schema"].is_null())
      return Bad(field + ".json_schema", "only with type json_schema");
    return f;
  }
  if (f.type != "json_schema")
    return Bad(field + ".type", fmt::format("'{}' is not text, json_object or json_schema", f.type));
  const std::string w = field + ".json_schema";
  if (!j.contains("json_schema")) return Bad(w, "missing");
  const json& s = j["json_schema"];
  RETURN_IF_ERROR(OnlyFields(s, w, {"name", "schema", "strict", "description"}));
  ASSIGN_OR_RETURN(f.name, String(s, w, "name", true));
  if (!ValidName(f.name)) return Bad(w + ".name", "expected 1 to 64 letters, digits, _ or -");
  if (!s.contains("schema") || s["schema"].is_null()) return Bad(w + ".schema", "missing");
  f.schema = s["schema"];
  if (s.contains("strict") && !s["strict"].is_null()) {
    if (!s["strict"].is_boolean()) return Bad(w + ".strict", "expected true or false");
    f.strict = s["strict"].get<bool>();
  }
  RETURN_IF_ERROR(GrammarFor(f).status());
  return f;
}

absl::StatusOr<ToolFunction> ToolFromJson(const json& j, const std::string& field) {
  RETURN_IF_ERROR(OnlyFields(j, field, {"type", "function"}));
  ASSIGN_OR_RETURN(std::string type, String(j, field, "type", true));
  if (type != "function") return Bad(field + ".type", "only \"function\" tools are supported");
  if (!j.contains("function")) return Bad(field + ".function", "missing");
  const std::string w = field + ".function";
  const json& fn = j["function"];
  RETURN_IF_ERROR(OnlyFields(fn, w, {"name", "description", "parameters", "strict"}));
  ToolFunction t;
  ASSIGN_OR_RETURN(t.name, String(fn, w, "name", true));
  if (!ValidName(t.name)) return Bad(w + ".name", "expected 1 to 64 letters, digits, _ or -");
  ASSIGN_OR_RETURN(t.description, String(fn, w, "description", false));
  if (fn.contains("parameters") && !fn["parameters"].is_null()) {
    t.parameters = fn["parameters"];
    if (!t.parameters.is_object()) return Bad(w + ".parameters", "expected a JSON Schema object");
    if (t.parameters.contains("type") && t.parameters["type"] != "object")
      return Bad(w + ".parameters.type", "the arguments must be an object (\"type\": \"object\")");
    auto gr = g::JsonGrammar::FromSchema(t.parameters);
    if (!gr.ok()) return Bad(w + ".parameters", std::string(gr.status().message()));
  }
  return t;
}

absl::StatusOr<ToolChoice> ToolChoiceFromJson(const json& j, const std::string& field) {
  ToolChoice c;
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s == "auto") return c;
    if (s == "none") return c.mode = ToolChoice::kNone, c;
    if (s == "required") return c.mode = ToolChoice::kRequired, c;
    return Bad(field, fmt::format("'{}' is not auto, none, required or {{\"type\":\"function\",...}}", s));
  }
  RETURN_IF_ERROR(OnlyFields(j, field, {"type", "function"}));
  ASSIGN_OR_RETURN(std::string type, String(j, field, "type", true));
  if (type != "function") return Bad(field + ".type", "expected \"function\"");
  if (!j.contains("function")) return Bad(field + ".function", "missing");
  RETURN_IF_ERROR(OnlyFields(j["function"], field + ".function", {"name"}));
  ASSIGN_OR_RETURN(c.function, String(j["function"], field + ".function", "name", true));
  c.mode = ToolChoice::kFunction;
  return c;
}

absl::StatusOr<ToolCall> ToolCallFromJson(const json& j, const std::string& field) {
  RETURN_IF_ERROR(OnlyFields(j, field, {"id", "type", "function", "index"}));
  ToolCall c;
  ASSIGN_OR_RETURN(c.id, String(j, field, "id", false));
  ASSIGN_OR_RETURN(std::string type, String(j, field, "type", false));
  if (!type.empty() && type != "function") return Bad(field + ".type", "expected \"function\"");
  if (!j.contains("function")) return Bad(field + ".function", "missing");
  RETURN_IF_ERROR(OnlyFields(j["function"], field + ".function", {"name", "arguments"}));
  ASSIGN_OR_RETURN(c.name, String(j["function"], field + ".function", "name", true));
  ASSIGN_OR_RETURN(c.arguments, String(j["function"], field + ".function", "arguments", true));
  return c;
}

absl::StatusOr<std::shared_ptr<const g::JsonGrammar>> GrammarFor(const ResponseFormat& f) {
  if (f.type == "json_object") return g::JsonGrammar::AnyObject();
  if (f.type != "json_schema") return std::shared_ptr<const g::JsonGrammar>();
  auto gr = g::JsonGrammar::FromSchema(f.schema);
  if (!gr.ok()) return Bad("response_format.json_schema.schema", std::string(gr.status().message()));
  return gr;
}

absl::Status ValidateTools(std::span<const ToolFunction> tools, const ToolChoice& choice) {
  std::set<std::string> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    if (!names.insert(tools[i].name).second)
      return Bad(fmt::format("tools[{}].function.name", i), fmt::format("'{}' is defined twice", tools[i].name));
  }
  if (choice.mode == ToolChoice::kRequired && tools.empty()) return Bad("tool_choice", "\"required\" needs tools");
  if (choice.mode == ToolChoice::kFunction && !names.count(choice.function))
    return Bad("tool_choice.function.name", fmt::format("'{}' is not one of the tools", choice.function));
  return absl::OkStatus();
}

namespace {
absl::StatusOr<std::vector<uint32_t>> CallNodes(g::JsonGrammar::Builder& b, const runtime::ToolCallSyntax& syn,
                                                std::span<const ToolFunction> tools, const ToolChoice& choice) {
  std::vector<uint32_t> calls;
  for (size_t i = 0; i < tools.size(); ++i) {
    const ToolFunction& t = tools[i];
    if (choice.mode == ToolChoice::kFunction && t.name != choice.function) continue;
    uint32_t args = 0;
    if (t.parameters.is_null()) {
      args = b.Object({});
    } else {
      auto a = b.Schema(t.parameters, "#");
      if (!a.ok()) return Bad(fmt::format("tools[{}].function.parameters", i), std::string(a.status().message()));
      args = *a;
    }
    calls.push_back(b.Object({{"name", b.Literal(json(t.name).dump())}, {syn.args_key, args}}));
  }
  return calls;
}
}  // namespace

absl::StatusOr<std::shared_ptr<const g::JsonGrammar>> ForcedToolGrammar(runtime::ChatFormat f,
                                                                         std::span<const ToolFunction> tools,
                                                                         const ToolChoice& choice) {
  if (choice.mode != ToolChoice::kRequired && choice.mode != ToolChoice::kFunction)
    return std::shared_ptr<const g::JsonGrammar>();
  const runtime::ToolCallSyntax syn = runtime::ToolSyntax(f);
  g::JsonGrammar::Builder b;
  ASSIGN_OR_RETURN(std::vector<uint32_t> calls, CallNodes(b, syn, tools, choice));
  uint32_t root = calls.size() == 1 ? calls[0] : b.Union(calls);
  if (syn.array) root = b.Array(root, 1, -1);
  auto gr = b.Build(root);
  if (!gr.ok()) return Bad("tools", std::string(gr.status().message()));
  return gr;
}


absl::StatusOr<std::shared_ptr<const g::JsonGrammar>> TriggeredToolGrammar(runtime::ChatFormat f,
                                                                            std::span<const ToolFunction> tools) {
  if (tools.empty()) return std::shared_ptr<const g::JsonGrammar>();
  const runtime::ToolCallSyntax syn = runtime::ToolSyntax(f);
  g::JsonGrammar::Builder b;
  ASSIGN_OR_RETURN(std::vector<uint32_t> calls, CallNodes(b, syn, tools, ToolChoice{}));
  const uint32_t call = calls.size() == 1 ? calls[0] : b.Union(calls);
  uint32_t root = call;
  if (syn.opener == "<tool_call>") {
    root = b.Union({b.Sequence({b.Literal("\n"), call}), call});
  } else if (syn.array) {
    root = b.Array(call, 1, -1);  // mistral: [{...}, ...]
  }
  auto gr = b.Build(root);
  if (!gr.ok()) return Bad("tools", std::string(gr.status().message()));
  return gr;
}

OpeningTrigger OpeningTriggerFor(runtime::ChatFormat f) {
  switch (f) {
    case runtime::ChatFormat::kLlama3: return {true, "<|python_tag|>", "{"};
    case runtime::ChatFormat::kMistral: return {true, "[TOOL_CALLS]", "["};
    default: return {};
  }
}

json ToolsJson(std::span<const ToolFunction> tools) {
  json a = json::array();
  for (const ToolFunction& t : tools) a.push_back(ToJson(t));
  return a;
}

absl::Status CheckLogitBias(const std::map<int32_t, float>& bias, int32_t vocab_size) {
  if (bias.size() > 300) return Bad("logit_bias", "at most 300 tokens");
  for (const auto& [id, v] : bias) {
    if (id < 0 || id >= vocab_size)
      return Bad("logit_bias", fmt::format("token id {} is outside the vocabulary (0..{})", id, vocab_size - 1));
    if (!(v >= -100 && v <= 100)) return Bad("logit_bias", fmt::format("bias of token {} must be in -100..100", id));
  }
  return absl::OkStatus();
}

std::shared_ptr<const g::TokenIndex> TokenIndexFor(const std::shared_ptr<const LoadedModel>& m) {
  struct Entry {
    std::weak_ptr<const LoadedModel> model;
    std::shared_ptr<const g::TokenIndex> index;
  };
  static std::mutex mu;
  static std::map<const LoadedModel*, Entry> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    std::erase_if(cache, [](const auto& e) { return e.second.model.expired(); });
    if (auto it = cache.find(m.get()); it != cache.end()) return it->second.index;
  }
  auto ix = g::TokenIndex::FromTokenizer(*m->tokenizer);
  std::lock_guard<std::mutex> lock(mu);
  cache[m.get()] = Entry{m, ix};
  return ix;
}

std::string NewToolCallId() {
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % 62];
  return id;
}

ToolCallStreamFilter::ToolCallStreamFilter(runtime::ChatFormat f, bool forced) : format_(f), forced_(forced) {}

std::string ToolCallStreamFilter::Push(std::string_view text) {
  if (forced_ || found_) {
    held_ = held_ || !text.empty();
    return "";
  }
  pending_.append(text);
  const std::string opener = runtime::ToolSyntax(format_).opener;
  if (format_ == runtime::ChatFormat::kLlama3 || format_ == runtime::ChatFormat::kMistral) {
    // A call is the whole output: decided by its first visible character.
    if (decided_) {
      std::string out;
      out.swap(pending_);
      return out;
    }
    size_t i = pending_.find_first_not_of(" \t\r\n");
    if (i == std::string::npos) return "";
    if (pending_.compare(i, opener.size(), opener) == 0) {
      found_ = held_ = true;
      return "";
    }
    decided_ = true;
    std::string out;
    out.swap(pending_);
    return out;
  }
  // Hermes: text before the first <tool_call> shows; a possible start of
  // one at the end waits for the next piece.
  size_t at = pending_.find(opener);
  if (at != std::string::npos) {
    found_ = held_ = true;
    std::string out = pending_.substr(0, at);
    pending_.clear();
    return out;
  }
  size_t keep = 0;
  for (size_t n = std::min(opener.size() - 1, pending_.size()); n > 0; --n) {
    if (pending_.compare(pending_.size() - n, n, opener, 0, n) == 0) {
      keep = n;
      break;
    }
  }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

}  // namespace hart::app

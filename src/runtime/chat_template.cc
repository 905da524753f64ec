#include "runtime/chat_template.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "core/status.h"

namespace hart::runtime {
namespace {

struct FormatName {
  ChatFormat format;
  std::string_view name;
};
constexpr FormatName kFormatNames[] = {
    {ChatFormat::kLlama3, "llama3"}, {ChatFormat::kChatml, "chatml"},
    {ChatFormat::kMistral, "mistral"}, {ChatFormat::kLlama2, "llama2"},
    {ChatFormat::kGemma, "gemma"},   {ChatFormat::kPhi3, "phi3"},
};

bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// Python's str.strip() / Jinja's trim: ASCII whitespace at both ends.
std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Formats without a system turn fold the system text into the first user
// message, separated by a blank line (what Mistral's and Gemma's published
// templates do, and llama.cpp for the others).
std::vector<ChatMessage> FoldSystem(std::span<const ChatMessage> messages) {
  std::vector<ChatMessage> out;
  std::string system;
  for (const ChatMessage& m : messages) {
    if (m.role == ChatRole::kSystem) {
      if (!system.empty()) system += "\n\n";
      system += m.content;
      continue;
    }
    if (m.role == ChatRole::kUser && !system.empty()) {
      out.push_back({m.role, system + "\n\n" + m.content});
      system.clear();
      continue;
    }
    out.push_back(m);
  }
  if (!system.empty()) out.push_back({ChatRole::kUser, system});
  return out;
}

std::string Llama3(std::span<const ChatMessage> messages, bool gen) {
  std::string s;
  for (const ChatMessage& m : messages) {
    s += "<|start_header_id|>";
    s += ChatRoleName(m.role);
    s += "<|end_header_id|>\n\n";
    s += Trim(m.content);
    s += "<|eot_id|>";
  }
  if (gen) s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return s;
}

std::string Chatml(std::span<const ChatMessage> messages, bool gen) {
  std::string s;
  for (const ChatMessage& m : messages) {
    s += "<|im_start|>";
    s += ChatRoleName(m.role);
    s += "\n";
    s += m.content;
    s += "<|im_end|>\n";
  }
  if (gen) s += "<|im_start|>assistant\n";
  return s;
}

std::string Mistral(std::span<const ChatMessage> messages) {
  std::string s;
  for (const ChatMessage& m : FoldSystem(messages)) {
    if (m.role == ChatRole::kUser) {
      s += "[INST] " + m.content + " [/INST]";
    } else {
      s += m.content + "</s>";
    }
  }
  return s;
}

std::string Llama2(std::span<const ChatMessage> messages) {
  std::string s;
  std::string system;
  bool first_turn = true;
  for (const ChatMessage& m : messages) {
    switch (m.role) {
      case ChatRole::kSystem:
        system = std::string(Trim(m.content));
        break;
      case ChatRole::kTool:  // folded into user turns before (HermesFold)
      case ChatRole::kUser:
        // BOS of the first turn comes from the tokenizer; later turns spell it.
        if (!first_turn) s += "<s>";
        s += "[INST] ";
        if (!system.empty()) {
          s += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
          system.clear();
        }
        s += Trim(m.content);
        s += " [/INST]";
        first_turn = false;
        break;
      case ChatRole::kAssistant:
        s += " ";
        s += Trim(m.content);
        s += " </s>";
        first_turn = false;
        break;
    }
  }
  return s;
}

std::string Gemma(std::span<const ChatMessage> messages, bool gen) {
  std::string s;
  for (const ChatMessage& m : FoldSystem(messages)) {
    s += "<start_of_turn>";
    s += m.role == ChatRole::kAssistant ? "model" : "user";
    s += "\n";
    s += Trim(m.content);
    s += "<end_of_turn>\n";
  }
  if (gen) s += "<start_of_turn>model\n";
  return s;
}

std::string Phi3(std::span<const ChatMessage> messages, bool gen) {
  std::string s;
  for (const ChatMessage& m : messages) {
    s += "<|";
    s += ChatRoleName(m.role);
    s += "|>\n";
    s += m.content;
    s += "<|end|>\n";
  }
  if (gen) s += "<|assistant|>\n";
  return s;
}

}  // namespace

std::string_view ChatFormatName(ChatFormat f) {
  for (const FormatName& n : kFormatNames) {
    if (n.format == f) return n.name;
  }
  return "unknown";
}

absl::StatusOr<ChatFormat> ChatFormatFromName(std::string_view name) {
  for (const FormatName& n : kFormatNames) {
    if (n.name == name) return n.format;
  }
  return absl::InvalidArgumentError(fmt::format(
      "unknown chat format '{}' (llama3, chatml, mistral, llama2, gemma, phi3)", name));
}

std::string_view ChatRoleName(ChatRole r) {
  switch (r) {
    case ChatRole::kSystem: return "system";
    case ChatRole::kUser: return "user";
    case ChatRole::kAssistant: return "assistant";
    case ChatRole::kTool: return "tool";
  }
  return "user";
}

absl::StatusOr<ChatRole> ChatRoleFromName(std::string_view name) {
  for (ChatRole r : {ChatRole::kSystem, ChatRole::kUser, ChatRole::kAssistant, ChatRole::kTool}) {
    if (ChatRoleName(r) == name) return r;
  }
  return absl::InvalidArgumentError(
      fmt::format("unknown chat role '{}' (system, user, assistant, tool)", name));
}

std::optional<ChatFormat> ChatFormatFromTemplate(std::string_view t) {
  if (Contains(t, "<|start_header_id|>") && Contains(t, "<|end_header_id|>")) return ChatFormat::kLlama3;
  if (Contains(t, "<|im_start|>")) return ChatFormat::kChatml;
  if (Contains(t, "<start_of_turn>")) return ChatFormat::kGemma;
  // Zephyr also writes <|user|>, but ends turns with </s>.
  if (Contains(t, "<|user|>") && Contains(t, "<|end|>")) return ChatFormat::kPhi3;
  if (Contains(t, "[INST]")) return Contains(t, "<<SYS>>") ? ChatFormat::kLlama2 : ChatFormat::kMistral;
  return std::nullopt;
}

namespace {

// Template text first, then marker tokens, then the architecture.
absl::StatusOr<ChatFormat> Detect(const std::optional<std::string>& jinja,
                                  const std::function<bool(std::string_view)>& has, const std::string& arch) {
  if (jinja) {
    if (auto f = ChatFormatFromTemplate(*jinja)) return *f;
  }
  if (has("<|start_header_id|>")) return ChatFormat::kLlama3;
  if (has("<|im_start|>")) return ChatFormat::kChatml;
  if (has("<start_of_turn>")) return ChatFormat::kGemma;
  if (has("<|user|>") && has("<|end|>")) return ChatFormat::kPhi3;
  if (has("[INST]")) return ChatFormat::kMistral;
  if (arch.starts_with("qwen")) return ChatFormat::kChatml;
  if (arch.starts_with("gemma")) return ChatFormat::kGemma;
  if (arch == "phi3") return ChatFormat::kPhi3;
  if (arch == "mistral") return ChatFormat::kMistral;
  if (arch == "llama") return ChatFormat::kLlama2;  // an SPM llama without markers: Llama 2 chat
  return absl::NotFoundError(fmt::format(
      "no chat template recognized (chat_template, marker tokens, architecture '{}')", arch));
}

}  // namespace

absl::StatusOr<ChatFormat> DetectChatFormat(const formats::GgufMetadata& md) {
  auto tokens = md.GetStringArray("tokenizer.ggml.tokens");
  return Detect(
      md.GetString("tokenizer.chat_template"),
      [&](std::string_view s) { return tokens && std::find(tokens->begin(), tokens->end(), s) != tokens->end(); },
      md.GetString("general.architecture").value_or(""));
}

absl::StatusOr<ChatFormat> DetectChatFormat(const Tokenizer& tok, std::string_view arch) {
  std::optional<std::string> jinja;
  if (!tok.chat_template().empty()) jinja = tok.chat_template();
  return Detect(jinja, [&](std::string_view s) { return tok.TokenId(s).has_value(); }, std::string(arch));
}

namespace {

using nlohmann::json;

bool HasTools(const json& tools) { return tools.is_array() && !tools.empty(); }

bool HasToolParts(std::span<const ChatMessage> messages) {
  for (const ChatMessage& m : messages)
    if (m.role == ChatRole::kTool || !m.tool_calls.empty()) return true;
  return false;
}

// The arguments as JSON (a string when they are not JSON).
json Arguments(const std::string& a) {
  json j = json::parse(a, nullptr, false);
  return j.is_discarded() ? json(a) : j;
}

std::string Plain(std::span<const ChatMessage> messages, ChatFormat f, bool gen);

// Qwen 2/2.5/3 (Hermes-style): the tools in the system turn, calls as
// <tool_call> blocks in the assistant's turn, results as <tool_response>
// blocks in a user turn.
std::vector<ChatMessage> HermesFold(std::span<const ChatMessage> messages, const json& tools) {
  std::vector<ChatMessage> out;
  if (HasTools(tools)) {
    std::string block =
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const json& t : tools) block += "\n" + PyJson(t);
    block +=
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call>";
    if (!messages.empty() && messages[0].role == ChatRole::kSystem) {
      out.push_back({ChatRole::kSystem, messages[0].content + "\n\n" + block});
      messages = messages.subspan(1);
    } else {
      out.push_back({ChatRole::kSystem, block});
    }
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == ChatRole::kAssistant && !m.tool_calls.empty()) {
      std::string c = m.content;
      for (const ToolCallText& call : m.tool_calls) {
        if (!c.empty()) c += "\n";
        c += "<tool_call>\n{\"name\": " + PyJson(call.name) + ", \"arguments\": " +
             PyJson(Arguments(call.arguments)) + "}\n</tool_call>";
      }
      out.push_back({ChatRole::kAssistant, c});
    } else if (m.role == ChatRole::kTool) {
      std::string c;
      for (; i < messages.size() && messages[i].role == ChatRole::kTool; ++i) {
        if (!c.empty()) c += "\n";
        c += "<tool_response>\n" + messages[i].content + "\n</tool_response>";
      }
      --i;
      out.push_back({ChatRole::kUser, c});
    } else {
      out.push_back({m.role, m.content});
    }
  }
  return out;
}

// Llama 3.1's JSON tool calling, tools in the first user message.
std::string Llama3Tools(std::span<const ChatMessage> messages, bool gen, const json& tools) {
  std::string s;
  const bool has = HasTools(tools);
  std::string system;
  if (!messages.empty() && messages[0].role == ChatRole::kSystem) {
    system = std::string(Trim(messages[0].content));
    messages = messages.subspan(1);
  }
  if (has || !system.empty()) {
    s += "<|start_header_id|>system<|end_header_id|>\n\n";
    if (has) s += "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
    s += system + "<|eot_id|>";
  }
  bool first_user = true;
  for (const ChatMessage& m : messages) {
    std::string role(ChatRoleName(m.role)), content(Trim(m.content));
    if (m.role == ChatRole::kUser && has && first_user) {
      std::string pre =
          "Given the following functions, please respond with a JSON for a function call with its proper "
          "arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, "
          "\"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n";
      for (const json& t : tools) pre += t.dump(4) + "\n\n";
      content = pre + content;
      first_user = false;
    } else if (m.role == ChatRole::kTool) {
      role = "ipython";
    } else if (m.role == ChatRole::kAssistant && !m.tool_calls.empty()) {
      content.clear();
      for (const ToolCallText& c : m.tool_calls) {
        if (!content.empty()) content += "\n";
        content += "{\"name\": \"" + c.name + "\", \"parameters\": " + PyJson(Arguments(c.arguments)) + "}";
      }
    }
    s += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>";
  }
  if (gen) s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return s;
}

// Mistral v3: [AVAILABLE_TOOLS] before the last user turn, [TOOL_CALLS] and [TOOL_RESULTS].
std::string MistralTools(std::span<const ChatMessage> messages, const json& tools) {
  std::vector<ChatMessage> ms = FoldSystem(messages);
  size_t last_user = ms.size();
  for (size_t i = 0; i < ms.size(); ++i)
    if (ms[i].role == ChatRole::kUser) last_user = i;
  std::string s;
  for (size_t i = 0; i < ms.size(); ++i) {
    const ChatMessage& m = ms[i];
    if (m.role == ChatRole::kUser) {
      if (i == last_user && HasTools(tools)) s += "[AVAILABLE_TOOLS] " + PyJson(tools) + "[/AVAILABLE_TOOLS]";
      s += "[INST] " + m.content + " [/INST]";
    } else if (m.role == ChatRole::kTool) {
      s += "[TOOL_RESULTS] {\"content\": " + PyJson(m.content) + ", \"call_id\": " + PyJson(m.tool_call_id) +
           "}[/TOOL_RESULTS]";
    } else if (!m.tool_calls.empty()) {
      std::string calls;
      for (const ToolCallText& c : m.tool_calls) {
        calls += calls.empty() ? "[" : ", ";
        calls += "{\"name\": " + PyJson(c.name) + ", \"arguments\": " + PyJson(Arguments(c.arguments)) +
                 ", \"id\": " + PyJson(c.id) + "}";
      }
      s += "[TOOL_CALLS] " + calls + "]</s>";
    } else {
      s += m.content + "</s>";
    }
  }
  return s;
}

std::optional<ToolCallText> CallOf(const json& j, const std::string& args_key) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  const json* a = nullptr;
  for (const std::string& k : {args_key, std::string("arguments"), std::string("parameters")})
    if (j.contains(k)) {
      a = &j[k];
      break;
    }
  if (a == nullptr) return std::nullopt;
  json args = a->is_string() ? json::parse(a->get<std::string>(), nullptr, false) : *a;
  if (!args.is_object()) return std::nullopt;
  ToolCallText c;
  c.name = j["name"].get<std::string>();
  c.arguments = args.dump();
  if (j.contains("id") && j["id"].is_string()) c.id = j["id"].get<std::string>();
  return c;
}

}  // namespace

std::string PyJson(const nlohmann::json& j) {
  if (j.is_object()) {
    std::string s = "{";
    bool first = true;
    for (const auto& [k, v] : j.items()) {
      if (!first) s += ", ";
      first = false;
      s += json(k).dump() + ": " + PyJson(v);
    }
    return s + "}";
  }
  if (j.is_array()) {
    std::string s = "[";
    for (size_t i = 0; i < j.size(); ++i) s += (i ? ", " : "") + PyJson(j[i]);
    return s + "]";
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ToolCallSyntax ToolSyntax(ChatFormat f) {
  switch (f) {
    case ChatFormat::kLlama3: return {"", "parameters", false, "{"};
    case ChatFormat::kMistral: return {"[TOOL_CALLS]", "arguments", true, "["};
    default: return {"<tool_call>\n", "arguments", false, "<tool_call>"};
  }
}

std::vector<ToolCallText> ParseToolCalls(ChatFormat f, std::string_view text, std::string* content) {
  const ToolCallSyntax syn = ToolSyntax(f);
  std::vector<ToolCallText> calls;
  std::string_view t = Trim(text);
  if (f == ChatFormat::kLlama3 || f == ChatFormat::kMistral) {
    for (std::string_view tag : {"<|python_tag|>", "[TOOL_CALLS]"})
      if (t.starts_with(tag)) t = Trim(t.substr(tag.size()));
    json j = json::parse(t, nullptr, false);
    if (syn.array ? !j.is_array() : !j.is_object()) return {};
    if (!syn.array) j = json::array({j});
    for (const json& e : j) {
      auto c = CallOf(e, syn.args_key);
      if (!c) return {};
      calls.push_back(*c);
    }
    if (content) content->clear();
    return calls;
  }
  size_t pos = text.find("<tool_call>");
  if (pos == std::string_view::npos) return {};
  std::string before(Trim(text.substr(0, pos)));
  while (pos != std::string_view::npos) {
    size_t start = pos + std::string_view("<tool_call>").size();
    size_t end = text.find("</tool_call>", start);
    auto c = CallOf(json::parse(Trim(text.substr(start, end == std::string_view::npos ? text.npos : end - start)),
                                nullptr, false),
                    syn.args_key);
    if (!c) return {};
    calls.push_back(*c);
    if (end == std::string_view::npos) break;
    pos = text.find("<tool_call>", end);
  }
  if (content) *content = before;
  return calls;
}

std::string ApplyChatTemplate(ChatFormat f, std::span<const ChatMessage> messages,
                              bool add_generation_prompt, const nlohmann::json& tools) {
  if (HasTools(tools) || HasToolParts(messages)) {
    switch (f) {
      case ChatFormat::kLlama3: return Llama3Tools(messages, add_generation_prompt, tools);
      case ChatFormat::kMistral: return MistralTools(messages, tools);
      default: {
        std::vector<ChatMessage> folded = HermesFold(messages, tools);
        return Plain(folded, f, add_generation_prompt);
      }
    }
  }
  return Plain(messages, f, add_generation_prompt);
}

namespace {
std::string Plain(std::span<const ChatMessage> messages, ChatFormat f, bool add_generation_prompt) {
  switch (f) {
    case ChatFormat::kLlama3: return Llama3(messages, add_generation_prompt);
    case ChatFormat::kChatml: return Chatml(messages, add_generation_prompt);
    case ChatFormat::kMistral: return Mistral(messages);
    case ChatFormat::kLlama2: return Llama2(messages);
    case ChatFormat::kGemma: return Gemma(messages, add_generation_prompt);
    case ChatFormat::kPhi3: return Phi3(messages, add_generation_prompt);
  }
  return {};
}

}  // namespace

}  // namespace hart::runtime

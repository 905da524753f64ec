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
  }
  return "user";
}

absl::StatusOr<ChatRole> ChatRoleFromName(std::string_view name) {
  for (ChatRole r : {ChatRole::kSystem, ChatRole::kUser, ChatRole::kAssistant}) {
    if (ChatRoleName(r) == name) return r;
  }
  return absl::InvalidArgumentError(
      fmt::format("unknown chat role '{}' (system, user, assistant)", name));
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

std::string ApplyChatTemplate(ChatFormat f, std::span<const ChatMessage> messages,
                              bool add_generation_prompt) {
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

}  // namespace hart::runtime

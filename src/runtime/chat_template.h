// Chat templates: a conversation of (role, content) messages turned into
// the prompt text a chat model was trained on. GGUF files carry the HF Jinja
// template (tokenizer.chat_template); instead of running Jinja, the family
// is recognized by its markers and rendered by a fixed function per family,
// as llama.cpp's built-in templates do.
//
// The rendered text starts after BOS: encode it with
// add_bos = tokenizer.add_bos_default() and parse_special = true, so the
// markers (<|eot_id|>, <|im_start|>, ...) become their control tokens.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "formats/gguf.h"
#include "runtime/tokenizer.h"

namespace hart::runtime {

enum class ChatFormat {
  kLlama3,   // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  kChatml,   // <|im_start|>role\ncontent<|im_end|>\n (Qwen, many fine-tunes)
  kMistral,  // [INST] user [/INST]assistant</s>
  kLlama2,   // [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>
  kGemma,    // <start_of_turn>user\ncontent<end_of_turn>\n, assistant is "model"
  kPhi3,     // <|user|>\ncontent<|end|>\n<|assistant|>\n
};

// "llama3", "chatml", "mistral", "llama2", "gemma", "phi3".
std::string_view ChatFormatName(ChatFormat f);
absl::StatusOr<ChatFormat> ChatFormatFromName(std::string_view name);

enum class ChatRole { kSystem, kUser, kAssistant };
std::string_view ChatRoleName(ChatRole r);  // "system", "user", "assistant"
absl::StatusOr<ChatRole> ChatRoleFromName(std::string_view name);

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string content;
};

// The family of a Jinja chat template, from the markers it contains.
std::optional<ChatFormat> ChatFormatFromTemplate(std::string_view jinja);

// The family for a model: tokenizer.chat_template when present and
// recognized; else the marker tokens its vocabulary holds; else
// general.architecture. NotFound when nothing identifies one.
absl::StatusOr<ChatFormat> DetectChatFormat(const formats::GgufMetadata& md);

// The prompt text of `messages`; with add_generation_prompt it ends with the
// header that opens the assistant's turn.
// The same for a tokenizer from tokenizer.json: its chat_template, its
// marker tokens, then `arch` (ArchName of the model's config).
absl::StatusOr<ChatFormat> DetectChatFormat(const Tokenizer& tok, std::string_view arch);

std::string ApplyChatTemplate(ChatFormat f, std::span<const ChatMessage> messages,
                              bool add_generation_prompt);

}  // namespace hart::runtime

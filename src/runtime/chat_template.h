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
#include "nlohmann/json.hpp"
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

enum class ChatRole { kSystem, kUser, kAssistant, kTool };
std::string_view ChatRoleName(ChatRole r);  // "system", "user", "assistant", "tool"
absl::StatusOr<ChatRole> ChatRoleFromName(std::string_view name);

// A function call the assistant made: arguments is the JSON text of an object.
struct ToolCallText {
  std::string id;
  std::string name;
  std::string arguments;
};

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string content;
  std::vector<ToolCallText> tool_calls;  // assistant
  std::string tool_call_id;              // tool: the call this answers
  std::string name;                      // tool: the function's name
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

// `tools`: OpenAI tool definitions ([{"type":"function","function":{name,
// description, parameters}}]), null or empty for none. Each family renders
// them, the assistant's tool calls and the tool results its own way:
// llama3 as Llama 3.1's JSON tool calling (tools in the first user turn,
// results in "ipython" turns), mistral with [AVAILABLE_TOOLS] / [TOOL_CALLS]
// / [TOOL_RESULTS], chatml as Qwen 2/2.5/3's Hermes-style <tools>,
// <tool_call> and <tool_response>; the other families get the Hermes text
// folded into their plain turns.
std::string ApplyChatTemplate(ChatFormat f, std::span<const ChatMessage> messages,
                              bool add_generation_prompt, const nlohmann::json& tools = nullptr);

// How a family writes tool calls in its output.
struct ToolCallSyntax {
  std::string forced_prefix;  // appended to the prompt when a call is forced ("<tool_call>\n")
  std::string args_key;       // "arguments" ("parameters" for llama3)
  bool array = false;         // the calls are one JSON array (mistral)
  std::string opener;         // text that starts a call in free output
};
ToolCallSyntax ToolSyntax(ChatFormat f);

// The tool calls in a generated text, in the family's syntax: `content`
// gets the text outside them. Empty when the text holds no well-formed call.
std::vector<ToolCallText> ParseToolCalls(ChatFormat f, std::string_view text, std::string* content);

// JSON as Python's json.dumps writes it (", " and ": "), as the
// templates' tojson renders tool definitions and arguments.
std::string PyJson(const nlohmann::json& j);

}  // namespace hart::runtime

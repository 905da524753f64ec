// Structured output and tool calls for app/generate: the request shapes
// (response_format, tools, tool_choice, tool calls) with their JSON, and
// what turns them into a grammar (runtime/grammar) for the sampler.
//
// A json_schema response format, or a forced tool call (tool_choice
// "required" or a named function), becomes a JsonGrammar; the generation
// then samples only tokens the grammar allows, so the output parses and
// validates whatever the model wants. Errors are InvalidArgument naming the
// field ("response_format.json_schema.schema: schema #/properties/a: ...",
// "tools[1].function.parameters: ...", "tool_choice: ...").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/chat_template.h"
#include "runtime/grammar/json_grammar.h"
#include "runtime/grammar/token_mask.h"

namespace hart::app {

struct LoadedModel;

struct ResponseFormat {
  std::string type = "text";  // "text", "json_object" or "json_schema"
  std::string name;           // json_schema.name
  nlohmann::json schema;      // json_schema.schema
  bool strict = false;        // json_schema.strict (always enforced here)
};

struct ToolFunction {
  std::string name;
  std::string description;
  nlohmann::json parameters;  // a JSON Schema of the arguments object; null: no arguments
};

struct ToolChoice {
  enum Mode : uint8_t { kAuto, kNone, kRequired, kFunction };
  Mode mode = kAuto;
  std::string function;  // kFunction: the function it must call
};

struct ToolCall {
  std::string id;         // "call_..."
  std::string name;       // the function
  std::string arguments;  // JSON text of the arguments object
};

// OpenAI's shapes: {"type":"json_schema","json_schema":{"name","schema","strict"}};
// {"type":"function","function":{"name","description","parameters"}};
// "auto" | "none" | "required" | {"type":"function","function":{"name"}};
// {"id","type":"function","function":{"name","arguments"}}. FromJson:
// InvalidArgument naming `field` and what is wrong.
nlohmann::json ToJson(const ResponseFormat& f);
nlohmann::json ToJson(const ToolFunction& t);
nlohmann::json ToJson(const ToolChoice& c);
nlohmann::json ToJson(const ToolCall& c);
absl::StatusOr<ResponseFormat> ResponseFormatFromJson(const nlohmann::json& j, const std::string& field);
absl::StatusOr<ToolFunction> ToolFromJson(const nlohmann::json& j, const std::string& field);
absl::StatusOr<ToolChoice> ToolChoiceFromJson(const nlohmann::json& j, const std::string& field);
absl::StatusOr<ToolCall> ToolCallFromJson(const nlohmann::json& j, const std::string& field);

// The grammar of a response format; null for "text".
absl::StatusOr<std::shared_ptr<const runtime::grammar::JsonGrammar>> GrammarFor(const ResponseFormat& f);

// Function names unique and [A-Za-z0-9_-]{1,64}, parameters a supported
// schema of an object, the choice naming one of them (tools named, when
// required or named).
absl::Status ValidateTools(std::span<const ToolFunction> tools, const ToolChoice& choice);

// For "required" or a named function: the grammar of the output after
// runtime::ToolSyntax(f).forced_prefix (a call object, or for mistral an
// array of them), arguments constrained by the parameters. Null otherwise.
absl::StatusOr<std::shared_ptr<const runtime::grammar::JsonGrammar>> ForcedToolGrammar(
    runtime::ChatFormat f, std::span<const ToolFunction> tools, const ToolChoice& choice);

// For "auto": the grammar of a call as the family writes one in free
// output. Hermes ("<tool_call>" anywhere): what follows the marker (an
// optional newline and a call object). Llama 3.1 and mistral, whose call is
// the whole reply: the call object (llama, {"name":..,"parameters":..}) or
// the array of calls (mistral), applied from the reply's opening (see
// OpeningTriggerFor). Null without tools.
absl::StatusOr<std::shared_ptr<const runtime::grammar::JsonGrammar>> TriggeredToolGrammar(
    runtime::ChatFormat f, std::span<const ToolFunction> tools);

// How a reply opens a call in families whose call is the whole reply
// (runtime::grammar::OpeningGrammarProcessor): a tag, or the JSON's first
// byte. opening false: the call opens anywhere after the marker (Hermes).
struct OpeningTrigger {
  bool opening = false;
  std::string tag;        // "<|python_tag|>", "[TOOL_CALLS]"
  std::string json_open;  // "{", "["
};
OpeningTrigger OpeningTriggerFor(runtime::ChatFormat f);

// The tools as the chat template takes them ([{"type":"function",...}]).
nlohmann::json ToolsJson(std::span<const ToolFunction> tools);

// logit_bias ids inside the vocabulary, biases in -100..100.
absl::Status CheckLogitBias(const std::map<int32_t, float>& bias, int32_t vocab_size);

// The token index (runtime/grammar) of a loaded model's tokenizer, built
// once per loaded model and shared.
std::shared_ptr<const runtime::grammar::TokenIndex> TokenIndexFor(const std::shared_ptr<const LoadedModel>& m);

// "call_" and 24 random letters and digits.
std::string NewToolCallId();

// While a chat with tools streams: passes text through until it may be a
// tool call, which is held back (parsed at the end instead).
class ToolCallStreamFilter {
 public:
  ToolCallStreamFilter(runtime::ChatFormat f, bool forced);
  // The part of the accumulated text that may be shown now.
  std::string Push(std::string_view text);
  // Whether anything was held back.
  bool held() const { return held_; }

 private:
  runtime::ChatFormat format_;
  bool forced_;
  bool decided_ = false;  // llama3/mistral: the start showed it is not a call
  bool held_ = false;
  bool found_ = false;    // the opener was seen: nothing more is shown
  std::string pending_;
};

}  // namespace hart::app

// Generation use cases: completion, chat and embeddings over a loaded model,
// as typed requests and responses with their JSON (app-level shapes; the
// server converts OpenAI's wire JSON to and from them, the CLI renders them).
//
// Every call makes its own runtime::Session, so any number run at once on one
// shared LoadedModel. Streaming is a callback per step; cancellation is a
// CancelToken checked before every forward pass. A ChatSession keeps its KV
// cache across turns: each turn runs only the tokens after the longest prefix
// the chat template renders the same as before.
//
// Errors: InvalidArgument for a malformed request (field named), NotFound for
// an unknown model, OutOfRange when the prompt does not fit the context
// (unless truncate). Cancellation is not an error: finish_reason "cancelled".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "app/models.h"
#include "app/structured.h"
#include "core/cancel.h"
#include "nlohmann/json.hpp"
#include "runtime/generate.h"

namespace hart::app {

using runtime::FinishReason;
using runtime::Pooling;

// Sampling and stopping. The defaults are OpenAI's (temperature 1, no top-k,
// top-p or min-p); `hart run` passes its own.
struct GenerationParams {
  int64_t max_tokens = -1;  // < 0: until the context is full
  float temperature = 1.0f;  // <= 0: greedy
  float top_p = 1.0f;        // >= 1: off
  int top_k = 0;             // <= 0: off
  float min_p = 0.0f;        // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  std::optional<uint64_t> seed;  // same seed, same output; none: random
  std::vector<std::string> stop;
  bool logprobs = false;  // the chosen tokens' log-probabilities
  int top_logprobs = 0;   // with logprobs: also the N most likely per step (0..20)
  bool truncate = false;  // drop the prompt's oldest tokens rather than fail when it does not fit
  int64_t max_context = 0;  // the session's KV length; 0: prompt + max_tokens, at most the model's
  int n = 1;  // choices (1..8), each its own sequence; with a seed, choice i uses seed + i
  std::map<int32_t, float> logit_bias;  // token id -> -100..100 added to its logit (-100 bans it)
  ResponseFormat response_format;       // json_object / json_schema constrain the output
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens reused from a kept KV cache (chat sessions)
  int64_t total_tokens() const { return prompt_tokens + completion_tokens; }
};

struct TopLogprob {
  int32_t id = -1;
  std::string token;           // the token's text, invalid UTF-8 replaced by U+FFFD
  std::vector<uint8_t> bytes;  // its exact bytes
  float logprob = 0;
};
struct TokenLogprob : TopLogprob {
  std::vector<TopLogprob> top_logprobs;  // most likely first
};

// One streamed step: new text (complete UTF-8, never part of a stop string)
// and the logprobs of the tokens sampled in this step (when asked).
struct StreamDelta {
  std::string_view text;
  std::span<const TokenLogprob> logprobs;
  int index = 0;  // the choice (n > 1)
};
// Returns false to stop (e.g. the client went away): finish_reason "cancelled".
using DeltaFn = std::function<bool(const StreamDelta&)>;

class EngineSet;  // app/engine.h

struct GenerateControl {
  const CancelToken* cancel = nullptr;
  DeltaFn on_delta;  // null: no streaming
  // Set (the server): Complete and Chat run through the model's batching
  // engine and its prompt cache; null: alone on the calling thread.
  EngineSet* engines = nullptr;
};

struct CompletionRequest {
  std::string model;  // "name", "name@3" (or a path, where the registry allows)
  std::string prompt;
  GenerationParams params;
};

struct CompletionChoice {
  std::string text;
  FinishReason finish_reason = FinishReason::kLength;
  std::vector<TokenLogprob> logprobs;
};

struct CompletionResponse {
  std::string model;  // the resolved ref ("name@3")
  std::vector<CompletionChoice> choices;  // n of them; text, finish_reason, logprobs repeat choice 0
  std::string text;
  FinishReason finish_reason = FinishReason::kLength;
  Usage usage;
  std::vector<TokenLogprob> logprobs;  // one per completion token, when asked
  runtime::GenerateStats stats;        // timings, memory (CLI --stats, metrics)
};

// role: "system", "user", "assistant" or "tool".
struct ChatMessage {
  std::string role;
  std::string content;
  std::vector<ToolCall> tool_calls;  // assistant: the calls it made (content may be "")
  std::string tool_call_id;          // tool: the call this result answers
  std::string name;                  // tool: the function's name (optional)
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  GenerationParams params;
  std::string chat_format;  // "" = from the model's metadata; else llama3, chatml, ...
  std::vector<ToolFunction> tools;  // rendered with the model family's own tool-calling template
  ToolChoice tool_choice;           // required / a named function: the grammar forces that call
};

struct ChatChoice {
  ChatMessage message;  // tool calls parsed from the output are in message.tool_calls
  FinishReason finish_reason = FinishReason::kLength;
  std::vector<TokenLogprob> logprobs;
};

struct ChatResponse {
  std::string model;
  std::vector<ChatChoice> choices;  // n of them; message, finish_reason, logprobs repeat choice 0
  ChatMessage message;  // role "assistant"
  FinishReason finish_reason = FinishReason::kLength;
  Usage usage;
  std::vector<TokenLogprob> logprobs;
  runtime::GenerateStats stats;
};

struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> input;  // one embedding per input
  Pooling pooling = Pooling::kMean;
  bool normalize = true;  // unit length, as OpenAI's and llama.cpp's server return
};

struct EmbeddingResponse {
  std::string model;
  std::vector<std::vector<float>> data;  // one per input, in order
  Usage usage;                           // prompt_tokens: all inputs' tokens
};

// JSON of each type ({"model":..., "prompt":..., "params":{...}} and so on;
// the field names are the structs'). FromJson: InvalidArgument naming the
// field for a wrong type, an unknown field, a value out of range.
nlohmann::json ToJson(const GenerationParams& p);
nlohmann::json ToJson(const Usage& u);
nlohmann::json ToJson(const TokenLogprob& l);
nlohmann::json ToJson(const ChatMessage& m);
nlohmann::json ToJson(const CompletionRequest& r);
nlohmann::json ToJson(const CompletionResponse& r);
nlohmann::json ToJson(const ChatRequest& r);
nlohmann::json ToJson(const ChatResponse& r);
nlohmann::json ToJson(const EmbeddingRequest& r);
nlohmann::json ToJson(const EmbeddingResponse& r);
absl::StatusOr<GenerationParams> GenerationParamsFromJson(const nlohmann::json& j);
absl::StatusOr<CompletionRequest> CompletionRequestFromJson(const nlohmann::json& j);
absl::StatusOr<ChatRequest> ChatRequestFromJson(const nlohmann::json& j);
absl::StatusOr<EmbeddingRequest> EmbeddingRequestFromJson(const nlohmann::json& j);

// Checks ranges (temperature >= 0, 0 < top_p <= 1, top_logprobs in 0..20,
// at most 4 stop strings of 1..256 bytes ...): InvalidArgument naming the field.
absl::Status Validate(const GenerationParams& p);

// The text with invalid UTF-8 replaced by U+FFFD (safe to put in JSON).
std::string ValidUtf8(std::string_view s);

// One completion of req.prompt (tokenized with the model's BOS default and
// special tokens parsed). req.model is not looked up: `model` is used.
absl::StatusOr<CompletionResponse> Complete(const std::shared_ptr<const LoadedModel>& model,
                                            const CompletionRequest& req, const GenerateControl& ctl = {});
// The reply to req.messages, with the chat template from the model's
// metadata (or req.chat_format).
absl::StatusOr<ChatResponse> Chat(const std::shared_ptr<const LoadedModel>& model, const ChatRequest& req,
                                  const GenerateControl& ctl = {});
absl::StatusOr<EmbeddingResponse> Embed(const std::shared_ptr<const LoadedModel>& model,
                                        const EmbeddingRequest& req, const CancelToken* cancel = nullptr);

// The same, looking req.model up in the registry.
absl::StatusOr<CompletionResponse> Complete(ModelRegistry& registry, const CompletionRequest& req,
                                            const GenerateControl& ctl = {});
absl::StatusOr<ChatResponse> Chat(ModelRegistry& registry, const ChatRequest& req,
                                  const GenerateControl& ctl = {});
absl::StatusOr<EmbeddingResponse> Embed(ModelRegistry& registry, const EmbeddingRequest& req,
                                        const CancelToken* cancel = nullptr);

struct ChatSessionOptions {
  std::string system;       // "" = no system message
  std::string chat_format;  // "" = from the model's metadata
  int64_t max_context = 0;  // KV length; 0: min(the model's max_context, 4096)
  GenerationParams params;  // per turn (max_context ignored); the seed seeds the whole conversation
};

// A conversation that keeps its KV cache (and its sampler's RNG) across
// turns. One thread at a time.
class ChatSession {
 public:
  static absl::StatusOr<std::unique_ptr<ChatSession>> Create(std::shared_ptr<const LoadedModel> model,
                                                             ChatSessionOptions opts);
  ~ChatSession();

  // Appends a user message, generates the assistant's reply (running only
  // the tokens after the cached prefix) and appends it to messages().
  absl::StatusOr<ChatResponse> Send(std::string user, const GenerateControl& ctl = {});
  // The reply to a whole conversation given by the caller (a server's
  // stateless request), reusing whatever prefix of it the cache holds;
  // messages() becomes `messages` plus the reply.
  absl::StatusOr<ChatResponse> Reply(std::vector<ChatMessage> messages, const GenerateControl& ctl = {});

  const std::vector<ChatMessage>& messages() const { return messages_; }
  runtime::ChatFormat format() const { return format_; }
  const LoadedModel& model() const { return *model_; }

 private:
  ChatSession() = default;
  std::shared_ptr<const LoadedModel> model_;
  ChatSessionOptions opts_;
  runtime::ChatFormat format_ = runtime::ChatFormat::kChatml;
  std::unique_ptr<runtime::Session> session_;
  std::vector<ChatMessage> messages_;
};

}  // namespace hart::app

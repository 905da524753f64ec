// Structured output, tool calls, n > 1 and logit_bias through app::Chat and
// app::Complete on a real store holding a tiny random-weight model, sampled
// at temperature 1: whatever the model wants, every json_schema completion
// parses and validates (checked by tests/runtime/json_schema_validator.h,
// written apart from the grammar compiler), every forced tool call names the
// function with arguments that validate against its parameters.
#include <set>

#include "app/engine.h"
#include "app/generate.h"
#include "app/models.h"
#include "formats/gguf.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/runtime/json_schema_validator.h"
#include "tests/runtime/runtime_fixtures.h"

namespace hart::app {
namespace {

namespace rt = hart::runtime;
using nlohmann::json;

class Structured : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string gguf = rt::testing::MakeFixture("structured_q8", "--type q8_0 --layers 1") + "/model.gguf";
    const std::string dir = rt::testing::FixtureRoot() + "/structured_store";
    ASSERT_TRUE(store::Store::Init(dir).ok());
    auto st = store::Store::Open(dir);
    ASSERT_TRUE(st.ok()) << st.status();
    store_ = new std::shared_ptr<store::Store>(std::move(*st));
    auto src = formats::ReadGguf(gguf);
    ASSERT_TRUE(src.ok()) << src.status();
    store::IngestOptions io;
    io.model = "tiny";
    io.progress = false;
    io.license = "mit";
    ASSERT_TRUE((*store_)->Ingest(*src, io).ok());
    registry_ = new ModelRegistry(*store_, RegistryOptions{.load = {.max_context = 128}});
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete store_;
  }
  static ChatRequest Ask(std::string text, uint64_t seed) {
    ChatRequest r;
    r.model = "tiny";
    r.messages = {{"user", std::move(text)}};
    r.params.temperature = 1.0f;
    r.params.seed = seed;
    return r;
  }
  static std::shared_ptr<store::Store>* store_;
  static ModelRegistry* registry_;
};
std::shared_ptr<store::Store>* Structured::store_ = nullptr;
ModelRegistry* Structured::registry_ = nullptr;

TEST_F(Structured, EveryJsonSchemaCompletionParsesAndValidatesAcrossSchemasAndSeeds) {
  int checked = 0;
  for (const json& schema : hart::testing::TestSchemas()) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      ChatRequest req = Ask("Give me JSON.", seed);
      req.params.response_format.type = "json_schema";
      req.params.response_format.name = "out";
      req.params.response_format.schema = schema;
      auto r = Chat(*registry_, req);
      ASSERT_TRUE(r.ok()) << r.status() << " " << schema.dump();
      EXPECT_EQ(r->finish_reason, FinishReason::kStop) << r->message.content;
      json v = json::parse(r->message.content, nullptr, false);
      ASSERT_FALSE(v.is_discarded()) << schema.dump() << " seed " << seed << ": " << r->message.content;
      EXPECT_EQ(hart::testing::ValidateJson(v, schema, schema), "") << r->message.content;
      ++checked;
    }
  }
  EXPECT_EQ(checked, static_cast<int>(hart::testing::TestSchemas().size()) * 3);
}

TEST_F(Structured, JsonObjectThroughCompletionsWithATokenLimit) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    CompletionRequest req;
    req.model = "tiny";
    req.prompt = "JSON:";
    req.params.seed = seed;
    req.params.max_tokens = 20;
    req.params.response_format.type = "json_object";
    auto r = Complete(*registry_, req);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LE(r->usage.completion_tokens, 20);
    json v = json::parse(r->text, nullptr, false);
    EXPECT_TRUE(v.is_object()) << r->text;
  }
}

TEST_F(Structured, ForcedToolCallsInEachFamilysSyntax) {
  const json weather = json::parse(R"({"type":"object","properties":{"city":{"type":"string"},
      "unit":{"enum":["c","f"]}},"required":["city","unit"]})");
  const json add = json::parse(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
      "required":["a","b"],"additionalProperties":false})");
  for (const char* format : {"chatml", "llama3", "mistral", "gemma"}) {
    for (uint64_t seed = 1; seed <= 2; ++seed) {
      ChatRequest req = Ask("Weather in Paris?", seed);
      req.chat_format = format;
      req.tools = {{"get_weather", "Current weather", weather}, {"add", "Adds", add}};
      req.tool_choice = {ToolChoice::kFunction, "add"};
      req.params.truncate = true;  // the tools do not fit the tiny model's 128 tokens
      auto r = Chat(*registry_, req);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->message.tool_calls.size(), 1u) << format << ": " << r->message.content;
      const ToolCall& c = r->message.tool_calls[0];
      EXPECT_EQ(c.name, "add");  // named: never another one, never auto
      EXPECT_TRUE(c.id.starts_with("call_"));
      json args = json::parse(c.arguments, nullptr, false);
      EXPECT_EQ(hart::testing::ValidateJson(args, add, add), "") << c.arguments;
      // required: one of the tools, its arguments valid for that one.
      req.tool_choice = {ToolChoice::kRequired, ""};
      r = Chat(*registry_, req);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_FALSE(r->message.tool_calls.empty()) << format;
      for (const ToolCall& k : r->message.tool_calls) {
        ASSERT_TRUE(k.name == "add" || k.name == "get_weather") << k.name;
        const json& schema = k.name == "add" ? add : weather;
        EXPECT_EQ(hart::testing::ValidateJson(json::parse(k.arguments), schema, schema), "") << k.arguments;
      }
    }
  }
}

TEST_F(Structured, ForcedToolCallStreamsNoContentAndToolResultsGoBack) {
  ChatRequest req = Ask("Add 2 and 3", 7);
  req.chat_format = "chatml";
  req.tools = {{"add", "", json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})")}};
  req.tool_choice = {ToolChoice::kRequired, ""};
  req.params.truncate = true;
  std::string streamed;
  GenerateControl ctl;
  ctl.on_delta = [&](const StreamDelta& d) {
    streamed += d.text;
    return true;
  };
  auto r = Chat(*registry_, req, ctl);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(streamed, "");
  ASSERT_EQ(r->message.tool_calls.size(), 1u);
  // The call and its result back in the conversation.
  req.messages.push_back(r->message);
  ChatMessage result{"tool", "5"};
  result.tool_call_id = r->message.tool_calls[0].id;
  req.messages.push_back(result);
  req.tool_choice = {};
  req.params.max_tokens = 4;
  auto again = Chat(*registry_, req);
  ASSERT_TRUE(again.ok()) << again.status();
}

// n choices, alone on this thread and through the batching engine (all of
// them in one batch, the prompt run once): choice i is the request with
// n = 1 and seed + i; greedy choices are all the same.
TEST_F(Structured, NChoicesEachWithItsOwnSeedStream) {
  EngineSet engines(EngineOptions{.prefix_cache_bytes = 0});
  for (EngineSet* es : {static_cast<EngineSet*>(nullptr), &engines}) {
    SCOPED_TRACE(es ? "engine" : "alone");
    GenerateControl base;
    base.engines = es;
    CompletionRequest req;
    req.model = "tiny";
    req.prompt = "Once upon a time";
    req.params.seed = 11;
    req.params.max_tokens = 8;
    req.params.n = 3;
    auto r = Complete(*registry_, req, base);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->choices.size(), 3u);
    std::set<std::string> texts;
    int64_t tokens = 0;
    for (int i = 0; i < 3; ++i) {
      CompletionRequest one = req;
      one.params.n = 1;
      one.params.seed = 11 + i;
      auto o = Complete(*registry_, one);  // alone, never batched
      ASSERT_TRUE(o.ok());
      EXPECT_EQ(r->choices[i].text, o->text) << "choice " << i;
      texts.insert(o->text);
      tokens += o->usage.completion_tokens;
    }
    EXPECT_GT(texts.size(), 1u);
    EXPECT_EQ(r->usage.completion_tokens, tokens);
    EXPECT_EQ(r->text, r->choices[0].text);
    // Streaming says which choice each delta belongs to.
    std::map<int, std::string> by_index;
    GenerateControl ctl = base;
    ctl.on_delta = [&](const StreamDelta& d) {
      by_index[d.index] += d.text;
      return true;
    };
    auto s = Complete(*registry_, req, ctl);
    ASSERT_TRUE(s.ok());
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(by_index[i], s->choices[i].text);
      EXPECT_EQ(s->choices[i].text, r->choices[i].text);
    }
    // Greedy: two equal choices, in chat too.
    ChatRequest chat = Ask("Hello", 1);
    chat.params.temperature = 0;
    chat.params.max_tokens = 6;
    chat.params.n = 2;
    auto g = Chat(*registry_, chat, base);
    ASSERT_TRUE(g.ok()) << g.status();
    ASSERT_EQ(g->choices.size(), 2u);
    EXPECT_EQ(g->choices[0].message.content, g->choices[1].message.content);
  }
}

// tool_choice auto in the families whose call is the whole reply (llama
// 3.1: {"name":..,"parameters":..}; mistral: [{"name":..,"arguments":..}]):
// once the reply opens a call, the rest is constrained to a call of a
// defined function with valid arguments. The random-weight model rarely
// opens one by itself, so a logit_bias on the opening byte ('{' for llama,
// '[' for mistral) makes it; without the bias, a reply that opens with the
// call's first byte is still a valid call.
TEST_F(Structured, AutoToolCallsInLlamaAndMistralAreConstrainedOnceOpened) {
  const json weather = json::parse(R"({"type":"object","properties":{"city":{"type":"string","maxLength":6},
      "unit":{"enum":["c","f"]}},"required":["city","unit"]})");
  const json add = json::parse(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
      "required":["a","b"],"additionalProperties":false})");
  int calls = 0;
  for (const char* format : {"llama3", "mistral"}) {
    const char open = std::string(format) == "llama3" ? '{' : '[';
    for (bool biased : {true, false}) {
      for (uint64_t seed = 1; seed <= 4; ++seed) {
        SCOPED_TRACE(::testing::Message() << format << " seed " << seed << (biased ? " biased" : ""));
        ChatRequest req = Ask("Weather in Paris?", seed);
        req.chat_format = format;
        req.tools = {{"get_weather", "Current weather", weather}, {"add", "Adds", add}};
        req.params.truncate = true;
        req.params.max_tokens = 64;  // the most the truncated prompt leaves; the tag as 12 byte tokens fits
        if (biased) req.params.logit_bias = {{3 + open, 30.f}};  // byte tokens: id 3 + byte
        auto r = Chat(*registry_, req);
        ASSERT_TRUE(r.ok()) << r.status();
        if (biased) {
          ASSERT_FALSE(r->message.tool_calls.empty()) << r->message.content;
        } else {
          std::string_view t = r->message.content;
          while (!t.empty() && (t[0] == ' ' || t[0] == '\n')) t.remove_prefix(1);
          // Text, or a start of mistral's [TOOL_CALLS] tag cut off: never a broken call.
          if (!t.empty() && t[0] == open) {
            EXPECT_TRUE(std::string_view("[TOOL_CALLS]").starts_with(t)) << "a call that did not parse: " << t;
          }
        }
        for (const ToolCall& k : r->message.tool_calls) {
          ASSERT_TRUE(k.name == "add" || k.name == "get_weather") << k.name;
          const json& schema = k.name == "add" ? add : weather;
          json args = json::parse(k.arguments, nullptr, false);
          ASSERT_FALSE(args.is_discarded()) << k.arguments;
          EXPECT_EQ(hart::testing::ValidateJson(args, schema, schema), "") << k.arguments;
          ++calls;
        }
        if (!r->message.tool_calls.empty()) {
          EXPECT_EQ(r->finish_reason, FinishReason::kStop);
        }
      }
    }
  }
  EXPECT_GE(calls, 8);
}

// The streamed pieces join to the text, alone and through the engine, the
// bytes of a character cut off by max_tokens included (the last piece):
// the random-weight model's byte tokens end inside one often.
TEST_F(Structured, StreamedPiecesJoinToTheTextWithACutOffCharacter) {
  EngineSet engines(EngineOptions{.prefix_cache_bytes = 0});
  int cut = 0;
  for (EngineSet* es : {static_cast<EngineSet*>(nullptr), &engines}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      CompletionRequest req;
      req.model = "tiny";
      req.prompt = "Once upon a time";
      req.params.seed = seed;
      req.params.max_tokens = 6;
      std::string joined;
      GenerateControl ctl;
      ctl.engines = es;
      ctl.on_delta = [&](const StreamDelta& d) {
        joined += d.text;
        return true;
      };
      auto r = Complete(*registry_, req, ctl);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(joined, r->text) << "seed " << seed;
      EXPECT_EQ(ValidUtf8(joined), ValidUtf8(r->text));
      if (ValidUtf8(r->text).ends_with("\xEF\xBF\xBD")) ++cut;
    }
  }
  EXPECT_GT(cut, 0);
}

TEST_F(Structured, LogitBiasForcesAndBansTokens) {
  CompletionRequest req;
  req.model = "tiny";
  req.prompt = "x";
  req.params.temperature = 0;
  req.params.max_tokens = 6;
  auto plain = Complete(*registry_, req);
  ASSERT_TRUE(plain.ok());
  // Byte tokens: <0x41> ('A') is id 3 + 0x41.
  req.params.logit_bias = {{3 + 'A', 100.f}};
  auto forced = Complete(*registry_, req);
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ(forced->text, "AAAAAA");
  // Banning every token the plain run chose changes each of them.
  req.params.logit_bias.clear();
  req.params.logprobs = true;
  plain = Complete(*registry_, req);
  ASSERT_TRUE(plain.ok());
  ASSERT_FALSE(plain->logprobs.empty());
  for (const auto& l : plain->logprobs) req.params.logit_bias[l.id] = -100.f;
  auto banned = Complete(*registry_, req);
  ASSERT_TRUE(banned.ok());
  ASSERT_FALSE(banned->logprobs.empty());
  for (const auto& l : banned->logprobs) EXPECT_EQ(req.params.logit_bias.count(l.id), 0u) << banned->text;
}

TEST_F(Structured, BadInputNamesTheField) {
  auto expect_bad = [&](const ChatRequest& req, const std::string& want) {
    auto r = Chat(*registry_, req);
    ASSERT_FALSE(r.ok()) << want;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(want), std::string::npos) << r.status();
  };
  ChatRequest req = Ask("hi", 1);
  req.params.n = 9;
  expect_bad(req, "n: must be in 1..8");
  req = Ask("hi", 1);
  req.params.logit_bias = {{259, 1.f}};
  expect_bad(req, "logit_bias: token id 259 is outside the vocabulary");
  req = Ask("hi", 1);
  req.params.response_format = {"json_schema", "x", json::parse(R"({"type":"string","pattern":"a+"})"), true};
  expect_bad(req, "response_format.json_schema.schema: schema #: 'pattern' is not supported");
  req = Ask("hi", 1);
  req.tools = {{"add", "", json::object()}};
  req.tool_choice = {ToolChoice::kFunction, "mul"};
  expect_bad(req, "tool_choice.function.name: 'mul' is not one of the tools");

  auto parsed = ChatRequestFromJson(json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",
      "properties":{"d":{"type":"string","format":"date"}}}}}]})"));
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(std::string(parsed.status().message()).find("tools[0].function.parameters: schema #/properties/d: 'format'"),
            std::string::npos)
      << parsed.status();
}

TEST(ToolCallStreamFilter, HoldsBackWhatMayBeACall) {
  ToolCallStreamFilter hermes(rt::ChatFormat::kChatml, false);
  EXPECT_EQ(hermes.Push("Let me check <to"), "Let me check ");
  EXPECT_EQ(hermes.Push("x"), "<tox");  // not a call after all
  EXPECT_EQ(hermes.Push(" <tool_"), " ");
  EXPECT_EQ(hermes.Push("call>\n{\"name\""), "");
  EXPECT_EQ(hermes.Push("more"), "");
  EXPECT_TRUE(hermes.held());
  ToolCallStreamFilter llama(rt::ChatFormat::kLlama3, false);
  EXPECT_EQ(llama.Push("  "), "");
  EXPECT_EQ(llama.Push("{\"name\""), "");
  EXPECT_TRUE(llama.held());
  ToolCallStreamFilter text(rt::ChatFormat::kLlama3, false);
  EXPECT_EQ(text.Push(" Hi"), " Hi");
  EXPECT_EQ(text.Push(" {x}"), " {x}");
  EXPECT_FALSE(text.held());
  ToolCallStreamFilter forced(rt::ChatFormat::kMistral, true);
  EXPECT_EQ(forced.Push("[{"), "");
}

TEST_F(Structured, RequestJsonRoundTripsTheNewFields) {
  ChatRequest req = Ask("hi", 3);
  req.params.n = 2;
  req.params.logit_bias = {{5, -100.f}, {7, 2.5f}};
  req.params.response_format = {"json_schema", "s", json::parse(R"({"type":"object"})"), true};
  req.tools = {{"f", "does f", json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}}})")}};
  req.tool_choice = {ToolChoice::kFunction, "f"};
  ChatMessage call{"assistant", ""};
  call.tool_calls = {{"call_1", "f", R"({"a":1})"}};
  ChatMessage result{"tool", "ok"};
  result.tool_call_id = "call_1";
  req.messages.push_back(call);
  req.messages.push_back(result);
  const json j = ToJson(req);
  auto back = ChatRequestFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status() << j.dump();
  EXPECT_EQ(ToJson(*back), j);
  EXPECT_EQ(back->params.logit_bias.at(7), 2.5f);
  EXPECT_EQ(back->tool_choice.function, "f");
  EXPECT_EQ(back->messages[2].tool_call_id, "call_1");
}

}  // namespace
}  // namespace hart::app

// app/generate and app/models over a real store holding a tiny generated
// model: the registry loads a version once and shares it across threads;
// completion, chat (one-shot and a ChatSession keeping its KV across turns)
// and embeddings; streaming deltas, cancellation, seeds; request JSON with
// errors that name the field.
#include <filesystem>
#include <fstream>
#include <thread>

#include "app/generate.h"
#include "app/models.h"
#include "formats/gguf.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/runtime/runtime_fixtures.h"

namespace hart::app {
namespace {

namespace rt = hart::runtime;
using nlohmann::json;

class AppGenerate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gguf_ = new std::string(rt::testing::MakeFixture("app_q8", "--type q8_0 --layers 2") + "/model.gguf");
    const std::string dir = rt::testing::FixtureRoot() + "/app_store";
    ASSERT_TRUE(store::Store::Init(dir).ok());
    auto st = store::Store::Open(dir);
    ASSERT_TRUE(st.ok()) << st.status();
    store_ = new std::shared_ptr<store::Store>(std::move(*st));
    auto src = formats::ReadGguf(*gguf_);
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
    delete gguf_;
  }
  static std::string* gguf_;
  static std::shared_ptr<store::Store>* store_;
  static ModelRegistry* registry_;
};
std::string* AppGenerate::gguf_ = nullptr;
std::shared_ptr<store::Store>* AppGenerate::store_ = nullptr;
ModelRegistry* AppGenerate::registry_ = nullptr;

GenerationParams Greedy(int64_t max_tokens) {
  GenerationParams p;
  p.max_tokens = max_tokens;
  p.temperature = 0;
  return p;
}

TEST_F(AppGenerate, RegistryLoadsAVersionOnceAndSharesIt) {
  std::vector<std::shared_ptr<const LoadedModel>> got(6);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] {
      auto m = registry_->Get(i % 2 ? "tiny" : "tiny@1");
      EXPECT_TRUE(m.ok()) << m.status();
      if (m.ok()) got[i] = *m;
    });
  for (auto& t : threads) t.join();
  ASSERT_NE(got[0], nullptr);
  for (const auto& m : got) EXPECT_EQ(m, got[0]);
  EXPECT_EQ(got[0]->ref, "tiny@1");
  EXPECT_EQ(got[0]->name, "tiny");
  EXPECT_EQ(got[0]->version, 1);
  EXPECT_TRUE(got[0]->from_store);
  EXPECT_EQ(registry_->Loaded().size(), 1u);

  EXPECT_EQ(registry_->Get("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Get("tiny@9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(registry_->Get("").ok());
  // The server's registry takes no file paths.
  EXPECT_FALSE(registry_->Get(*gguf_).ok());
  ModelRegistry cli(nullptr, RegistryOptions{.allow_paths = true});
  auto file = cli.Get(*gguf_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->ref, *gguf_);
  EXPECT_EQ(cli.Get(*gguf_).value(), *file);
  EXPECT_EQ(cli.Get("tiny").status().code(), absl::StatusCode::kNotFound);  // no store
  EXPECT_TRUE(cli.Unload(*gguf_));
  EXPECT_FALSE(cli.Unload(*gguf_));
}

TEST_F(AppGenerate, CompletionStreamsUsageAndSeeds) {
  CompletionRequest req{.model = "tiny", .prompt = "Once upon", .params = Greedy(8)};
  req.params.logprobs = true;
  req.params.top_logprobs = 2;
  std::string streamed;
  size_t streamed_lps = 0;
  auto r = Complete(*registry_, req, {.on_delta = [&](const StreamDelta& d) {
                                        streamed += d.text;
                                        streamed_lps += d.logprobs.size();
                                        return true;
                                      }});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "tiny@1");
  EXPECT_EQ(streamed, r->text);
  const auto& tok = *registry_->Get("tiny").value()->tokenizer;
  EXPECT_EQ(r->usage.prompt_tokens, static_cast<int64_t>(tok.Encode("Once upon", true, true).size()));
  EXPECT_GT(r->usage.completion_tokens, 0);
  EXPECT_LE(r->usage.completion_tokens, 8);
  if (r->finish_reason == FinishReason::kLength) {
    EXPECT_EQ(r->usage.completion_tokens, 8);
  }
  EXPECT_EQ(r->logprobs.size(), streamed_lps);
  ASSERT_FALSE(r->logprobs.empty());
  EXPECT_EQ(r->logprobs[0].top_logprobs.size(), 2u);
  EXPECT_EQ(r->logprobs[0].id, r->logprobs[0].top_logprobs[0].id);  // greedy picks the most likely
  json j = ToJson(*r);
  EXPECT_EQ(j["usage"]["total_tokens"], r->usage.total_tokens());
  EXPECT_EQ(j["finish_reason"], rt::FinishReasonName(r->finish_reason));

  CompletionRequest sampled{.model = "tiny@1", .prompt = "Once upon"};
  sampled.params.max_tokens = 16;
  sampled.params.seed = 42;
  auto a = Complete(*registry_, sampled), b = Complete(*registry_, sampled);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->text, b->text);
}

TEST_F(AppGenerate, CancellationEndsAGenerationWithCancelled) {
  CompletionRequest req{.model = "tiny", .prompt = "Hello", .params = Greedy(40)};
  req.params.stop = {};
  int deltas = 0;
  auto r = Complete(*registry_, req, {.on_delta = [&](const StreamDelta&) { return ++deltas < 2; }});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_LT(r->usage.completion_tokens, 40);
  CancelToken cancel;
  cancel.Cancel();
  auto none = Complete(*registry_, req, {.cancel = &cancel});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(none->usage.completion_tokens, 0);
}

TEST_F(AppGenerate, ChatSessionKeepsItsCacheAndMatchesAOneShotChat) {
  auto model = registry_->Get("tiny");
  ASSERT_TRUE(model.ok());
  auto chat = ChatSession::Create(*model, {.chat_format = "mistral", .params = Greedy(4)});
  ASSERT_TRUE(chat.ok()) << chat.status();
  auto r1 = (*chat)->Send("hi");
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->usage.cached_tokens, 0);
  auto r2 = (*chat)->Send("again");
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_GT(r2->usage.cached_tokens, r1->usage.prompt_tokens / 2);
  ASSERT_EQ((*chat)->messages().size(), 4u);
  EXPECT_EQ((*chat)->messages()[3].role, "assistant");
  EXPECT_EQ((*chat)->messages()[3].content, r2->message.content);

  ChatRequest req{.model = "tiny", .params = Greedy(4), .chat_format = "mistral"};
  req.messages = {{"user", "hi"}, {"assistant", r1->message.content}, {"user", "again"}};
  auto once = Chat(*registry_, req);
  ASSERT_TRUE(once.ok()) << once.status();
  EXPECT_EQ(once->message.content, r2->message.content);
  EXPECT_EQ(once->usage.prompt_tokens, r2->usage.prompt_tokens);
  EXPECT_EQ(once->usage.cached_tokens, 0);

  req.messages[2].role = "robot";
  EXPECT_EQ(Chat(*registry_, req).status().code(), absl::StatusCode::kInvalidArgument);
  req.messages[2].role = "user";
  req.chat_format = "klingon";
  EXPECT_EQ(Chat(*registry_, req).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AppGenerate, EmbeddingsOnePerInputUnitLength) {
  EmbeddingRequest req{.model = "tiny", .input = {"first text", "second", "first text"}};
  auto r = Embed(*registry_, req);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->data.size(), 3u);
  EXPECT_EQ(r->data[0].size(), 256u);
  EXPECT_EQ(r->data[0], r->data[2]);
  EXPECT_NE(r->data[0], r->data[1]);
  double ss = 0;
  for (float v : r->data[1]) ss += v * v;
  EXPECT_NEAR(ss, 1.0, 1e-4);
  const auto& tok = *registry_->Get("tiny").value()->tokenizer;
  EXPECT_EQ(r->usage.prompt_tokens, static_cast<int64_t>(2 * tok.Encode("first text", true, true).size() +
                                                         tok.Encode("second", true, true).size()));
  EXPECT_EQ(Embed(*registry_, EmbeddingRequest{.model = "tiny"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EmbeddingRequest huge{.model = "tiny", .input = {std::string(500, 'x')}};
  EXPECT_EQ(Embed(*registry_, huge).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AppGenerate, RequestJsonRoundTripsAndNamesTheBadField) {
  ChatRequest req{.model = "tiny@1", .params = Greedy(5), .chat_format = "chatml"};
  req.messages = {{"user", "hi"}};
  req.params.stop = {"\n", "END"};
  req.params.seed = 9;
  auto back = ChatRequestFromJson(ToJson(req));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ToJson(*back), ToJson(req));

  auto err = [](const json& j) { return std::string(ChatRequestFromJson(j).status().message()); };
  EXPECT_NE(err(json{{"model", "x"}, {"messages", {{{"role", "bot"}, {"content", "x"}}}}}).find("messages[0].role"),
            std::string::npos);
  EXPECT_NE(err(json{{"model", "x"}, {"messages", json::array()}, {"foo", 1}}).find("'foo'"), std::string::npos);
  EXPECT_NE(err(json{{"model", "x"}, {"messages", {{{"role", "user"}, {"content", 3}}}}}).find("messages[0].content"),
            std::string::npos);
  EXPECT_NE(err(json{{"messages", json::array()}}).find("model"), std::string::npos);
  auto params = [](const json& p) { return std::string(GenerationParamsFromJson(p).status().message()); };
  EXPECT_NE(params({{"temperature", "hot"}}).find("params.temperature"), std::string::npos);
  EXPECT_NE(params({{"top_p", 0}}).find("top_p"), std::string::npos);
  EXPECT_NE(params({{"top_logprobs", 3}}).find("needs logprobs"), std::string::npos);
  EXPECT_NE(params({{"seed", -1}}).find("params.seed"), std::string::npos);
  EXPECT_NE(params({{"max_tokens", 1e30}}).find("params.max_tokens"), std::string::npos);
  EXPECT_NE(params({{"stop", {"a", "b", "c", "d", "e"}}}).find("stop"), std::string::npos);
  EXPECT_TRUE(GenerationParamsFromJson({{"stop", "x"}, {"seed", 3}}).ok());

  auto emb = EmbeddingRequestFromJson({{"model", "m"}, {"input", "one"}, {"pooling", "last"}});
  ASSERT_TRUE(emb.ok()) << emb.status();
  EXPECT_EQ(emb->input.size(), 1u);
  EXPECT_EQ(emb->pooling, Pooling::kLast);
  EXPECT_FALSE(EmbeddingRequestFromJson({{"model", "m"}, {"input", json::array()}}).ok());
  EXPECT_FALSE(EmbeddingRequestFromJson({{"model", "m"}, {"input", "x"}, {"pooling", "max"}}).ok());
  EXPECT_TRUE(CompletionRequestFromJson({{"model", "m"}, {"prompt", "p"}}).ok());
  EXPECT_FALSE(CompletionRequestFromJson({{"model", "m"}, {"prompt", 5}}).ok());
}

// The fuzz target's seeds (fuzz/app_request_fuzz.cc): the first byte picks
// the request type; each parses, and its JSON parses back to the same request.
TEST(AppRequestFuzzCorpus, SeedsParseAndRoundTrip) {
  int parsed = 0;
  for (const auto& e : std::filesystem::directory_iterator(HART_SOURCE_DIR "/fuzz/corpus/app_request")) {
    std::ifstream f(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), {});
    ASSERT_FALSE(bytes.empty()) << e.path();
    json j = json::parse(bytes.substr(1), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << e.path();
    auto check = [&](const auto& r, auto from_json) {
      if (!r.ok()) return;
      ++parsed;
      auto again = from_json(ToJson(*r));
      ASSERT_TRUE(again.ok()) << e.path() << again.status();
      EXPECT_EQ(ToJson(*again), ToJson(*r)) << e.path();
    };
    switch (bytes[0] % 3) {
      case 0: check(CompletionRequestFromJson(j), CompletionRequestFromJson); break;
      case 1: check(ChatRequestFromJson(j), ChatRequestFromJson); break;
      default: check(EmbeddingRequestFromJson(j), EmbeddingRequestFromJson); break;
    }
  }
  EXPECT_GE(parsed, 3);
}

TEST(ValidUtf8, ReplacesOnlyInvalidBytes) {
  EXPECT_EQ(ValidUtf8("plain"), "plain");
  EXPECT_EQ(ValidUtf8("h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(ValidUtf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(ValidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(ValidUtf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");   // cut short
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

}  // namespace
}  // namespace hart::app

// Models held by a registry do not keep a second copy of their vocabulary:
// once the tokenizer, config and chat format are built, the weight source's
// GGUF metadata lets go of tokenizer.ggml.tokens / scores / token_type /
// merges (WeightSource::ReleaseTokenizerArrays). Such a model tokenizes,
// detects its chat format and generates exactly as one loaded with its
// whole metadata (LoadModel's default, as `hart run` loads), stored or from
// a file. On a real 100k-token vocabulary the arrays are nearly all of the
// metadata's heap.
#include <filesystem>

#include "app/models.h"
#include "formats/gguf.h"
#include "gtest/gtest.h"
#include "runtime/chat_template.h"
#include "runtime/generate.h"
#include "runtime/weight_source.h"
#include "store/store.h"
#include "tests/runtime/finetune_fixture.h"
#include "tests/runtime/ingest_fixture.h"
#include "tests/runtime/runtime_fixtures.h"
#include "tests/runtime/vocab_vectors.h"

namespace hart::app {
namespace {

namespace rt = hart::runtime;

class TokenizerArrays : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string root = rt::testing::FixtureRoot();
    base_ = new std::string(rt::testing::MakeFixture("arr_base", "--type f32 --layers 2") + "/model.gguf");
    const std::string ft = root + "/arr_ft.gguf";
    auto n = rt::testing::WriteFineTune(*base_, ft,
                                        [](const std::string& t) { return t.find("ffn_down") != std::string::npos; });
    ASSERT_TRUE(n.ok()) << n.status();
    const std::string dir = root + "/arr_store";
    ASSERT_TRUE(store::Store::Init(dir).ok());
    auto st = store::Store::Open(dir);
    ASSERT_TRUE(st.ok()) << st.status();
    store_ = new std::shared_ptr<store::Store>(std::move(*st));
    for (const auto& [name, path] : {std::pair{"base", *base_}, std::pair{"ft", ft}}) {
      auto r = rt::testing::IngestGguf(**store_, path, name);
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  static void TearDownTestSuite() {
    delete store_;
    delete base_;
  }

  static RegistryOptions Options() {
    RegistryOptions o;
    o.load.max_context = 64;
    o.allow_paths = true;
    return o;
  }

  // Greedy tokens after `prompt` on a fresh session of `m`.
  static std::vector<int32_t> Greedy(const LoadedModel& m, const std::string& prompt) {
    rt::SessionOptions so;
    so.sampler.temperature = 0;
    auto s = m.model->NewSession(so);
    rt::GenerateParams p;
    p.max_tokens = 12;
    p.stop_at_eog = false;
    const std::vector<int32_t> ids = m.tokenizer->Encode(prompt, true);
    auto r = rt::Generate(*s, m.tokenizer.get(), ids, p);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->tokens : std::vector<int32_t>{};
  }

  // `trimmed` (through a registry) against `whole` (LoadModel's default).
  static void ExpectSameBehaviour(const LoadedModel& trimmed, const LoadedModel& whole) {
    const formats::GgufMetadata* tmd = trimmed.source->gguf_metadata();
    const formats::GgufMetadata* wmd = whole.source->gguf_metadata();
    ASSERT_NE(tmd, nullptr) << trimmed.ref;
    ASSERT_NE(wmd, nullptr) << whole.ref;
    for (std::string_view k : rt::kTokenizerArrayKeys) EXPECT_EQ(tmd->Find(k), nullptr) << trimmed.ref << " " << k;
    ASSERT_NE(wmd->Find("tokenizer.ggml.tokens"), nullptr) << whole.ref;
    ASSERT_NE(wmd->Find("tokenizer.ggml.scores"), nullptr) << whole.ref;
    // Everything but the arrays stays: the config is read from it as before.
    EXPECT_EQ(tmd->entries.size() + 3, wmd->entries.size()) << trimmed.ref;  // tokens, scores, token_type
    EXPECT_EQ(tmd->GetString("general.architecture"), wmd->GetString("general.architecture"));
    EXPECT_EQ(tmd->GetInt("tokenizer.ggml.bos_token_id"), wmd->GetInt("tokenizer.ggml.bos_token_id"));
    auto tc = trimmed.source->Config();
    auto wc = whole.source->Config();
    ASSERT_TRUE(tc.ok()) << tc.status();
    ASSERT_TRUE(wc.ok()) << wc.status();
    EXPECT_EQ(tc->ToString(), wc->ToString());
    EXPECT_LT(rt::GgufMetadataBytes(*tmd) * 4, rt::GgufMetadataBytes(*wmd)) << trimmed.ref;

    EXPECT_EQ(trimmed.chat_format.ok(), whole.chat_format.ok()) << trimmed.ref;
    if (trimmed.chat_format.ok() && whole.chat_format.ok()) {
      EXPECT_EQ(*trimmed.chat_format, *whole.chat_format);
    } else {
      EXPECT_EQ(trimmed.chat_format.status(), whole.chat_format.status());
    }
    EXPECT_EQ(trimmed.tokenizer->memory_bytes(), whole.tokenizer->memory_bytes());
    EXPECT_EQ(trimmed.tokenizer->vocab_size(), whole.tokenizer->vocab_size());
    for (const std::string text : {"Once upon a time", "The quick brown fox, 42 times!", " hello  world\n"}) {
      EXPECT_EQ(trimmed.tokenizer->Encode(text, true), whole.tokenizer->Encode(text, true)) << text;
      const std::vector<int32_t> ids = whole.tokenizer->Encode(text, false);
      EXPECT_EQ(trimmed.tokenizer->Decode(ids), whole.tokenizer->Decode(ids)) << text;
    }
    const std::vector<int32_t> got = Greedy(trimmed, "Once upon a time");
    EXPECT_EQ(got.size(), 12u);
    EXPECT_EQ(got, Greedy(whole, "Once upon a time")) << trimmed.ref;
  }

  static std::string* base_;
  static std::shared_ptr<store::Store>* store_;
};
std::string* TokenizerArrays::base_ = nullptr;
std::shared_ptr<store::Store>* TokenizerArrays::store_ = nullptr;

TEST_F(TokenizerArrays, RegistryModelsReleaseThemAndBehaveTheSame) {
  ModelRegistry reg(*store_, Options());
  for (const std::string& ref : {std::string("base"), std::string("ft"), *base_}) {
    SCOPED_TRACE(ref);
    auto trimmed = reg.Get(ref);
    ASSERT_TRUE(trimmed.ok()) << trimmed.status();
    auto whole = LoadModel(ref, *store_, ModelLoadOptions{.max_context = 64});
    ASSERT_TRUE(whole.ok()) << whole.status();
    ExpectSameBehaviour(**trimmed, **whole);
  }
  // The fine-tune shares the base's tokenizer; the arrays are gone from both sources.
  auto base = reg.Get("base");
  auto ft = reg.Get("ft");
  ASSERT_TRUE(base.ok() && ft.ok());
  EXPECT_EQ((*base)->tokenizer.get(), (*ft)->tokenizer.get());
  EXPECT_EQ((*ft)->source->gguf_metadata()->Find("tokenizer.ggml.tokens"), nullptr);
}

TEST_F(TokenizerArrays, ReleaseIsAnOptionOfLoadModel) {
  ModelLoadOptions lo{.max_context = 64};
  lo.release_tokenizer_arrays = true;
  auto trimmed = LoadModel("ft", *store_, lo);
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  auto whole = LoadModel("ft", *store_, ModelLoadOptions{.max_context = 64});
  ASSERT_TRUE(whole.ok()) << whole.status();
  ExpectSameBehaviour(**trimmed, **whole);
  // A second release frees nothing more; the source's figure is what the estimate says.
  auto src = rt::OpenStoreWeights(*store_, "ft@1");
  ASSERT_TRUE(src.ok()) << src.status();
  const uint64_t before = rt::GgufMetadataBytes(*(*src)->gguf_metadata());
  const uint64_t freed = (*src)->ReleaseTokenizerArrays();
  EXPECT_GT(freed, 0u);
  EXPECT_EQ(rt::GgufMetadataBytes(*(*src)->gguf_metadata()), before - freed);
  EXPECT_EQ((*src)->ReleaseTokenizerArrays(), 0u);
  // Nothing to release without GGUF metadata.
  formats::GgufMetadata empty;
  EXPECT_EQ(rt::EraseTokenizerArrays(&empty), 0u);
}

// A real 100k-token BPE vocabulary (deepseek-llm, with merges): the arrays
// are nearly all of the parsed metadata's heap, several MiB.
TEST(TokenizerArraysReal, ArraysAreNearlyAllOfTheMetadata) {
  auto md = formats::ReadGgufMetadata(rt::testing::VocabDir() + "/ggml-vocab-deepseek-llm.gguf");
  ASSERT_TRUE(md.ok()) << md.status();
  ASSERT_NE(md->Find("tokenizer.ggml.merges"), nullptr);
  const uint64_t whole = rt::GgufMetadataBytes(*md);
  EXPECT_GT(whole, uint64_t{8} << 20);
  const uint64_t freed = rt::EraseTokenizerArrays(&*md);
  EXPECT_EQ(rt::GgufMetadataBytes(*md), whole - freed);
  RecordProperty("metadata_bytes", std::to_string(whole));
  RecordProperty("freed_bytes", std::to_string(freed));
  EXPECT_LT(rt::GgufMetadataBytes(*md), uint64_t{64} << 10);
  for (std::string_view k : rt::kTokenizerArrayKeys) EXPECT_EQ(md->Find(k), nullptr) << k;
  EXPECT_TRUE(md->GetString("tokenizer.ggml.model").has_value());
  EXPECT_TRUE(md->GetString("tokenizer.ggml.pre").has_value());
}

}  // namespace
}  // namespace hart::app

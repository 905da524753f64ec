// A Hugging Face checkpoint end to end: the tiny llama of
// make_tiny_llama.py as a safetensors directory with config.json,
// tokenizer.json and tokenizer_config.json, ingested into NinaDB, tokenizes
// with its tokenizer.json and generates the same greedy tokens as the same
// weights written as GGUF (tokenizer from the GGUF vocabulary), mapped and
// under a memory budget.
#include <gtest/gtest.h>

#include "core/status.h"
#include "formats/safetensors.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "runtime/weight_source.h"
#include "runtime_fixtures.h"
#include "store/store.h"

namespace hart::runtime {
namespace {

struct GreedyRun {
  std::vector<int32_t> prompt;
  std::vector<int32_t> generated;
};

GreedyRun Greedy(WeightSource* src, const std::string& text, uint64_t budget) {
  GreedyRun r;
  auto tok = LoadTokenizer(*src);
  EXPECT_TRUE(tok.ok()) << Msg(tok.status());
  if (!tok.ok()) return r;
  r.prompt = (*tok)->Encode(text, (*tok)->add_bos_default(), true);
  ThreadPool pool(2);
  ModelOptions mo{.max_context = 64, .pool = &pool};
  mo.stream.budget = budget;
  auto model = Model::Load(src, mo);
  EXPECT_TRUE(model.ok()) << Msg(model.status());
  if (!model.ok()) return r;
  GenerateOptions go;
  go.n_predict = 12;
  go.stop_at_eog = false;
  SamplerOptions so;
  so.temperature = 0;
  Sampler sampler(so);
  auto st = GenerateFromTokens(**model, tok->get(), r.prompt, go, sampler, [&](int32_t id, std::string_view) {
    if (id >= 0) r.generated.push_back(id);
    return true;
  });
  EXPECT_TRUE(st.ok()) << Msg(st.status());
  return r;
}

TEST(HfCheckpoint, StoredVersionGeneratesAsTheGgufModel) {
  const std::string fx = testing::MakeFixture("hf_e2e", "--format hf --type f32 --also-gguf");
  const std::string store_dir = testing::FixtureRoot() + "/hf_e2e_store";
  ASSERT_TRUE(store::Store::Init(store_dir).ok());
  auto opened = store::Store::Open(store_dir);
  ASSERT_TRUE(opened.ok()) << Msg(opened.status());
  std::shared_ptr<store::Store> st(std::move(*opened));
  auto src = formats::ReadSafetensorsDir(fx, "model.safetensors");
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  store::IngestOptions io;
  io.model = "tiny-hf";
  io.progress = false;
  io.license = "mit";
  ASSERT_TRUE(st->Ingest(*src, io).ok());

  auto stored = OpenStoreWeights(st, "tiny-hf@1");
  ASSERT_TRUE(stored.ok()) << Msg(stored.status());
  ASSERT_EQ((*stored)->gguf_metadata(), nullptr);
  auto tok = LoadTokenizer(**stored);
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  EXPECT_EQ((*tok)->kind(), TokenizerKind::kSpm);
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_TRUE((*tok)->add_bos_default());
  EXPECT_FALSE((*tok)->chat_template().empty());

  auto gguf = OpenFileWeights(fx + "/gguf/model.gguf");
  ASSERT_TRUE(gguf.ok()) << Msg(gguf.status());
  const std::string prompt = "Hello world";
  const GreedyRun want = Greedy(gguf->get(), prompt, 0);
  ASSERT_EQ(want.generated.size(), 12u);
  EXPECT_EQ(want.prompt.front(), 1);
  auto model = Model::Load(stored->get(), ModelOptions{.max_context = 4});
  ASSERT_TRUE(model.ok()) << Msg(model.status());
  for (uint64_t budget : {uint64_t{0}, (*model)->min_budget()}) {
    const GreedyRun got = Greedy(stored->get(), prompt, budget);
    EXPECT_EQ(got.prompt, want.prompt) << budget;
    EXPECT_EQ(got.generated, want.generated) << budget;
  }
}

TEST(HfCheckpoint, MissingTokenizerJsonIsAClearError) {
  const std::string fx = testing::MakeFixture("hf_no_tok", "--format hf --type f32");
  ASSERT_EQ(std::remove((fx + "/tokenizer.json").c_str()), 0);
  auto src = OpenFileWeights(fx);
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  auto tok = LoadTokenizer(**src);
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(std::string(tok.status().message()).find("tokenizer.json"), std::string::npos) << tok.status();
}

}  // namespace
}  // namespace hart::runtime

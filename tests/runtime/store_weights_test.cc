// The runtime reading weights out of NinaDB: a version ingested from a GGUF
// file or a safetensors checkpoint gives the same logits as the file itself,
// mapped or streamed under a budget.
#include <cstring>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "gtest/gtest.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/resident_cache.h"
#include "runtime/weight_source.h"
#include "runtime_fixtures.h"
#include "tests/runtime/ingest_fixture.h"
#include "store/store.h"

namespace hart::runtime {
namespace {

std::vector<float> Logits(WeightSource* src, uint64_t budget, const std::vector<int32_t>& tokens) {
  ThreadPool pool(2);
  ModelOptions mo{.max_context = 32, .pool = &pool};
  mo.stream.budget = budget;
  auto model = Model::Load(src, mo);
  EXPECT_TRUE(model.ok()) << model.status();
  std::vector<float> logits;
  if (!model.ok()) return logits;
  EXPECT_TRUE((*model)->Forward(tokens, true, &logits).ok());
  return logits;
}

uint64_t MinBudget(WeightSource* src) {
  auto model = Model::Load(src, ModelOptions{.max_context = 4});
  return model.ok() ? (*model)->min_budget() : 0;
}

class StoreWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FixtureRoot() + "/store_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(store::Store::Init(dir_).ok());
    auto st = store::Store::Open(dir_);
    ASSERT_TRUE(st.ok()) << st.status();
    store_ = std::shared_ptr<store::Store>(std::move(*st));
  }
  void CheckPackedResidentWeights(const std::string& type);
  std::string dir_;
  std::shared_ptr<store::Store> store_;
};

TEST_F(StoreWeights, GgufVersionMatchesTheFileMappedAndStreamed) {
  const std::string fx = testing::MakeFixture("store_gguf", "--type q8_0 --layers 3");
  auto src = formats::ReadGguf(fx + "/model.gguf");
  ASSERT_TRUE(src.ok()) << src.status();
  store::IngestOptions io;
  io.model = "tiny";
  io.progress = false;
  io.license = "mit";
  auto ingested = store_->Ingest(*src, io);
  ASSERT_TRUE(ingested.ok()) << ingested.status();

  auto file = OpenFileWeights(fx + "/model.gguf");
  ASSERT_TRUE(file.ok());
  auto stored = OpenStoreWeights(store_, "tiny@1");
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_NE((*stored)->gguf_metadata(), nullptr);  // tokenizer and config come from the stored header
  const std::vector<int32_t> tokens = {1, 72, 101, 108, 108, 111};
  std::vector<float> want = Logits(file->get(), 0, tokens);
  ASSERT_FALSE(want.empty());
  for (uint64_t budget : {uint64_t{0}, MinBudget(stored->get())}) {
    std::vector<float> got = Logits(stored->get(), budget, tokens);
    ASSERT_EQ(got.size(), want.size()) << budget;
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << budget;
  }
}

// Q8_0 matrices whose rows hold whole 8-block groups are packed for the
// kernels where they stay for the model's life: in a ResidentCache (the
// server's resident models) and in a budget's pinned groups. Neither may
// change a logit: the packed kernels take the same integer and float steps.
// The tied head is also the embedding table, read back row by row packed.
TEST_F(StoreWeights, PackedResidentWeightsGiveTheSameLogits) {
  for (const char* type : {"q8_0", "q4_0"}) {
    SCOPED_TRACE(type);
    CheckPackedResidentWeights(type);
    if (HasFailure()) return;
  }
}

void StoreWeights::CheckPackedResidentWeights(const std::string& type) {
  const std::string fx =
      testing::MakeFixture("store_packed_" + type, "--shape tiny-ffn768 --type " + type + " --layers 2 --tied");
  const std::string ref = "tiny-" + type + "@1";
  ASSERT_TRUE(testing::IngestGguf(*store_, fx + "/model.gguf", "tiny-" + type).ok());
  auto file = OpenFileWeights(fx + "/model.gguf");
  ASSERT_TRUE(file.ok());
  const std::vector<int32_t> tokens = {1, 72, 101, 108, 108, 111, 44, 32, 119};
  const std::vector<float> want = Logits(file->get(), 0, tokens);
  ASSERT_FALSE(want.empty());

  auto cache = std::make_shared<ResidentCache>();
  auto cached = OpenStoreWeights(store_, ref, {.cache = cache});
  ASSERT_TRUE(cached.ok()) << cached.status();
  const WeightInfo* ffn_down = (*cached)->Find("blk.0.ffn_down.weight");
  ASSERT_NE(ffn_down, nullptr);
  EXPECT_EQ((*cached)->MapPacked(*ffn_down), PackedLayoutHelps(ffn_down->dtype, 768));
  std::vector<float> got = Logits(cached->get(), 0, tokens);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << "resident cache";
  // The packed copy is counted once, at the tensor's own size.
  uint64_t total = 0;
  for (const auto& t : (*cached)->tensors()) total += t.nbytes;
  EXPECT_LE(cache->resident_bytes(), total);
  EXPECT_GT(cache->resident_bytes(), total / 2);

  auto stored = OpenStoreWeights(store_, ref);
  ASSERT_TRUE(stored.ok());
  for (uint64_t budget : {uint64_t{1} << 40, MinBudget(stored->get())}) {
    got = Logits(stored->get(), budget, tokens);
    ASSERT_EQ(got.size(), want.size()) << budget;
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << "budget " << budget;
  }
}

TEST_F(StoreWeights, SafetensorsVersionUsesItsConfig) {
  const std::string fx = testing::MakeFixture("store_hf", "--format hf --arch qwen2 --type f32");
  auto src = formats::ReadSafetensorsDir(fx, "model.safetensors");
  ASSERT_TRUE(src.ok()) << src.status();
  store::IngestOptions io;
  io.model = "tiny-hf";
  io.progress = false;
  io.license = "mit";
  auto ingested = store_->Ingest(*src, io);
  ASSERT_TRUE(ingested.ok()) << ingested.status();
  auto stored = OpenStoreWeights(store_, "tiny-hf");
  ASSERT_TRUE(stored.ok()) << stored.status();
  auto cfg = (*stored)->Config();
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->arch, Arch::kQwen2);
  EXPECT_EQ(cfg->naming, WeightNaming::kHf);
  testing::Expected e = testing::ReadExpected(fx);
  std::vector<float> got = Logits(stored->get(), 0, e.tokens);
  ASSERT_EQ(got.size(), e.logits.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], e.logits[i], 1e-3) << i;
}

}  // namespace
}  // namespace hart::runtime

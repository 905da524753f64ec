#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "fmt/format.h"
#include "query/engine.h"
#include "query/similarity.h"
#include "tests/query/engine_test_util.h"
#include "tests/store/store_test_util.h"

namespace hart::query {
namespace {

using store::testing::MakeSource;
using store::testing::TestFile;

const char* kNames[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
                        "blk.0.ffn_up.weight", "blk.0.ffn_down.weight", "output.weight"};
constexpr size_t kElems = 64 * 64;

std::vector<std::vector<float>> RandomModel(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<std::vector<float>> m(std::size(kNames), std::vector<float>(kElems));
  for (auto& t : m)
    for (float& x : t) x = normal(rng);
  return m;
}

// A fine-tune: every weight moved by noise of 1% of the weights' spread.
std::vector<std::vector<float>> FineTune(std::vector<std::vector<float>> m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.0002f);
  for (auto& t : m)
    for (float& x : t) x += noise(rng);
  return m;
}

class SearchTest : public testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    auto base = RandomModel(1);
    Ingest("base", base, "A zebra-striped assistant, tuned for haiku.");
    Ingest("tune", FineTune(base, 2), "");
    Ingest("other", RandomModel(3), "");
    AttachEngine();
  }
  void Ingest(const std::string& model, const std::vector<std::vector<float>>& tensors,
              const std::string& readme) {
    TestFile f{"model.bin", {}, {}, {}};
    for (size_t i = 0; i < tensors.size(); ++i) {
      std::vector<uint8_t> b(kElems * 4);
      std::memcpy(b.data(), tensors[i].data(), b.size());
      f.tensors.push_back({kNames[i], b});
    }
    auto src = MakeSource(root_ + "/" + model, {f});
    for (auto& t : src.tensors) t.dtype = DType::kF32, t.shape = {64, 64};
    if (!readme.empty()) src.metadata["model_card"] = readme;
    auto r = store_->Ingest(src, Opts(model));
    ASSERT_TRUE(r.ok()) << r.status();
  }
  ResultSet Q(const std::string& sql) {
    auto r = engine_->Query(sql);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status();
    return r.ok() ? *r : ResultSet{};
  }
  int64_t TensorId(const std::string& ref, const std::string& name) {
    auto r = Q(fmt::format("SELECT id FROM tensors WHERE ref = '{}' AND name = '{}'", ref, name));
    return r.rows.empty() ? -1 : std::get<int64_t>(r.rows[0][0]);
  }
};

TEST_F(SearchTest, FullTextFindsTensorsByRoleAndModelsByMetadata) {
  // token_embd's name does not say "embedding"; its role does.
  auto r = Q("SELECT kind, ref, name FROM search_text('embedding', 10)");
  ASSERT_FALSE(r.rows.empty());
  for (const auto& row : r.rows) {
    EXPECT_EQ(std::get<std::string>(row[0]), "tensor");
    EXPECT_EQ(std::get<std::string>(row[2]), "token_embd.weight");
  }
  EXPECT_EQ(r.rows.size(), 3u);  // one per version
  auto m = Q("SELECT kind, ref, snippet FROM search_text('zebra')");
  ASSERT_EQ(m.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(m.rows[0][0]), "version");
  EXPECT_EQ(std::get<std::string>(m.rows[0][1]), "base@1");
  EXPECT_NE(std::get<std::string>(m.rows[0][2]).find("[zebra]"), std::string::npos);
  // Not FTS5 syntax: retried as plain terms instead of failing.
  auto odd = engine_->Query("SELECT * FROM search_text('haiku AND (')");
  EXPECT_TRUE(odd.ok()) << odd.status();
  auto none = Q("SELECT COUNT(*) FROM search_text('nosuchword')");
  EXPECT_EQ(std::get<int64_t>(none.rows[0][0]), 0);
}

TEST_F(SearchTest, FineTunedTensorIsNearerItsBaseThanAnUnrelatedOne) {
  for (const char* name : kNames) {
    SCOPED_TRACE(name);
    int64_t id = TensorId("tune@1", name);
    auto r = Q(fmt::format("SELECT ref, name, distance FROM similar_tensors({}, 5)", id));
    ASSERT_GE(r.rows.size(), 2u);
    EXPECT_EQ(std::get<std::string>(r.rows[0][0]), "base@1");
    EXPECT_EQ(std::get<std::string>(r.rows[0][1]), name);
    EXPECT_LT(std::get<double>(r.rows[0][2]), 0.01);
    // The unrelated model's tensor of the same name and shape is far.
    auto o = Q(fmt::format("SELECT distance FROM similar_tensors({}, 100) WHERE ref = 'other@1' "
                           "AND name = '{}'", id, name));
    ASSERT_EQ(o.rows.size(), 1u);
    EXPECT_GT(std::get<double>(o.rows[0][0]), 0.4);
  }
}

TEST_F(SearchTest, NearestVersionIsTheBase) {
  Similarity sim(*store_);
  auto tune = store_->Resolve({"tune", 1});
  ASSERT_TRUE(tune.ok());
  auto v = sim.NearestVersions(tune->id, 5);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 2u);  // itself excluded
  EXPECT_EQ((*v)[0].ref, "base@1");
  EXPECT_GT((*v)[0].similarity, 0.99);
  EXPECT_EQ((*v)[0].matched, std::size(kNames));
  EXPECT_EQ((*v)[1].ref, "other@1");
  EXPECT_LT((*v)[1].similarity, 0.6);
  auto base = store_->Resolve({"base", 1});
  auto b = sim.NearestVersions(base->id, 1);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)[0].ref, "tune@1");
}

TEST_F(SearchTest, IndexIsPersistedAndRebuiltWhenMissingOrStale) {
  std::string dir = dir_ + "/index";
  {
    Similarity sim(*store_);
    auto r = sim.Refresh();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(*r);  // first use builds it
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/fingerprint.hnsw"));
  {
    Similarity sim(*store_);
    EXPECT_FALSE(*sim.Refresh());  // loaded from disk
  }
  std::filesystem::remove_all(dir);
  {
    Similarity sim(*store_);
    EXPECT_TRUE(*sim.Refresh());
    EXPECT_TRUE(std::filesystem::exists(dir + "/fingerprint.hnsw"));
    // A new version makes the saved index stale; the same object notices.
    Ingest("more", RandomModel(9), "");
    EXPECT_TRUE(*sim.Refresh());
    auto id = TensorId("more@1", "output.weight");
    auto near = sim.NearestTensors(id, 3);
    ASSERT_TRUE(near.ok()) << near.status();
    EXPECT_EQ(near->size(), 3u);
  }
}

TEST_F(SearchTest, IndexFollowsIngestsAndDeletesWithoutARebuild) {
  std::string hnsw = dir_ + "/index/fingerprint.hnsw";
  Similarity sim(*store_);
  ASSERT_TRUE(sim.Refresh().ok());
  // One more model, then its deletion.
  Ingest("twin", RandomModel(9), "");
  ASSERT_TRUE(*sim.Refresh());  // updated in place
  auto twin_out = TensorId("twin@1", "output.weight");
  auto near = sim.NearestTensors(twin_out, 50);
  ASSERT_TRUE(near.ok()) << near.status();
  ASSERT_FALSE(near->empty());

  ASSERT_TRUE(store_->DeleteVersion({"twin", 1}).ok());
  ASSERT_TRUE(*sim.Refresh());
  auto base_out = TensorId("base@1", "output.weight");
  near = sim.NearestTensors(base_out, 50);
  ASSERT_TRUE(near.ok()) << near.status();
  for (const auto& m : *near) EXPECT_NE(m.ref, "twin@1") << m.name;
  EXPECT_FALSE(*sim.Refresh());  // nothing changed since

  // A fresh reader loads the saved, updated index as it is.
  Similarity again(*store_);
  EXPECT_FALSE(*again.Refresh());
  auto exact = again.Search(*again.FingerprintOf(base_out), 5, /*exact=*/true);
  auto approx = again.Search(*again.FingerprintOf(base_out), 5);
  ASSERT_TRUE(exact.ok() && approx.ok());
  ASSERT_EQ(exact->size(), approx->size());
  for (size_t i = 0; i < exact->size(); ++i) EXPECT_EQ((*exact)[i].first, (*approx)[i].first);
}

TEST_F(SearchTest, BadArguments) {
  EXPECT_FALSE(engine_->Query("SELECT * FROM similar_tensors(99999999)").ok());
  EXPECT_FALSE(engine_->Query("SELECT * FROM similar_tensors('x')").ok());
  auto r = engine_->Query("SELECT * FROM similar_tensors");
  ASSERT_FALSE(r.ok());
}

}  // namespace
}  // namespace hart::query

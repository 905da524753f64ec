#include "query/planner.h"

#include <gtest/gtest.h>

#include <set>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "tests/query/engine_test_util.h"
#include "tests/store/store_test_util.h"

namespace hart::query {
namespace {

using store::testing::MakeSource;
using store::testing::RandomBytes;
using store::testing::TestFile;

std::vector<std::string> LlamaNames(int layers) {
  std::vector<std::string> v = {"token_embd.weight"};
  for (int l = 0; l < layers; ++l)
    for (const char* t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
                          "ffn_up", "ffn_down"})
      v.push_back("blk." + std::to_string(l) + "." + t + ".weight");
  v.push_back("output_norm.weight");
  v.push_back("output.weight");
  return v;
}

class PlannerTest : public testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    TestFile f{"model.safetensors", RandomBytes(40, 1), {}, {}};
    int seed = 100;
    for (const auto& n : LlamaNames(3)) f.tensors.push_back({n, RandomBytes(2048 + seed, seed)}), ++seed;
    src_ = MakeSource(root_ + "/m", {f});
    IngestAndAttach(src_, "tiny");
  }
  std::set<std::string> Names(const Plan& p) {
    std::set<std::string> s;
    for (const auto& t : p.tensors) s.insert(t.name);
    return s;
  }
  formats::ModelSource src_;
};

TEST_F(PlannerTest, NamesSelectionPullsUpstreamClosure) {
  PlanRequest req;
  req.version = "tiny@1";
  req.names = {"blk.1.attn_q.weight"};
  auto plan = MakePlan(*engine_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto names = Names(*plan);
  EXPECT_TRUE(names.count("blk.1.attn_q.weight"));
  EXPECT_TRUE(names.count("blk.1.attn_norm.weight"));
  EXPECT_TRUE(names.count("blk.0.ffn_down.weight"));
  EXPECT_TRUE(names.count("blk.0.attn_v.weight"));
  EXPECT_TRUE(names.count("token_embd.weight"));
  EXPECT_FALSE(names.count("blk.1.attn_k.weight"));  // a sibling, not upstream
  EXPECT_FALSE(names.count("blk.2.attn_q.weight"));
  EXPECT_FALSE(names.count("output.weight"));
  EXPECT_EQ(names.size(), 1 + 9 + 2u);  // embedding, block 0, attn_norm and q of block 1
  EXPECT_EQ(plan->selected, 1u);
  EXPECT_EQ(plan->total_tensors, 30u);
  uint64_t need = 0;
  for (const auto& t : plan->tensors) {
    need += t.nbytes;
    uint64_t ranged = 0;
    for (const auto& r : t.ranges) ranged += r.size;
    EXPECT_EQ(ranged, t.nbytes) << t.name;
  }
  EXPECT_EQ(plan->need_bytes, need);
  EXPECT_NE(plan->Summary().find("need 12 of 30 tensors"), std::string::npos) << plan->Summary();
  req.closure = false;
  auto only = MakePlan(*engine_, req);
  ASSERT_TRUE(only.ok());
  EXPECT_EQ(only->tensors.size(), 1u);
}

TEST_F(PlannerTest, SqlAndSearchSelections) {
  PlanRequest req;
  req.version = "tiny";
  req.sql = "SELECT id FROM tensors WHERE role = 'ffn_down' AND layer = 2";
  req.closure = false;
  auto plan = MakePlan(*engine_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(Names(*plan), std::set<std::string>{"blk.2.ffn_down.weight"});
  // A block id stands for its tensors.
  req.sql = "SELECT id FROM components WHERE name = 'blk.0'";
  plan = MakePlan(*engine_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->tensors.size(), 9u);
  PlanRequest s;
  s.version = "tiny@1";
  s.search = "attn_output";
  s.closure = false;
  plan = MakePlan(*engine_, s);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tensors.size(), 3u);
  // Errors.
  s.names = {"x"};
  EXPECT_FALSE(MakePlan(*engine_, s).ok());  // two selections
  PlanRequest none;
  none.version = "tiny";
  none.names = {"nothing*"};
  EXPECT_EQ(MakePlan(*engine_, none).status().code(), absl::StatusCode::kNotFound);
  PlanRequest bad;
  bad.version = "tiny";
  bad.sql = "SELECT name FROM tensors";
  EXPECT_FALSE(MakePlan(*engine_, bad).ok());
}

TEST_F(PlannerTest, LoadedSubModelIsBitIdenticalTensorForTensor) {
  PlanRequest req;
  req.version = "tiny@1";
  req.names = {"blk.2.ffn_*"};
  auto plan = MakePlan(*engine_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::string out = root_ + "/sub.safetensors";
  ASSERT_TRUE(WritePlan(*engine_, *plan, out).ok());
  auto sub = formats::ReadSafetensors(out);
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->tensors.size(), plan->tensors.size());
  for (size_t i = 0; i < sub->tensors.size(); ++i) {
    const auto& t = sub->tensors[i];
    size_t orig = 0;
    while (src_.tensors[orig].name != t.name) ++orig;
    auto a = sub->TensorBytes(i), b = src_.TensorBytes(orig);
    ASSERT_EQ(a.size(), b.size()) << t.name;
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << t.name;
  }
}

TEST_F(PlannerTest, GgufSubModelKeepsMetadataAndBlocks) {
  // A GGUF with quantized tensors: the sub-model must be GGUF again.
  formats::GgufMetadata meta;
  formats::GgufValue arch{formats::GgufType::kString, std::string("llama")};
  formats::GgufValue lic{formats::GgufType::kString, std::string("mit")};
  meta.entries = {{"general.architecture", arch}, {"general.license", lic}};
  std::vector<formats::TensorDesc> descs;
  std::vector<std::vector<uint8_t>> data;
  for (const auto& n : LlamaNames(2)) {
    formats::TensorDesc d;
    d.name = n;
    d.dtype = DType::kQ8_0;
    d.shape = {4, 64};
    d.nbytes = 4 * 2 * 34;
    descs.push_back(d);
    data.push_back(RandomBytes(d.nbytes, descs.size()));
  }
  std::string path = root_ + "/q.gguf";
  ASSERT_TRUE(formats::WriteGguf(path, meta, descs, [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
    return std::span<const uint8_t>(data[i]);
  }).ok());
  auto src = formats::ReadGguf(path);
  ASSERT_TRUE(src.ok()) << src.status();
  auto r = store_->Ingest(*src, Opts("q"));
  ASSERT_TRUE(r.ok()) << r.status();
  PlanRequest req;
  req.version = "q@1";
  req.names = {"output.weight"};
  auto plan = MakePlan(*engine_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->tensors.size(), descs.size());  // the head needs everything upstream
  std::string out = root_ + "/sub.gguf";
  ASSERT_TRUE(WritePlan(*engine_, *plan, out).ok());
  auto sub = formats::ReadGguf(out);
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto hdr_meta = formats::ReadGgufMetadata(out);
  ASSERT_TRUE(hdr_meta.ok());
  EXPECT_EQ(hdr_meta->GetString("general.license"), "mit");
  for (size_t i = 0; i < sub->tensors.size(); ++i) {
    EXPECT_EQ(sub->tensors[i].dtype, DType::kQ8_0);
    auto a = sub->TensorBytes(i);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), data[i].begin())) << sub->tensors[i].name;
  }
  // Quantized tensors cannot go into safetensors.
  EXPECT_EQ(WritePlan(*engine_, *plan, root_ + "/x.safetensors", LoadFormat::kSafetensors).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hart::query

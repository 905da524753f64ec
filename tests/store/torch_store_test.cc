// PyTorch checkpoints through the store (fixtures by the real torch.save,
// tests/fixtures/make_torch.py): the original files come back byte for
// byte, and ExportSafetensors writes exactly the tensors torch.load gives
// (names, dtypes, shapes, bytes), checked both by our safetensors reader and
// by a python script that parses the header with json and the data with
// numpy (tests/fixtures/check_safetensors.py).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "core/file_util.h"
#include "core/sha256.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/safetensors.h"
#include "formats/torch.h"
#include "nlohmann/json.hpp"
#include "store/store.h"
#include "store_test_util.h"

namespace hart::store::testing {
namespace {

namespace fs = std::filesystem;

std::string* g_fixtures = nullptr;
nlohmann::json* g_expected = nullptr;

class TorchStoreTest : public StoreTest {
 public:
  static void SetUpTestSuite() {
    g_fixtures = new std::string(MakeTempDir("torch_fixtures"));
    std::string cmd = fmt::format("/usr/bin/python3 {}/tests/fixtures/make_torch.py {} >/dev/null",
                                  HART_SOURCE_DIR, *g_fixtures);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    g_expected = new nlohmann::json(nlohmann::json::parse(*ReadFile(*g_fixtures + "/expected.json")));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*g_fixtures, ec);
    delete g_fixtures;
    delete g_expected;
  }

 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (!(*g_expected)["torch"].get<bool>()) GTEST_SKIP() << "python3-torch is not installed";
  }

  int64_t Ingest(const formats::ModelSource& src, const std::string& model) {
    IngestOptions o = Opts(model);
    o.license = "mit";
    auto r = store_->Ingest(src, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->version_id : 0;
  }

  static std::string Hash(const std::string& path) { return ToHex(Sha256(ReadAll(path))); }

  // The exported file holds exactly the expected tensors (our reader).
  static void ExpectTensors(const std::string& file, const nlohmann::json& want) {
    auto back = formats::ReadSafetensors(file);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->metadata["format"], "pt");
    ASSERT_EQ(back->tensors.size(), want.size());
    for (const auto& w : want) {
      std::string name = w["name"];
      SCOPED_TRACE(name);
      auto it = std::find_if(back->tensors.begin(), back->tensors.end(),
                             [&](const formats::TensorDesc& t) { return t.name == name; });
      ASSERT_NE(it, back->tensors.end());
      EXPECT_EQ(Name(it->dtype), w["dtype"].get<std::string>());
      EXPECT_EQ(it->shape, w["shape"].get<Shape>());
      auto got = back->TensorBytes(static_cast<size_t>(it - back->tensors.begin()));
      auto raw = ReadAll(w["raw"]);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), raw.begin(), raw.end()));
    }
  }
};

TEST_F(TorchStoreTest, CheckpointsExportByteForByteAndAsSafetensorsLikeTorchLoad) {
  ASSERT_GE((*g_expected)["checkpoints"].size(), 9u);
  std::string groups;  // "out.safetensors checkpoint --" for one python run
  for (const auto& [name, ck] : (*g_expected)["checkpoints"].items()) {
    SCOPED_TRACE(name);
    std::string file = ck["file"];
    auto src = formats::ReadTorch(file);
    ASSERT_TRUE(src.ok()) << src.status();
    int64_t v = Ingest(*src, name);
    ASSERT_NE(v, 0);

    // The original format: the very bytes of the checkpoint (zip or legacy).
    std::string orig = root_ + "/" + name + ".pt";
    auto st = store_->Export(v, orig, /*verify=*/true, false);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_EQ(Hash(orig), Hash(file));

    std::string out = root_ + "/" + name + ".safetensors";
    st = store_->ExportSafetensors(v, out, /*verify=*/true, false);
    ASSERT_TRUE(st.ok()) << st;
    ExpectTensors(out, ck["tensors"]);
    groups += fmt::format(" {} {} --", out, file);
  }
  groups.resize(groups.size() - 3);  // the last " --"
  std::string cmd = fmt::format("/usr/bin/python3 {}/tests/fixtures/check_safetensors.py{} >/dev/null",
                                HART_SOURCE_DIR, groups);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST_F(TorchStoreTest, ShardedDirectoryIsOneVersionExportedWholeOrAsOneSafetensorsFile) {
  const nlohmann::json& want = (*g_expected)["hf"]["tiny-sharded"];
  std::string dir = want["dir"];
  auto src = formats::OpenModel(dir);
  ASSERT_TRUE(src.ok()) << src.status();
  int64_t v = Ingest(*src, "tiny-sharded");
  ASSERT_NE(v, 0);
  auto files = store_->ListFiles(v);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->size(), 4u);  // index, two shards, config.json

  std::string orig = root_ + "/orig";
  auto st = store_->Export(v, orig, /*verify=*/true, false);
  ASSERT_TRUE(st.ok()) << st;
  for (const char* f : {"pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin",
                        "pytorch_model-00002-of-00002.bin", "config.json"})
    EXPECT_EQ(Hash(orig + "/" + f), Hash(dir + "/" + f)) << f;

  // One file for all shards.
  std::string one = root_ + "/merged.safetensors";
  st = store_->ExportSafetensors(v, one, /*verify=*/true, false);
  ASSERT_TRUE(st.ok()) << st;
  ExpectTensors(one, want["tensors"]);
  std::string cmd = fmt::format("/usr/bin/python3 {0}/tests/fixtures/check_safetensors.py {1} "
                                "{2}/pytorch_model-00001-of-00002.bin {2}/pytorch_model-00002-of-00002.bin >/dev/null",
                                HART_SOURCE_DIR, one, dir);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;

  // Into a directory: model.safetensors and the sidecars, ready for from_pretrained.
  std::string hfdir = root_ + "/hf";
  st = store_->ExportSafetensors(v, hfdir, false, false);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(Hash(hfdir + "/model.safetensors"), Hash(one));
  EXPECT_EQ(Hash(hfdir + "/config.json"), Hash(dir + "/config.json"));
  EXPECT_FALSE(fs::exists(hfdir + "/pytorch_model.bin.index.json"));
}

TEST_F(TorchStoreTest, SafetensorsExportRefusesDtypesItCannotHold) {
  // A GGUF-only block type has no safetensors name: refused before writing.
  formats::ModelSource src = MakeSource(root_ + "/q", {{"q.bin", {}, {{"w", std::vector<uint8_t>(18, 1)}}, {}}});
  src.tensors[0].dtype = DType::kQ4_0;
  src.tensors[0].shape = {32};
  int64_t v = Ingest(src, "quant");
  ASSERT_NE(v, 0);
  auto st = store_->ExportSafetensors(v, root_ + "/q.safetensors", false, false);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(Msg(st).find("safetensors cannot hold"), std::string::npos) << st;
  EXPECT_FALSE(fs::exists(root_ + "/q.safetensors"));
}

}  // namespace
}  // namespace hart::store::testing

// PyTorch checkpoints end to end through the real `hart`: a Hugging Face
// directory (pytorch_model.bin or sharded .bin files with their index, plus
// config.json) ingests as one version, shows, exports byte for byte and as a
// safetensors file equal to what torch.load gives; a lying index is refused
// naming the file and field, and the store is left as it was.
#include "cli_runner.h"

namespace hart::cli_test {
namespace {

class CliTorchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixtures_ = new std::string(MakeTempDir("hart_torch_fx_"));
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_torch.py '" + *fixtures_ +
                      "' >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    expected_ = new nlohmann::json(nlohmann::json::parse(ReadAll(*fixtures_ + "/expected.json")));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*fixtures_, ec);
    delete fixtures_;
    delete expected_;
  }
  void SetUp() override {
    if (!(*expected_)["torch"].get<bool>()) GTEST_SKIP() << "python3-torch is not installed";
    ASSERT_TRUE(store_.Init());
  }

  static bool CheckWithTorch(const std::string& st_file, const std::vector<std::string>& checkpoints) {
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/check_safetensors.py '" + st_file + "'";
    for (const auto& c : checkpoints) cmd += " '" + c + "'";
    return std::system(cmd.c_str()) == 0;
  }

  TempStore store_;
  static std::string* fixtures_;
  static nlohmann::json* expected_;
};
std::string* CliTorchTest::fixtures_ = nullptr;
nlohmann::json* CliTorchTest::expected_ = nullptr;

TEST_F(CliTorchTest, HuggingFaceBinDirectoriesIngestShowAndExport) {
  for (const char* name : {"tiny-bin", "tiny-sharded"}) {
    SCOPED_TRACE(name);
    const nlohmann::json& want = (*expected_)["hf"][name];
    std::string dir = want["dir"];
    RunResult r = store_.Run({"ingest", "--json", dir, "--license", "apache-2.0"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    nlohmann::json j = r.Json();
    ASSERT_EQ(j.size(), 1u);
    EXPECT_EQ(j[0]["model"], name);  // the directory names the model
    EXPECT_EQ(j[0]["tensors"], want["tensors"].size());
    std::string version = j[0]["version"];

    r = store_.Run({"show", "--json", version});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    std::string shown = r.out;
    EXPECT_NE(shown.find("\"torch\""), std::string::npos) << shown;
    EXPECT_NE(shown.find("model.layers.0.mlp.up_proj.weight"), std::string::npos);
    EXPECT_NE(shown.find("BF16"), std::string::npos);
    r = store_.Run({"show", version});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);

    // The original files, byte for byte.
    std::string orig = store_.root() + "/orig_" + name;
    r = store_.Run({"export", version, "-o", orig, "--verify"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Sha256Tree(orig), Sha256Tree(dir));

    // -o *.safetensors converts: one file, whatever the shards.
    std::string st = store_.root() + "/" + name + ".safetensors";
    r = store_.Run({"export", "--json", version, "-o", st, "--verify"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(r.Json()["format"], "safetensors");
    std::vector<std::string> ckpts;
    for (const auto& f : want["files"]) ckpts.push_back(dir + "/" + f.get<std::string>());
    EXPECT_TRUE(CheckWithTorch(st, ckpts));

    // --format safetensors into a directory: model.safetensors + sidecars.
    std::string hf = store_.root() + "/hf_" + name;
    r = store_.Run({"export", version, "-o", hf, "--format", "safetensors"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Sha256File(hf + "/model.safetensors"), Sha256File(st));
    EXPECT_EQ(Sha256File(hf + "/config.json"), Sha256File(dir + "/config.json"));
  }
  RunResult r = store_.Run({"export", "tiny-bin", "-o", store_.root() + "/x", "--format", "onnx"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
}

TEST_F(CliTorchTest, SingleCheckpointFilesExportAsTheirTensors) {
  for (const char* name : {"views", "legacy", "shared"}) {
    SCOPED_TRACE(name);
    std::string file = (*expected_)["checkpoints"][name]["file"];
    RunResult r = store_.Run({"ingest", "--json", file, "--model", name, "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    std::string st = store_.root() + "/" + name + ".safetensors";
    r = store_.Run({"export", name, "-o", st});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_TRUE(CheckWithTorch(st, {file}));
    std::string pt = store_.root() + "/" + name + ".pt";
    r = store_.Run({"export", name, "-o", pt, "--verify"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Sha256File(pt), Sha256File(file));
  }
}

TEST_F(CliTorchTest, LyingBinIndexIsRefusedAndTheStoreIsUnchanged) {
  RunResult before = store_.Run({"stats", "--json"});
  ASSERT_EQ(before.exit_code, 0) << Describe(before);
  for (const auto& [name, lie] : (*expected_)["hf_lies"].items()) {
    SCOPED_TRACE(name);
    RunResult r = store_.Run({"ingest", lie["dir"].get<std::string>(), "--license", "mit"});
    EXPECT_NE(r.exit_code, 0) << Describe(r);
    EXPECT_NE(r.err.find("pytorch_model.bin.index.json"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(lie["field"].get<std::string>()), std::string::npos) << r.err;
  }
  RunResult after = store_.Run({"stats", "--json"});
  EXPECT_EQ(after.out, before.out);
  RunResult ls = store_.Run({"ls", "--json"});
  EXPECT_EQ(ls.Json().size(), 0u) << ls.out;
}

}  // namespace
}  // namespace hart::cli_test

// hart ingest + hart export give back every file byte for byte: single and
// sharded safetensors, GGUF, and the real vocabulary GGUFs in shared testdata.
#include <algorithm>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

class CliRoundTripTest : public ModelsFixtureTest {
 protected:
  // Ingests `path`, exports the version it made and compares every file.
  // Returns the ingest's JSON result.
  nlohmann::json RoundTrip(const std::string& path, const std::string& model,
                           const std::string& license = "") {
    std::vector<std::string> args = {"ingest", "--json", path, "--model", model};
    if (!license.empty()) args.insert(args.end(), {"--license", license});
    RunResult r = store_.Run(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    nlohmann::json j = r.Json();
    if (!j.is_array() || j.size() != 1) {
      ADD_FAILURE() << "ingest --json should print one result: " << r.out;
      return nullptr;
    }
    std::string version = j[0]["version"];
    EXPECT_EQ(j[0]["model"], model);
    EXPECT_EQ(j[0]["logical_bytes"].get<uint64_t>(), TotalSize(path)) << path;

    std::string out = store_.root() + "/export_" + model;
    r = store_.Run({"export", version, "-o", out, "--verify"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Sha256Tree(out), Sha256Tree(path)) << path << " exported as " << version;
    // Without --verify too, and by the bare model name (latest version).
    std::string out2 = out + "_plain";
    r = store_.Run({"export", model, "-o", out2});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Sha256Tree(out2), Sha256Tree(path));
    return j[0];
  }

  static uint64_t TotalSize(const std::string& path) {
    if (fs::is_regular_file(path)) return fs::file_size(path);
    uint64_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(path))
      if (e.is_regular_file()) n += e.file_size();
    return n;
  }
};

TEST_F(CliRoundTripTest, SafetensorsIsByteIdentical) {
  nlohmann::json j = RoundTrip(Fixture("base.safetensors"), "base", "apache-2.0");
  EXPECT_EQ(j["license"], "apache-2.0");
  EXPECT_EQ(j["tensors"], 39);
}

TEST_F(CliRoundTripTest, FineTunesAndGrownEmbeddingAreByteIdentical) {
  RoundTrip(Fixture("base.safetensors"), "base", "mit");
  nlohmann::json ft = RoundTrip(Fixture("ft1.safetensors"), "ft1", "mit");
  // Only the ~10% changed tensors are new bytes.
  EXPECT_LT(ft["new_bytes"].get<uint64_t>(), ft["logical_bytes"].get<uint64_t>() / 2);
  RoundTrip(Fixture("ft_vocab.safetensors"), "ft_vocab", "mit");
}

TEST_F(CliRoundTripTest, ShardedSafetensorsDirectoryIsByteIdentical) {
  nlohmann::json j = RoundTrip(Fixture("sharded"), "sharded", "mit");
  EXPECT_EQ(j["tensors"], 39);
}

TEST_F(CliRoundTripTest, GgufIsByteIdenticalAndKeepsItsLicense) {
  nlohmann::json j = RoundTrip(Fixture("model.gguf"), "tiny-gguf");
  EXPECT_EQ(j["license"], "mit");
  EXPECT_EQ(j["tensors"], 6);
  RunResult r = store_.Run({"show", "--json", "tiny-gguf@1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json show = r.Json();
  EXPECT_EQ(show["version"]["format"], "gguf");
  EXPECT_EQ(show["version"]["architecture"], "llama");
  std::vector<std::string> dtypes;
  for (const auto& t : show["tensors"]) dtypes.push_back(t["dtype"]);
  EXPECT_NE(std::find(dtypes.begin(), dtypes.end(), "Q8_0"), dtypes.end());
  EXPECT_NE(std::find(dtypes.begin(), dtypes.end(), "Q4_0"), dtypes.end());
}

TEST_F(CliRoundTripTest, FileSha256IsRecordedOnlyWhenAskedFor) {
  // Default: a file digest, no plain SHA-256 (null in JSON).
  RunResult r = store_.Run({"ingest", "--json", Fixture("model.gguf"), "--model", "plain"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = store_.Run({"show", "--json", "plain@1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json files = r.Json()["files"];
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(files[0]["sha256"].is_null()) << files;
  EXPECT_EQ(files[0]["digest"].get<std::string>().size(), 64u);

  r = store_.Run({"ingest", "--json", "--file-sha256", Fixture("model.gguf"), "--model", "hashed"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = store_.Run({"show", "--json", "hashed@1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json hashed = r.Json()["files"];
  ASSERT_EQ(hashed.size(), 1u);
  EXPECT_EQ(hashed[0]["sha256"], Sha256File(Fixture("model.gguf")));
  EXPECT_EQ(hashed[0]["digest"], files[0]["digest"]);
  // The table shows the plain hash when there is one.
  r = store_.Run({"show", "hashed@1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find(Sha256File(Fixture("model.gguf"))), std::string::npos) << r.out;
  r = store_.Run({"export", "hashed@1", "-o", store_.root() + "/hashed.gguf", "--verify"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliRoundTripTest, EveryVocabGgufIsByteIdentical) {
  std::string dir = HART_SOURCE_DIR "/../shared/testdata/llama-vocab";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " absent";
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".gguf") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    std::string model = fs::path(f).stem().string();
    RoundTrip(f, model, "mit");
  }
  RunResult r = store_.Run({"ls", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.Json().size(), files.size());
  r = store_.Run({"verify"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliRoundTripTest, SeveralPathsAreSeveralVersions) {
  RunResult r = store_.Run({"ingest", "--json", "--model", "lineage", "--license", "mit",
                            Fixture("base.safetensors"), Fixture("ft1.safetensors"),
                            Fixture("ft2.safetensors")});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["version"], "lineage@1");
  EXPECT_EQ(j[1]["version"], "lineage@2");
  EXPECT_EQ(j[2]["version"], "lineage@3");
  std::string out = store_.root() + "/l2.safetensors";
  r = store_.Run({"export", "lineage@2", "-o", out});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Sha256File(out), Sha256File(Fixture("ft1.safetensors")));
}

}  // namespace
}  // namespace hart::cli_test

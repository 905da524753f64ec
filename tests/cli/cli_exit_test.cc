// Exit statuses and error wording: 1 for usage and user errors (the store is
// left unchanged), 2 for bad data (a truncated file, a failed verify).
#include <fstream>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

class CliExitTest : public ModelsFixtureTest {
 protected:
  // A copy of fixture `name` cut to `keep` bytes.
  std::string Truncated(const std::string& name, uint64_t keep) {
    std::string path = store_.root() + "/trunc_" + name;
    fs::copy_file(Fixture(name), path);
    fs::resize_file(path, keep);
    return path;
  }

  void ExpectStoreEmpty() {
    RunResult r = store_.Run({"ls", "--json"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(r.Json(), nlohmann::json::array());
  }
};

TEST_F(CliExitTest, MissingStoreIsAUserErrorWithAHint) {
  std::string dir = store_.root() + "/nowhere";
  RunResult r = RunHart({"--store", dir, "ls"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.err, "hart: no store at " + dir + "; run `hart init`\n");
  EXPECT_TRUE(r.out.empty());
  EXPECT_FALSE(fs::exists(dir)) << "a read command must not create a store";
}

TEST_F(CliExitTest, InitTwiceIsFine) {
  RunResult r = store_.Run({"init"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  ExpectStoreEmpty();
}

TEST_F(CliExitTest, HartHomeNamesTheStoreWhenNoStoreFlag) {
  std::string home = store_.root() + "/home";
  ASSERT_EQ(::setenv("HART_HOME", home.c_str(), 1), 0);
  RunResult init = RunHart({"init", "--json"});
  RunResult ls = RunHart({"ls", "--json"});
  ::unsetenv("HART_HOME");
  ASSERT_EQ(init.exit_code, 0) << Describe(init);
  EXPECT_EQ(init.Json()["store"], home);
  EXPECT_TRUE(fs::exists(home + "/catalog.sqlite"));
  EXPECT_EQ(ls.exit_code, 0) << Describe(ls);
}

TEST_F(CliExitTest, MissingLicenseIsAUserErrorAndChangesNothing) {
  RunResult r = store_.Run({"ingest", Fixture("base.safetensors")});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.err.rfind("hart: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("license"), std::string::npos) << r.err;
  ExpectStoreEmpty();
  r = store_.Run({"events"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.find("version.created"), std::string::npos) << r.out;
}

TEST_F(CliExitTest, TruncatedFilesAreBadData) {
  uint64_t st_size = fs::file_size(Fixture("base.safetensors"));
  for (uint64_t keep : {uint64_t{4}, uint64_t{100}, st_size / 2, st_size - 1}) {
    RunResult r = store_.Run({"ingest", Truncated("base.safetensors", keep), "--license", "mit"});
    EXPECT_EQ(r.exit_code, 2) << "kept " << keep << " bytes: " << Describe(r);
    EXPECT_EQ(r.err.rfind("hart: ", 0), 0u) << r.err;
    fs::remove(store_.root() + "/trunc_base.safetensors");
  }
  uint64_t gguf_size = fs::file_size(Fixture("model.gguf"));
  for (uint64_t keep : {uint64_t{30}, gguf_size / 2, gguf_size - 7}) {
    RunResult r = store_.Run({"ingest", Truncated("model.gguf", keep)});
    EXPECT_EQ(r.exit_code, 2) << "kept " << keep << " bytes: " << Describe(r);
    fs::remove(store_.root() + "/trunc_model.gguf");
  }
  ExpectStoreEmpty();
}

TEST_F(CliExitTest, UsageErrorsAreExitOne) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"ingest"},
           {"no-such-command"},
           {"export", "base@1"},
           {"diff", "base@1"},
           {"ls", "--bogus-flag"},
           {"show", "no-such-model"},
           {"show", "base@x"},
           {"ingest", "/no/such/file.safetensors", "--license", "mit"},
           {"ingest", Fixture("base.safetensors"), "--license", "mit", "--parent", "nope@3"}}) {
    RunResult r = store_.Run(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << Describe(r);
    EXPECT_EQ(r.err.rfind("hart: ", 0), 0u) << r.err;
  }
  ExpectStoreEmpty();
  EXPECT_EQ(RunHart({"--help"}).exit_code, 0);
}

TEST_F(CliExitTest, VerifyFindsACorruptChunkAndNamesWhatItHurts) {
  RunResult r = store_.Run({"ingest", Fixture("base.safetensors"), "--license", "mit"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = store_.Run({"ingest", Fixture("ft1.safetensors"), "--license", "mit"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = store_.Run({"verify"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  // Flip one byte in the middle of the first pack: tensor data of base@1.
  std::string pack;
  for (const auto& e : fs::recursive_directory_iterator(store_.dir() + "/packs"))
    if (e.is_regular_file() && e.file_size() > 0 && (pack.empty() || e.path().string() < pack))
      pack = e.path().string();
  ASSERT_FALSE(pack.empty());
  {
    std::fstream f(pack, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t at = fs::file_size(pack) / 2;
    f.seekg(at);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(at);
    f.write(&c, 1);
  }
  r = store_.Run({"verify", "--json"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("hart: verify found 1 bad chunk"), std::string::npos) << r.err;
  nlohmann::json j = r.Json();
  EXPECT_EQ(j["ok"], false);
  ASSERT_EQ(j["bad"].size(), 1u) << j.dump();
  ASSERT_FALSE(j["bad"][0]["tensors"].empty()) << j.dump();
  bool hurts_base = false;
  for (const auto& t : j["bad"][0]["tensors"])
    hurts_base |= t.get<std::string>().rfind("base@1:", 0) == 0;
  EXPECT_TRUE(hurts_base) << j.dump();

  r = store_.Run({"verify"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("base@1:"), std::string::npos) << r.out;
  // Exporting a version through the bad chunk with --verify is bad data too.
  r = store_.Run({"export", "base@1", "-o", store_.root() + "/bad.safetensors", "--verify"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
}

TEST_F(CliExitTest, RmRefusesAParentWithoutForceAndNeverReusesTheNumber) {
  ASSERT_EQ(store_.Run({"ingest", Fixture("base.safetensors"), "--model", "m", "--license", "mit"}).exit_code, 0);
  ASSERT_EQ(store_.Run({"ingest", Fixture("ft1.safetensors"), "--model", "m", "--license", "mit",
                        "--parent", "m@1"}).exit_code, 0);
  RunResult r = store_.Run({"rm", "m@1"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("m@2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  r = store_.Run({"rm", "m"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(store_.Run({"ls", "--json"}).Json()[0]["versions"], 2);

  r = store_.Run({"rm", "m@2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.Json()["deleted"], "m@2");
  EXPECT_GT(r.Json()["exclusive_bytes"].get<int64_t>(), 0);
  r = store_.Run({"ingest", Fixture("ft1.safetensors"), "--model", "m", "--license", "mit", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.Json()[0]["number"], 3);
  r = store_.Run({"gc", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(store_.Run({"verify"}).exit_code, 0);
  r = store_.Run({"events"});
  EXPECT_NE(r.out.find("\"version.deleted\""), std::string::npos) << r.out;
}

}  // namespace
}  // namespace hart::cli_test

// A real trained model end to end: llama2.c's stories260K (TinyStories) with
// its tokenizer file, run from the file, ingested as one version, run from
// the store with and without a memory budget, exported byte for byte; bad
// checkpoints refused with the store left as it was.
#include <cstdlib>
#include <fstream>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

const std::string kStories = HART_SOURCE_DIR "/../shared/testdata/tinystories";
// Published by llama.cpp's implementation of this model (../shared/testdata/README.md):
// BOS added, prompt "Once upon a time", 40 tokens, greedy.
const std::string kPrompt = "Once upon a time";
const std::string kContinuation =
    ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.\n";

class Llama2cCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kStories + "/stories260K.bin")) GTEST_SKIP() << "no " << kStories;
    ASSERT_TRUE(store_.Init());
  }
  std::vector<std::string> Greedy(const std::string& model) {
    return {"run", model, kPrompt, "-n", "40", "--temp", "0"};
  }
  TempStore store_;
};

TEST_F(Llama2cCli, GreedyOutputIsThePublishedContinuation) {
  RunResult file = RunHart(Greedy(kStories + "/stories260K.bin"));
  ASSERT_EQ(file.exit_code, 0) << Describe(file);
  EXPECT_EQ(file.out, kContinuation);

  RunResult ing = store_.Run({"ingest", kStories + "/stories260K.bin", "--license", "mit", "--json"});
  ASSERT_EQ(ing.exit_code, 0) << Describe(ing);
  EXPECT_EQ(ing.Json()[0]["model"], "stories260K");
  RunResult stored = store_.Run(Greedy("stories260K"));
  ASSERT_EQ(stored.exit_code, 0) << Describe(stored);
  EXPECT_EQ(stored.out, kContinuation);
  // The largest group is 177 KiB: 250K streams every group through one slot, 400K through two.
  for (const char* budget : {"250K", "400K"}) {
    std::vector<std::string> args = Greedy("stories260K@1");
    args.insert(args.end(), {"--mem-budget", budget, "--stats"});
    RunResult r = store_.Run(args);
    ASSERT_EQ(r.exit_code, 0) << budget << Describe(r);
    EXPECT_EQ(r.out, kContinuation) << budget;
    EXPECT_NE(r.err.find("budget"), std::string::npos) << r.err;
  }
  std::vector<std::string> args = Greedy(kStories + "/stories260K.bin");
  args.insert(args.end(), {"--mem-budget", "400K"});
  RunResult budgeted_file = RunHart(args);
  ASSERT_EQ(budgeted_file.exit_code, 0) << Describe(budgeted_file);
  EXPECT_EQ(budgeted_file.out, kContinuation);
}

TEST_F(Llama2cCli, ExportIsByteIdenticalAndTheTreeIsLlama) {
  RunResult ing = store_.Run({"ingest", kStories + "/stories260K.bin", "--tokenizer", kStories + "/tok512.bin",
                              "--model", "stories", "--license", "mit"});
  ASSERT_EQ(ing.exit_code, 0) << Describe(ing);
  const std::string out = store_.root() + "/export";
  RunResult ex = store_.Run({"export", "stories@1", "-o", out, "--verify"});
  ASSERT_EQ(ex.exit_code, 0) << Describe(ex);
  auto got = Sha256Tree(out);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got["stories260K.bin"], Sha256File(kStories + "/stories260K.bin"));
  EXPECT_EQ(got["tok512.bin"], Sha256File(kStories + "/tok512.bin"));
  RunResult q = store_.Run({"sql", "--json",
                            "SELECT count(*) AS n FROM tensors WHERE ref = 'stories@1' AND role = 'attn_q'"});
  ASSERT_EQ(q.exit_code, 0) << Describe(q);
  EXPECT_EQ(q.Json()["n"], 5) << q.out;
  RunResult v = store_.Run({"show", "stories@1", "--json"});
  ASSERT_EQ(v.exit_code, 0) << Describe(v);
  EXPECT_EQ(v.Json()["version"]["format"], "llama2c") << v.out;
  EXPECT_EQ(v.Json()["version"]["architecture"], "llama") << v.out;
}

// Alone in a directory the checkpoint needs --tokenizer, and the error says so.
TEST_F(Llama2cCli, TokenizerNamedExplicitly) {
  const std::string dir = store_.root() + "/alone";
  fs::create_directories(dir + "/vocab");
  fs::copy_file(kStories + "/stories260K.bin", dir + "/stories260K.bin");
  fs::copy_file(kStories + "/tok512.bin", dir + "/vocab/sp512.model.bin");
  RunResult none = RunHart(Greedy(dir + "/stories260K.bin"));
  EXPECT_EQ(none.exit_code, 1) << Describe(none);
  EXPECT_NE(none.err.find("--tokenizer"), std::string::npos) << none.err;
  RunResult ing_none = store_.Run({"ingest", dir + "/stories260K.bin", "--license", "mit"});
  EXPECT_EQ(ing_none.exit_code, 1) << Describe(ing_none);
  std::vector<std::string> args = Greedy(dir + "/stories260K.bin");
  args.insert(args.end(), {"--tokenizer", dir + "/vocab/sp512.model.bin"});
  RunResult named = RunHart(args);
  ASSERT_EQ(named.exit_code, 0) << Describe(named);
  EXPECT_EQ(named.out, kContinuation);
}

TEST_F(Llama2cCli, BadCheckpointsAreRefusedAndTheStoreIsUnchanged) {
  RunResult ok = store_.Run({"ingest", kStories + "/stories260K.bin", "--license", "mit"});
  ASSERT_EQ(ok.exit_code, 0) << Describe(ok);
  RunResult before = store_.Run({"stats", "--json"});
  RunResult ls_before = store_.Run({"ls", "--json"});
  const std::string dir = store_.root() + "/bad";
  fs::create_directories(dir);
  fs::copy_file(kStories + "/tok512.bin", dir + "/tok512.bin");
  std::ifstream in(kStories + "/stories260K.bin", std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream f(dir + "/" + name, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return dir + "/" + name;
  };
  std::string bad_heads = good;
  bad_heads[12] = 7;  // n_heads 7 does not divide dim 64
  std::string bad_tok = ReadAll(kStories + "/tok512.bin");
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{write("truncated.bin", good.substr(0, good.size() - 100))}, "(truncated?)"},
      {{write("longer.bin", good + std::string(4, '\0'))}, "describes 1056540 bytes, the file has 1056544"},
      {{write("heads.bin", bad_heads), "--tokenizer", dir + "/tok512.bin"}, "offset 12: n_heads"},
      {{write("m.bin", good), "--tokenizer", write("short.tok", bad_tok.substr(0, 3000))}, "short.tok: offset"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"ingest"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.insert(args.end(), {"--license", "mit"});
    RunResult r = store_.Run(args);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_NE(r.err.find(c.want), std::string::npos) << r.err;
  }
  // hart run says the same about the file.
  RunResult run = RunHart({"run", dir + "/truncated.bin", "x", "-n", "1"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("(truncated?)"), std::string::npos) << run.err;
  EXPECT_EQ(store_.Run({"stats", "--json"}).out, before.out);
  EXPECT_EQ(store_.Run({"ls", "--json"}).out, ls_before.out);
}

}  // namespace
}  // namespace hart::cli_test

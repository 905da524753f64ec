// `hart run` / `hart chat` end to end on a tiny generated GGUF model: from
// the file and from the store, greedy output identical across memory
// budgets, seeds reproducible, context overflow an error unless --truncate.
#include <cstdlib>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

class RunCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("hart_run_models_"));
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" + *dir_ +
                      "' --type q8_0 --layers 3";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  static std::string Gguf() { return *dir_ + "/model.gguf"; }
  static std::string* dir_;
};
std::string* RunCommand::dir_ = nullptr;

TEST_F(RunCommand, GreedyOutputIsTheSameUnderEveryBudget) {
  RunResult full = RunHart({"run", Gguf(), "Hello", "-n", "12", "--temp", "0", "--stats"});
  ASSERT_EQ(full.exit_code, 0) << Describe(full);
  EXPECT_FALSE(full.out.empty());
  EXPECT_NE(full.err.find("decode"), std::string::npos) << full.err;
  EXPECT_NE(full.err.find("peak RSS"), std::string::npos) << full.err;
  // The tiny model's layers are 612 KiB; 620K holds one plus the norms.
  for (const char* budget : {"4M", "1300K", "620K"}) {
    RunResult r = RunHart({"run", Gguf(), "Hello", "-n", "12", "--temp", "0", "--mem-budget", budget, "--stats"});
    ASSERT_EQ(r.exit_code, 0) << budget << Describe(r);
    EXPECT_EQ(r.out, full.out) << budget;
    EXPECT_NE(r.err.find("budget"), std::string::npos) << r.err;
  }
}

TEST_F(RunCommand, TooSmallBudgetIsAClearError) {
  RunResult r = RunHart({"run", Gguf(), "Hello", "-n", "4", "--mem-budget", "10K"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("too small"), std::string::npos) << r.err;
}

TEST_F(RunCommand, SameSeedSameOutput) {
  std::vector<std::string> args = {"run", Gguf(), "Once", "-n", "16", "--temp", "1.2", "--seed", "7"};
  RunResult a = RunHart(args), b = RunHart(args);
  ASSERT_EQ(a.exit_code, 0) << Describe(a);
  EXPECT_EQ(a.out, b.out);
}

TEST_F(RunCommand, PromptLongerThanContextFailsUnlessTruncated) {
  const std::string long_prompt(40, 'x');
  RunResult r = RunHart({"run", Gguf(), long_prompt, "-n", "4", "--ctx", "16"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("--truncate"), std::string::npos) << r.err;
  RunResult t = RunHart({"run", Gguf(), long_prompt, "-n", "4", "--ctx", "16", "--truncate", "--stats"});
  EXPECT_EQ(t.exit_code, 0) << Describe(t);
  EXPECT_NE(t.err.find("truncated"), std::string::npos) << t.err;
}

TEST_F(RunCommand, RunsFromTheStore) {
  TempStore store;
  ASSERT_TRUE(store.Init());
  RunResult ing = store.Run({"ingest", Gguf(), "--model", "tiny", "--license", "mit"});
  ASSERT_EQ(ing.exit_code, 0) << Describe(ing);
  RunResult file = RunHart({"run", Gguf(), "Hello", "-n", "8", "--temp", "0"});
  RunResult stored = store.Run({"run", "tiny", "Hello", "-n", "8", "--temp", "0"});
  ASSERT_EQ(stored.exit_code, 0) << Describe(stored);
  EXPECT_EQ(stored.out, file.out);
  RunResult streamed = store.Run({"run", "tiny@1", "Hello", "-n", "8", "--temp", "0", "--mem-budget", "700K"});  // a layer and its block-aligned reads
  ASSERT_EQ(streamed.exit_code, 0) << Describe(streamed);
  EXPECT_EQ(streamed.out, file.out);
}

// llama.cpp's converters write 0xFFFFFFFF for special tokens a model lacks
// (sep, pad, cls, mask, eot); such a file runs, and the ids mean "none".
TEST_F(RunCommand, RunsAGgufWithMinusOneSpecialIds) {
  const std::string dir = *dir_ + "/null_ids";
  std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" + dir +
                    "' --type q8_0 --layers 3 --null-special-ids";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  RunResult plain = RunHart({"run", Gguf(), "Hello", "-n", "8", "--temp", "0"});
  RunResult nulls = RunHart({"run", dir + "/model.gguf", "Hello", "-n", "8", "--temp", "0"});
  ASSERT_EQ(nulls.exit_code, 0) << Describe(nulls);
  EXPECT_EQ(nulls.out, plain.out);
}

// A Hugging Face checkpoint directory (safetensors, config.json,
// tokenizer.json, tokenizer_config.json) ingested into the store runs with
// its own tokenizer and gives the same text as the same weights as GGUF.
TEST_F(RunCommand, RunsAnHfCheckpointFromTheStore) {
  const std::string hf = *dir_ + "/hf";
  std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" + hf +
                    "' --format hf --type f32 --also-gguf";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  TempStore store;
  ASSERT_TRUE(store.Init());
  RunResult ing = store.Run({"ingest", hf, "--model", "tiny-hf", "--license", "mit"});
  ASSERT_EQ(ing.exit_code, 0) << Describe(ing);
  RunResult gguf = RunHart({"run", hf + "/gguf/model.gguf", "Hello world", "-n", "10", "--temp", "0"});
  ASSERT_EQ(gguf.exit_code, 0) << Describe(gguf);
  for (const char* budget : {"", "3M"}) {
    std::vector<std::string> args = {"run", "tiny-hf", "Hello world", "-n", "10", "--temp", "0"};
    if (*budget) args.insert(args.end(), {"--mem-budget", budget});
    RunResult stored = store.Run(args);
    ASSERT_EQ(stored.exit_code, 0) << budget << Describe(stored);
    EXPECT_EQ(stored.out, gguf.out) << budget;
  }
  RunResult dir = RunHart({"run", hf, "Hello world", "-n", "10", "--temp", "0"});
  ASSERT_EQ(dir.exit_code, 0) << Describe(dir);
  EXPECT_EQ(dir.out, gguf.out);
  // hart chat picks the template from tokenizer_config.json's chat_template.
  const std::string out = *dir_ + "/hf_chat.out";
  std::string chat = "printf 'hi\\n' | " HART_BIN " --store '" + store.dir() + "' chat tiny-hf -n 4 --temp 0 > '" +
                     out + "' 2>&1";
  EXPECT_EQ(std::system(chat.c_str()), 0) << ReadAll(out);
}

TEST_F(RunCommand, ChatAnswersEachLine) {
  const std::string out = *dir_ + "/chat.out";
  std::string cmd = "printf 'hi\\nagain\\n' | " HART_BIN " chat '" + Gguf() +
                    "' --chat-format chatml -n 4 --temp 0 > '" + out + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadAll(out);
  std::string text = ReadAll(out);
  EXPECT_GE(std::count(text.begin(), text.end(), '\n'), 2) << text;
}

}  // namespace
}  // namespace hart::cli_test

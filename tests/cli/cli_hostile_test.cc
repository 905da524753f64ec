// Hostile input as a new user meets it: a FIFO or device instead of a file,
// empty files of every format, a symlink loop, one flipped byte in a GGUF
// key, a file that is no pickle given to `hart scan`, a whole pickled
// module. Each is refused at once, with one short printable message and the
// same exit status for the same kind of problem (1 user error, 2 bad data).
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

class CliHostileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store_.Init()); }

  // Runs hart in the background and kills it if it has not finished within
  // `seconds`: a command that blocks fails the test instead of hanging it.
  RunResult RunBounded(const std::vector<std::string>& args, int seconds = 20) {
    static int seq = 0;
    std::string base = store_.root() + "/bounded_" + std::to_string(seq++);
    HartProcess p(store_.Args(args), base + ".out", base + ".err");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!p.Poll() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bool finished = p.Poll();
    if (!finished) p.Kill();
    RunResult r = p.Wait();
    EXPECT_TRUE(finished) << "hart " << args[0] << " blocked for " << seconds << " s";
    return r;
  }

  void ExpectStoreEmpty() {
    RunResult r = store_.Run({"ls", "--json"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(r.Json(), nlohmann::json::array());
  }

  static void ExpectPrintable(const std::string& s) {
    for (size_t i = 0; i < s.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      EXPECT_TRUE(c >= 0x20 || c == '\n') << "control byte 0x" << std::hex << int(c) << " at " << std::dec
                                          << i << " in: " << s.substr(0, 400);
      if (c < 0x20 && c != '\n') return;
    }
  }

  TempStore store_;
};

TEST_F(CliHostileTest, FifoIsRefusedAtOnceForEveryFormat) {
  for (const char* name : {"f.safetensors", "f.gguf", "f.onnx", "f.pt", "f.bin", "f.json",
                           "f.safetensors.index.json"}) {
    std::string path = store_.root() + "/" + name;
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path;
    RunResult r = RunBounded({"ingest", path, "--license", "mit"});
    EXPECT_EQ(r.exit_code, 1) << name << ": " << Describe(r);
    EXPECT_EQ(r.err, "hart: " + path +
                         ": is a FIFO (named pipe), not a regular file; model files are read whole, so "
                         "copy it to a file first\n");
    r = RunBounded({"scan", path});
    EXPECT_EQ(r.exit_code, 1) << name << ": " << Describe(r);
    EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  }
  // A FIFO inside a model directory, under the names ingest looks for.
  std::string dir = store_.root() + "/hfdir";
  fs::create_directories(dir);
  ASSERT_EQ(::mkfifo((dir + "/model.safetensors").c_str(), 0600), 0);
  RunResult r = RunBounded({"ingest", dir, "--license", "mit"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  fs::remove(dir + "/model.safetensors");
  ASSERT_EQ(::mkfifo((dir + "/pytorch_model.bin").c_str(), 0600), 0);
  r = RunBounded({"ingest", dir, "--license", "mit"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  // A character device.
  r = RunBounded({"ingest", "/dev/zero", "--license", "mit"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("character device"), std::string::npos) << r.err;
  ExpectStoreEmpty();
}

TEST_F(CliHostileTest, EmptyFilesAreBadDataInEveryFormat) {
  for (const char* name : {"e.safetensors", "e.onnx", "e.gguf", "e.pt", "e.bin", "e.pth"}) {
    std::string path = store_.root() + "/" + name;
    std::ofstream(path).close();
    RunResult r = store_.Run({"ingest", path, "--license", "mit"});
    EXPECT_EQ(r.exit_code, 2) << name << ": " << Describe(r);
    EXPECT_EQ(r.err, "hart: " + path + ": empty file (0 bytes)\n") << name;
  }
  std::string empty = store_.root() + "/e.pt";
  RunResult r = store_.Run({"scan", empty});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(r.err, "hart: " + empty + ": empty file (0 bytes)\n");
  ExpectStoreEmpty();
}

TEST_F(CliHostileTest, SymlinkLoopIsNamedAsSuch) {
  std::string a = store_.root() + "/a.safetensors", b = store_.root() + "/b.safetensors";
  fs::create_symlink(b, a);
  fs::create_symlink(a, b);
  RunResult r = store_.Run({"ingest", a, "--license", "mit"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("symbolic link loop"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("no such file"), std::string::npos) << r.err;
  r = store_.Run({"scan", a});
  EXPECT_NE(r.err.find("symbolic link loop"), std::string::npos) << r.err;
}

TEST_F(CliHostileTest, FlippedGgufKeyLengthGivesAShortPrintableMessage) {
  std::string src = HART_SOURCE_DIR "/../shared/testdata/llama-vocab/ggml-vocab-bert-bge.gguf";
  if (!fs::exists(src)) GTEST_SKIP() << "no " << src;
  std::string path = store_.root() + "/x.gguf";
  fs::copy_file(src, path);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(410);
    f.put('\x32');
  }
  RunResult r = store_.Run({"ingest", path, "--license", "mit"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_LT(r.err.size(), 600u) << r.err.substr(0, 600);
  EXPECT_EQ(r.err.rfind("hart: " + path + ": offset ", 0), 0u) << r.err.substr(0, 600);
  ExpectPrintable(r.err);
  ExpectStoreEmpty();
}

TEST_F(CliHostileTest, ScanOfANonPickleSaysSo) {
  std::string path = store_.root() + "/notes.bin";
  std::ofstream(path) << "@hello, this is a text file\n";
  RunResult r = store_.Run({"scan", path});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("not a pickle"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("UNSAFE"), std::string::npos) << r.out;
  // A real hostile pickle is still UNSAFE, not "not a pickle".
  std::string evil = store_.root() + "/evil.pkl";
  std::ofstream(evil, std::ios::binary) << std::string("cos\nsystem\n(S'true'\ntR.", 23);
  r = store_.Run({"scan", evil});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.out.find("UNSAFE"), std::string::npos) << Describe(r);
}

TEST_F(CliHostileTest, WholeModulePickleSaysHowToResave) {
  std::string path = store_.root() + "/linear.pt";
  std::string cmd = "/usr/bin/python3 -c \"import torch; torch.manual_seed(0); "
                    "torch.save(torch.nn.Linear(2, 2), '" + path + "')\"";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "python3-torch is not installed";
  RunResult r = store_.Run({"ingest", path, "--license", "mit"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("torch.nn.modules.linear.Linear"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("torch.save(model.state_dict(), path)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was imported or run"), std::string::npos) << r.err;
  ExpectStoreEmpty();
  // Not for globals whose only use is running code.
  std::string evil = store_.root() + "/evil.pt";
  std::ofstream(evil, std::ios::binary) << std::string("\x80\x02" "cos\nsystem\nq\x00.", 16);
  r = store_.Run({"ingest", evil, "--license", "mit"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(r.err.find("state_dict"), std::string::npos) << r.err;
}

TEST_F(CliHostileTest, IngestHelpListsEveryFormatAndTheLicenseRule) {
  RunResult r = RunHart({"ingest", "--help"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* want : {"safetensors", ".safetensors.index.json", "GGUF", "split", "ONNX", "PyTorch",
                           ".bin", ".pt", ".pth", ".bin.index.json", "Hugging Face", "llama2.c",
                           "A license is required"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << " missing from:\n" << r.out;
}

}  // namespace
}  // namespace hart::cli_test

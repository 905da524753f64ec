// Test helpers for tests/cli: run the real `hart` binary (HART_BIN) with a
// store in a temp dir, capture stdout/stderr/exit status; spawn it in the
// background (crash and concurrency tests); fixtures and SHA-256 of outputs.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/mapped_file.h"
#include "core/sha256.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace hart::cli_test {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
  // stdout parsed as JSON; a test failure (and null) when it is not JSON.
  nlohmann::json Json() const {
    try {
      return nlohmann::json::parse(out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "stdout is not JSON (" << e.what() << "):\n" << out << "\nstderr:\n" << err;
      return nullptr;
    }
  }
};

inline std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = ::testing::TempDir() + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
    return "";
  }
  return buf.data();
}

inline std::string ReadAll(const std::string& path) {
  std::string s;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}

// A background `hart` process whose stdout/stderr go to files.
class HartProcess {
 public:
  HartProcess(const std::vector<std::string>& args, const std::string& out_path,
              const std::string& err_path)
      : out_path_(out_path), err_path_(err_path) {
    std::vector<std::string> argv_s = {HART_BIN, "--no-progress"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (posix_spawn(&pid_, HART_BIN, &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~HartProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  pid_t pid() const { return pid_; }
  void Kill(int sig = SIGKILL) {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
  }
  // True when the process has ended (reaps it).
  bool Poll() {
    if (reaped_) return true;
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) SetStatus(st);
    return reaped_;
  }
  RunResult Wait() {
    if (pid_ <= 0) {
      result_.err = "spawn failed";
      return result_;
    }
    if (!reaped_) {
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      SetStatus(st);
    }
    result_.out = ReadAll(out_path_);
    result_.err = ReadAll(err_path_);
    return result_;
  }

 private:
  void SetStatus(int st) {
    reaped_ = true;
    if (WIFEXITED(st)) result_.exit_code = WEXITSTATUS(st);
    if (WIFSIGNALED(st)) result_.signal = WTERMSIG(st);
  }
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string out_path_, err_path_;
  RunResult result_;
};

// Runs `hart --no-progress ARGS...` to completion.
inline RunResult RunHart(const std::vector<std::string>& args) {
  static std::atomic<int> seq{0};
  std::string base = ::testing::TempDir() + "/hart_run_" + std::to_string(::getpid()) + "_" +
                     std::to_string(seq++);
  HartProcess p(args, base + ".out", base + ".err");
  RunResult r = p.Wait();
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}

inline std::string Describe(const RunResult& r) {
  return "exit " + std::to_string(r.exit_code) + " signal " + std::to_string(r.signal) +
         "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// Writes the tiny fixture set (tests/fixtures/make_models.py) into dir.
inline bool MakeModels(const std::string& dir, const std::string& extra = "") {
  std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_models.py '" + dir +
                    "' " + extra;
  return std::system(cmd.c_str()) == 0;
}

inline std::string Sha256File(const std::string& path) {
  auto m = MappedFile::Open(path);
  if (!m.ok()) return "error: " + std::string(m.status().message());
  return ToHex(Sha256((*m)->bytes()));
}

// Relative path -> SHA-256 of every regular file under root (or of root itself
// when it is a file, under the key "").
inline std::map<std::string, std::string> Sha256Tree(const std::string& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  if (fs::is_regular_file(root, ec)) {
    out[""] = Sha256File(root);
    return out;
  }
  for (const auto& e : fs::recursive_directory_iterator(root, ec))
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = Sha256File(e.path());
  return out;
}

// A fresh store in a temp dir with `hart --store DIR` prepended to commands.
class TempStore {
 public:
  TempStore() : root_(MakeTempDir("hart_store_")), dir_(root_ + "/store") {}
  ~TempStore() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  const std::string& dir() const { return dir_; }
  const std::string& root() const { return root_; }
  std::vector<std::string> Args(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--store", dir_});
    return args;
  }
  RunResult Run(std::vector<std::string> args) const { return RunHart(Args(std::move(args))); }
  bool Init() const { return Run({"init"}).exit_code == 0; }

 private:
  std::string root_, dir_;
};

// A suite with make_models.py's models made once in a temp folder
// (Fixture(name) is a path in it) and a fresh, initialised TempStore per test.
class ModelsFixtureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixtures_ = new std::string(MakeTempDir("hart_fx_"));
    ASSERT_TRUE(MakeModels(*fixtures_));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*fixtures_, ec);
    delete fixtures_;
    fixtures_ = nullptr;
  }
  static std::string Fixture(const std::string& name) { return *fixtures_ + "/" + name; }

  void SetUp() override { ASSERT_TRUE(store_.Init()); }

  TempStore store_;
  static inline std::string* fixtures_ = nullptr;
};

}  // namespace hart::cli_test

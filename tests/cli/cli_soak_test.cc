// Concurrency soak: for a bounded time (HART_SOAK_SECONDS, default 20)
// several real `hart` processes work on one store at once: two ingesters,
// a deleter (`hart rm --force`), a gc loop, a querier (`hart sql`, `ls`,
// `show`, and `export` of committed versions checked bit-exact) and a runner
// (`hart run` of a tiny stored model, greedy, checked against its first
// output). Every command must succeed, except a gc that gives up because
// the store stayed busy. Afterwards verify is clean, exactly the committed
// versions are listed, and each exports bit-exact.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

using Clock = std::chrono::steady_clock;

// A copy of `src` with every 1 MiB of its data stamped differently.
void Variant(const std::string& src, const std::string& dst, uint64_t stamp) {
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
  int fd = ::open(dst.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint64_t header_len = 0;
  ASSERT_EQ(::pread(fd, &header_len, 8, 0), 8);
  for (uint64_t at = 8 + header_len; at + 8 <= fs::file_size(dst); at += 1 << 20) {
    uint64_t v = stamp ^ (at * 0x9E3779B97F4A7C15ull);
    ASSERT_EQ(::pwrite(fd, &v, 8, at), 8);
  }
  ::close(fd);
}

class CliSoakTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fx_ = store_.root() + "/fx";
    ASSERT_TRUE(MakeModels(fx_));
    ASSERT_TRUE(MakeModels(fx_, "--size-mb 3"));
    for (int i = 0; i < kVariants; ++i) {
      std::string f = fx_ + "/v" + std::to_string(i) + ".safetensors";
      Variant(fx_ + "/large.safetensors", f, 0x5000 + i);
      files_.push_back(f);
    }
    for (const char* f : {"base", "ft1", "ft2"}) files_.push_back(fx_ + "/" + f + ".safetensors");
    for (const auto& f : files_) sha_[f] = Sha256File(f);
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" +
                      fx_ + "/tiny' --type q8_0 --layers 2 >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ASSERT_TRUE(store_.Init());
    RunResult r = store_.Run({"ingest", fx_ + "/tiny/model.gguf", "--model", "tiny", "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = store_.Run({"run", "tiny", "Hello", "-n", "6", "--temp", "0"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    run_out_ = r.out;
    const char* s = std::getenv("HART_SOAK_SECONDS");
    seconds_ = s && *s ? std::atof(s) : 20;
  }

  static constexpr int kVariants = 4;

  struct Committed {
    std::string sha;
    int users = 0;         // querier/exporter holding it
    bool deleting = false;
  };

  // A committed version to read (marked in use), or "".
  std::string Borrow(std::mt19937& rng) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> ok;
    for (auto& [ref, c] : committed_)
      if (!c.deleting) ok.push_back(ref);
    if (ok.empty()) return "";
    std::string ref = ok[rng() % ok.size()];
    ++committed_[ref].users;
    return ref;
  }
  void Return(const std::string& ref) {
    std::lock_guard<std::mutex> l(mu_);
    --committed_[ref].users;
  }

  void Count(const std::string& what) {
    std::lock_guard<std::mutex> l(mu_);
    ++counts_[what];
  }

  void Ingester(int id, Clock::time_point end) {
    std::mt19937 rng(id);
    const std::string model = "soak" + std::to_string(id);
    while (Clock::now() < end) {
      const std::string& f = files_[rng() % files_.size()];
      RunResult r = store_.Run({"ingest", "--json", f, "--model", model, "--license", "mit"});
      EXPECT_EQ(r.exit_code, 0) << "ingest " << f << ": " << Describe(r);
      if (r.exit_code != 0) continue;
      std::string ref = model + "@" + std::to_string(r.Json()[0]["number"].get<int64_t>());
      std::lock_guard<std::mutex> l(mu_);
      committed_[ref].sha = sha_[f];
      ++counts_["ingest"];
    }
  }

  void Deleter(Clock::time_point end) {
    std::mt19937 rng(99);
    while (Clock::now() < end) {
      std::string ref;
      {
        std::lock_guard<std::mutex> l(mu_);
        std::vector<std::string> free;
        for (auto& [r, c] : committed_)
          if (!c.deleting && c.users == 0) free.push_back(r);
        // Keep a few versions around for the readers.
        if (free.size() > 3) {
          ref = free[rng() % free.size()];
          committed_[ref].deleting = true;
        }
      }
      if (ref.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      RunResult r = store_.Run({"rm", ref, "--force"});
      EXPECT_EQ(r.exit_code, 0) << "rm " << ref << ": " << Describe(r);
      std::lock_guard<std::mutex> l(mu_);
      if (r.exit_code == 0) {
        committed_.erase(ref);
        ++counts_["rm"];
      } else {
        committed_[ref].deleting = false;
      }
    }
  }

  void Gcer(Clock::time_point end) {
    while (Clock::now() < end) {
      RunResult r = store_.Run({"gc"});
      if (r.exit_code == 0) {
        Count("gc");
      } else {
        // The one failure allowed: the store stayed busy for gc's whole wait.
        EXPECT_NE(r.err.find("in use"), std::string::npos) << "gc: " << Describe(r);
        Count("gc busy");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  }

  void Querier(Clock::time_point end) {
    std::mt19937 rng(7);
    int round = 0;
    while (Clock::now() < end) {
      ++round;
      RunResult r = store_.Run({"sql", "--format", "csv", "SELECT COUNT(*) FROM versions"});
      EXPECT_EQ(r.exit_code, 0) << "sql: " << Describe(r);
      r = store_.Run({"ls", "--json"});
      EXPECT_EQ(r.exit_code, 0) << "ls: " << Describe(r);
      std::string ref = Borrow(rng);
      if (ref.empty()) continue;
      r = store_.Run({"show", ref, "--json"});
      EXPECT_EQ(r.exit_code, 0) << "show " << ref << ": " << Describe(r);
      std::string out = store_.root() + "/soak_export.safetensors";
      r = store_.Run({"export", ref, "-o", out});
      EXPECT_EQ(r.exit_code, 0) << "export " << ref << ": " << Describe(r);
      std::string want;
      {
        std::lock_guard<std::mutex> l(mu_);
        want = committed_[ref].sha;
      }
      EXPECT_EQ(Sha256File(out), want) << ref << " does not export bit-exact during the soak";
      fs::remove(out);
      Return(ref);
      Count("query round");
    }
  }

  void Runner(Clock::time_point end) {
    while (Clock::now() < end) {
      RunResult r = store_.Run({"run", "tiny", "Hello", "-n", "6", "--temp", "0"});
      EXPECT_EQ(r.exit_code, 0) << "run: " << Describe(r);
      EXPECT_EQ(r.out, run_out_) << "greedy output changed under load";
      Count("run");
    }
  }

  TempStore store_;
  std::string fx_, run_out_;
  std::vector<std::string> files_;
  std::map<std::string, std::string> sha_;
  double seconds_ = 20;
  std::mutex mu_;
  std::map<std::string, Committed> committed_;
  std::map<std::string, int> counts_;
};

TEST_F(CliSoakTest, ProcessesIngestDeleteGcQueryAndRunOnOneStore) {
  auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(seconds_));
  std::vector<std::thread> workers;
  workers.emplace_back([&] { Ingester(1, end); });
  workers.emplace_back([&] { Ingester(2, end); });
  workers.emplace_back([&] { Deleter(end); });
  workers.emplace_back([&] { Gcer(end); });
  workers.emplace_back([&] { Querier(end); });
  workers.emplace_back([&] { Runner(end); });
  for (auto& w : workers) w.join();

  std::string census;
  for (const auto& [k, n] : counts_) {
    census += " " + k + "=" + std::to_string(n);
    RecordProperty(k == "gc busy" ? "gc_busy" : k == "query round" ? "query_rounds" : k, n);
  }
  std::printf("[soak] %.0f s:%s, %zu versions committed at the end\n", seconds_, census.c_str(),
              committed_.size());
  EXPECT_GE(counts_["ingest"], 2);
  EXPECT_GE(counts_["run"], 1);
  EXPECT_GE(counts_["query round"], 1);

  // A final gc with the store quiet, then the promises.
  RunResult r = store_.Run({"gc"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = store_.Run({"verify"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = store_.Run({"sql", "--format", "csv",
                  "SELECT m.name || '@' || v.number FROM version v JOIN model m ON m.id = v.model_id "
                  "WHERE m.name LIKE 'soak%' ORDER BY 1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::set<std::string> listed;
  std::string line;
  bool header = true;
  for (char c : r.out) {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (!header) listed.insert(line);
    header = false;
    line.clear();
  }
  std::set<std::string> want;
  for (const auto& [ref, c] : committed_) want.insert(ref);
  EXPECT_EQ(listed, want);
  for (const auto& [ref, c] : committed_) {
    std::string out = store_.root() + "/final_export.safetensors";
    r = store_.Run({"export", ref, "-o", out});
    EXPECT_EQ(r.exit_code, 0) << ref << ": " << Describe(r);
    EXPECT_EQ(Sha256File(out), c.sha) << ref << " does not export bit-exact after the soak";
    fs::remove(out);
  }
  r = store_.Run({"run", "tiny", "Hello", "-n", "6", "--temp", "0"});
  EXPECT_EQ(r.out, run_out_);
}

}  // namespace
}  // namespace hart::cli_test

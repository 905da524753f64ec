// Several processes on one store: two `hart ingest` at once while readers
// (`hart ls`, `hart export`) loop; and two ingests of the same model, which
// must get distinct version numbers.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

constexpr int kModelMiB = 24;

// Makes a copy of `src` whose every 1 MiB of data differs from the original's.
void Variant(const std::string& src, const std::string& dst, uint64_t stamp) {
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
  int fd = ::open(dst.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint64_t header_len = 0;
  ASSERT_EQ(::pread(fd, &header_len, 8, 0), 8);
  for (uint64_t at = 8 + header_len; at + 8 <= fs::file_size(dst); at += 1 << 20)
    ASSERT_EQ(::pwrite(fd, &stamp, 8, at), 8);
  ::close(fd);
}

class CliConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fx_ = store_.root() + "/fx";
    ASSERT_TRUE(MakeModels(fx_));
    ASSERT_TRUE(MakeModels(fx_, "--size-mb " + std::to_string(kModelMiB)));
    Variant(fx_ + "/large.safetensors", fx_ + "/a.safetensors", 0xA);
    Variant(fx_ + "/large.safetensors", fx_ + "/b.safetensors", 0xB);
    ASSERT_TRUE(store_.Init());
    RunResult r = store_.Run({"ingest", fx_ + "/base.safetensors", "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  void ExpectExport(const std::string& version, const std::string& sha, const std::string& tag) {
    std::string out = store_.root() + "/export_" + tag + ".safetensors";
    RunResult r = store_.Run({"export", version, "-o", out});
    EXPECT_EQ(r.exit_code, 0) << version << ": " << Describe(r);
    EXPECT_EQ(Sha256File(out), sha) << version;
    fs::remove(out);
  }

  // Runs the writers to completion while readers loop; returns reader rounds.
  int WithReaders(std::vector<std::unique_ptr<HartProcess>>& writers) {
    std::string base_sha = Sha256File(fx_ + "/base.safetensors");
    std::atomic<bool> done{false};
    std::atomic<int> rounds{0};
    auto reader = [&](int id) {
      while (!done) {
        RunResult r = store_.Run({"ls", "--json"});
        EXPECT_EQ(r.exit_code, 0) << Describe(r);
        if (r.exit_code == 0) {
          EXPECT_TRUE(r.Json().is_array());
        }
        ExpectExport("base@1", base_sha, "reader" + std::to_string(id));
        ++rounds;
      }
    };
    std::thread r1(reader, 1), r2(reader, 2);
    for (auto& w : writers) {
      RunResult r = w->Wait();
      EXPECT_EQ(r.exit_code, 0) << Describe(r);
    }
    done = true;
    r1.join();
    r2.join();
    return rounds;
  }

  std::unique_ptr<HartProcess> Ingest(const std::string& file, const std::string& model,
                                      const std::string& tag) {
    return std::make_unique<HartProcess>(
        store_.Args({"ingest", "--json", file, "--model", model, "--license", "mit"}),
        store_.root() + "/" + tag + ".out", store_.root() + "/" + tag + ".err");
  }

  TempStore store_;
  std::string fx_;
};

TEST_F(CliConcurrencyTest, TwoIngestsOfDifferentModelsWithReaders) {
  std::vector<std::unique_ptr<HartProcess>> writers;
  writers.push_back(Ingest(fx_ + "/a.safetensors", "alpha", "w1"));
  writers.push_back(Ingest(fx_ + "/b.safetensors", "beta", "w2"));
  int rounds = WithReaders(writers);
  EXPECT_GE(rounds, 1);
  RecordProperty("reader_rounds", rounds);

  RunResult r = store_.Run({"ls", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::set<std::string> names;
  for (const auto& m : r.Json()) names.insert(m["name"]);
  EXPECT_EQ(names, (std::set<std::string>{"alpha", "base", "beta"}));
  r = store_.Run({"verify"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  ExpectExport("alpha@1", Sha256File(fx_ + "/a.safetensors"), "a");
  ExpectExport("beta@1", Sha256File(fx_ + "/b.safetensors"), "b");
}

TEST_F(CliConcurrencyTest, TwoIngestsOfOneModelGetDistinctVersions) {
  std::vector<std::unique_ptr<HartProcess>> writers;
  writers.push_back(Ingest(fx_ + "/a.safetensors", "gamma", "w1"));
  writers.push_back(Ingest(fx_ + "/b.safetensors", "gamma", "w2"));
  std::set<int64_t> numbers;
  std::map<int64_t, std::string> file_of;
  for (size_t i = 0; i < writers.size(); ++i) {
    RunResult r = writers[i]->Wait();
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    int64_t n = r.Json()[0]["number"];
    numbers.insert(n);
    file_of[n] = fx_ + (i == 0 ? "/a.safetensors" : "/b.safetensors");
  }
  EXPECT_EQ(numbers, (std::set<int64_t>{1, 2}));
  RunResult r = store_.Run({"verify"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  for (const auto& [n, file] : file_of)
    ExpectExport("gamma@" + std::to_string(n), Sha256File(file), "g" + std::to_string(n));
}

}  // namespace
}  // namespace hart::cli_test

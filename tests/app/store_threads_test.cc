// The store's thread contract (store/store.h "Threads"): one Store shared by
// many threads, each running reads and MQE queries (every query::Engine on
// a connection of its own) while another thread ingests. Every read must
// see a consistent, correct state: the versions that were committed, whole,
// and the ingest must land.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "app/catalog.h"
#include "app/query.h"
#include "app/transfer.h"
#include "tests/app/app_test_util.h"

namespace hart::app {
namespace {

using testing::AppTest;
using testing::Fixture;

std::vector<uint8_t> FileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

TEST_F(AppTest, ManyThreadsReadAndQueryOneStoreWhileAnotherIngests) {
  Ingest("base.safetensors", "m");
  auto show = Show(ctx_, {"m@1"});
  ASSERT_TRUE(show.ok());
  const uint64_t tensors = show->tensors.size();
  const std::string probe = show->tensors[1].name;
  auto probe_bytes = ctx_.st().ReadTensor(show->version.id, probe);
  ASSERT_TRUE(probe_bytes.ok());
  const std::vector<uint8_t> want_tensor(probe_bytes->bytes().begin(), probe_bytes->bytes().end());
  const std::vector<uint8_t> want_file = FileBytes(Fixture("base.safetensors"));

  constexpr int kReaders = 4;
  constexpr int kRounds = 15;
  std::atomic<bool> ingest_done{false};
  std::atomic<int> failures{0};
  std::atomic<int> saw_second_version{0};
  std::vector<std::string> errors(kReaders);
  auto fail = [&](int t, const std::string& what) {
    if (failures++ == 0 || errors[t].empty()) errors[t] = what;
  };

  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      for (int round = 0; round < kRounds || !ingest_done.load(); ++round) {
        if (round > 500) break;  // bounded even if the ingest hangs
        auto l = List(ctx_, {});
        if (!l.ok()) return fail(t, "list: " + std::string(l.status().message()));
        // Versions appear whole: either only m, or m and n with n@1 complete.
        for (const auto& m : l->models) {
          if (m.name == "n") {
            auto s = Show(ctx_, {"n@1"});
            if (!s.ok()) return fail(t, "show n@1: " + std::string(s.status().message()));
            if (s->tensors.size() != s->version.tensors || s->tensors.empty())
              return fail(t, "n@1 seen half-written");
            ++saw_second_version;
          }
        }
        auto s = Show(ctx_, {"m@1"});
        if (!s.ok() || s->tensors.size() != tensors) return fail(t, "show m@1");
        auto q = Sql(ctx_, {.sql = "SELECT COUNT(*) FROM tensors WHERE ref = 'm@1'"});
        if (!q.ok()) return fail(t, "sql: " + std::string(q.status().message()));
        if (q->rows.size() != 1 || std::get<int64_t>(q->rows[0][0]) != static_cast<int64_t>(tensors))
          return fail(t, "sql count");
        auto found = Search(ctx_, {"q_proj", 5});
        if (!found.ok() || found->hits.empty()) return fail(t, "search");
        auto bytes = ctx_.st().ReadTensor(s->version.id, probe);
        if (!bytes.ok() || !std::equal(bytes->bytes().begin(), bytes->bytes().end(), want_tensor.begin(),
                                       want_tensor.end()))
          return fail(t, "read tensor");
        auto reader = ExportFileReader::Open(ctx_, "m@1");
        if (!reader.ok()) return fail(t, "export open");
        uint64_t off = (static_cast<uint64_t>(round) * 7919 + t * 104729) % want_file.size();
        uint64_t len = std::min<uint64_t>(want_file.size() - off, 300000);
        std::vector<uint8_t> got;
        absl::Status rs = reader->Read(off, len, [&](std::span<const uint8_t> b) {
          got.insert(got.end(), b.begin(), b.end());
          return absl::OkStatus();
        });
        if (!rs.ok() || !std::equal(got.begin(), got.end(), want_file.begin() + off))
          return fail(t, "export range");
      }
    });
  }
  // The writer: a second model, ingested while the readers run.
  IngestRequest req;
  req.path = Fixture("ft2.safetensors");
  req.model = "n";
  req.license = "mit";
  auto ing = app::Ingest(ctx_, req);
  ingest_done = true;
  for (auto& th : readers) th.join();

  ASSERT_TRUE(ing.ok()) << ing.status();
  for (int t = 0; t < kReaders; ++t) EXPECT_TRUE(errors[t].empty()) << "reader " << t << ": " << errors[t];
  EXPECT_EQ(failures.load(), 0);
  auto after = List(ctx_, {});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->models.size(), 2u);
  auto n = Show(ctx_, {"n@1"});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->tensors.size(), n->version.tensors);
}

}  // namespace
}  // namespace hart::app

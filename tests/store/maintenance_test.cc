// Diff, verify, gc, stats and events on real stores.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/status.h"
#include "fmt/format.h"

#include "store/store.h"
#include "store_test_util.h"

namespace hart::store::testing {
namespace {

void Sql(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

std::vector<TestFile> Base(uint64_t seed) {
  return {{"m.safetensors",
           {'h', 'd', 'r'},
           {{"a", RandomBytes(2 << 20, seed)}, {"b", RandomBytes(300000, seed + 1)},
            {"c", RandomBytes(5000, seed + 2)}},
           {}}};
}

TEST_F(StoreTest, DiffNamesAddedRemovedAndChangedTensors) {
  auto a = Base(1);
  auto b = a;
  b[0].tensors[0].bytes[(1 << 20) + 5] ^= 1;  // second chunk of "a" changes
  b[0].tensors.erase(b[0].tensors.begin() + 2);  // "c" removed
  b[0].tensors.push_back({"d", RandomBytes(64, 9)});
  auto ra = store_->Ingest(MakeSource(root_ + "/a", a), Opts("m"));
  auto rb = store_->Ingest(MakeSource(root_ + "/b", b), Opts("m"));
  ASSERT_TRUE(ra.ok() && rb.ok());
  auto d = store_->Diff(ra->version_id, rb->version_id);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 3u);
  EXPECT_EQ((*d)[0].name, "a");
  EXPECT_EQ((*d)[0].kind, DiffRow::Kind::kChanged);
  EXPECT_EQ((*d)[0].changed_bytes, uint64_t{1} << 20);
  EXPECT_EQ((*d)[0].bytes_a, uint64_t{2} << 20);
  EXPECT_EQ((*d)[1].name, "c");
  EXPECT_EQ((*d)[1].kind, DiffRow::Kind::kRemoved);
  EXPECT_EQ((*d)[1].dtype_a, "U8");
  EXPECT_EQ((*d)[1].dtype_b, "");
  EXPECT_EQ((*d)[2].name, "d");
  EXPECT_EQ((*d)[2].kind, DiffRow::Kind::kAdded);
  EXPECT_EQ((*d)[2].bytes_b, 64u);
  auto same = store_->Diff(ra->version_id, ra->version_id);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->empty());
}

TEST_F(StoreTest, VerifyFindsAFlippedByteAndNamesTheTensor) {
  auto r = store_->Ingest(MakeSource(root_ + "/a", Base(2)), Opts("m"));
  ASSERT_TRUE(r.ok());
  auto clean = store_->Verify(false);
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_TRUE(clean->ok());
  EXPECT_EQ(clean->chunks, r->new_chunks);

  // Flip one byte inside tensor "b" in its pack.
  sqlite3* db = store_->catalog();
  int64_t pack = One(db, "SELECT c.pack FROM chunk c JOIN tensor_chunk tc ON tc.chunk_id = c.id "
                         "JOIN component co ON co.id = tc.component_id WHERE co.name = 'b'");
  int64_t off = One(db, "SELECT c.offset FROM chunk c JOIN tensor_chunk tc ON tc.chunk_id = c.id "
                        "JOIN component co ON co.id = tc.component_id WHERE co.name = 'b'");
  std::string path = fmt::format("{}/packs/{:06d}.pack", dir_, pack);
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t byte;
  ASSERT_EQ(::pread(fd, &byte, 1, off + 1000), 1);
  byte ^= 0x40;
  ASSERT_EQ(::pwrite(fd, &byte, 1, off + 1000), 1);
  ::close(fd);

  auto bad = store_->Verify(false);
  ASSERT_TRUE(bad.ok()) << bad.status();
  ASSERT_EQ(bad->bad.size(), 1u);
  EXPECT_EQ(bad->bad[0].reason, "hash mismatch");
  EXPECT_EQ(bad->bad[0].tensors, std::vector<std::string>{"m@1:b"});
  EXPECT_EQ(bad->bad[0].offset, static_cast<uint64_t>(off));
  // Export with verify refuses the damaged file.
  EXPECT_EQ(store_->Export(r->version_id, root_ + "/x", true, false).code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/x"));

  // A missing pack is reported too.
  std::filesystem::remove(path);
  auto gone = store_->Verify(false);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->bad.size(), gone->chunks);
  EXPECT_EQ(gone->bad[0].reason, "pack missing");
}

TEST_F(StoreTest, GcReclaimsTornTailsOrphanPacksAndDeadChunks) {
  auto r1 = store_->Ingest(MakeSource(root_ + "/a", Base(3)), Opts("m"));
  auto other = Base(30);
  other[0].tensors[1] = Base(3)[0].tensors[1];  // shares "b" with m@1
  auto r2 = store_->Ingest(MakeSource(root_ + "/b", other), Opts("m"));
  ASSERT_TRUE(r1.ok() && r2.ok());
  auto export_of = [&](int64_t vid) {
    std::string out = fmt::format("{}/e{}.bin", root_, vid);
    EXPECT_TRUE(store_->Export(vid, out, true, false).ok());
    return ReadAll(out);
  };
  auto want2 = export_of(r2->version_id);

  // A torn tail on the pack, and an orphan pack from a crashed writer.
  auto packs = [&] {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::directory_iterator(dir_ + "/packs")) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  };
  ASSERT_EQ(packs().size(), 1u);
  std::string pack = packs()[0];
  // Where the live bytes end: a direct-I/O ingest pads its last block, and
  // that pad is dead space too.
  uint64_t good_size = static_cast<uint64_t>(One(store_->catalog(), "SELECT MAX(offset + size) FROM chunk"));
  uint64_t pad = std::filesystem::file_size(pack) - good_size;
  EXPECT_LT(pad, 4096u);
  {
    std::ofstream f(pack, std::ios::binary | std::ios::app);
    f << std::string(12345, 'x');
  }
  WriteAllBytes(dir_ + "/packs/000077.pack", RandomBytes(999, 1));
  auto g1 = store_->Gc();
  ASSERT_TRUE(g1.ok()) << g1.status();
  EXPECT_EQ(g1->packs_deleted, 1u);
  EXPECT_EQ(g1->bytes_reclaimed, pad + 12345u + 999u);
  EXPECT_EQ(std::filesystem::file_size(pack), good_size);
  EXPECT_EQ(packs().size(), 1u);

  // Dropping m@1 leaves dead chunks between live ones: the pack is rewritten.
  ASSERT_TRUE(store_->DeleteVersion({"m", 1}).ok());
  auto g2 = store_->Gc();
  ASSERT_TRUE(g2.ok()) << g2.status();
  EXPECT_GT(g2->chunks_removed, 0u);
  EXPECT_EQ(g2->packs_rewritten, 1u);
  EXPECT_GE(g2->bytes_reclaimed, uint64_t{2} << 20);
  EXPECT_EQ(One(store_->catalog(), "SELECT COUNT(*) FROM chunk"),
            One(store_->catalog(), "SELECT COUNT(DISTINCT chunk_id) FROM (SELECT chunk_id FROM "
                                   "tensor_chunk UNION ALL SELECT chunk_id FROM segment_chunk)"));
  auto v = store_->Verify(false);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  EXPECT_EQ(export_of(r2->version_id), want2);
  auto t = store_->ReadTensor(r2->version_id, "a");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->zero_copy());  // copied in offset order: still one span

  // Nothing left to do.
  auto g3 = store_->Gc();
  ASSERT_TRUE(g3.ok());
  EXPECT_EQ(g3->bytes_reclaimed, 0u);

  auto ev = store_->Events(0);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 6u);  // created x2, gc, deleted, gc x2
  EXPECT_EQ((*ev)[0].kind, "version.created");
  EXPECT_EQ((*ev)[0].payload["model"], "m");
  EXPECT_EQ((*ev)[0].payload["number"], 1);
  EXPECT_EQ((*ev)[2].kind, "gc.completed");
  EXPECT_EQ((*ev)[2].payload["packs_deleted"], 1);
  auto after = store_->Events((*ev)[1].id, 2);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].id, (*ev)[2].id);
}

TEST_F(StoreTest, DeleteVersionRemovesItsRowsKeepsSharedBytesAndNeverReusesNumbersOrIds) {
  auto r1 = store_->Ingest(MakeSource(root_ + "/a", Base(3)), Opts("m"));
  ASSERT_TRUE(r1.ok());
  auto other = Base(30);
  other[0].tensors[1] = Base(3)[0].tensors[1];  // shares "b" with m@1
  IngestOptions child = Opts("m");
  child.parent = VersionRef{"m", 1};
  auto r2 = store_->Ingest(MakeSource(root_ + "/b", other), child);
  auto r3 = store_->Ingest(MakeSource(root_ + "/c", Base(300)), Opts("m"));
  ASSERT_TRUE(r2.ok() && r3.ok());
  std::string want2 = root_ + "/want2.bin";
  ASSERT_TRUE(store_->Export(r2->version_id, want2, true, false).ok());
  sqlite3* db = store_->catalog();
  const int64_t max_component = One(db, "SELECT MAX(id) FROM component");
  // Pack bytes no chunk holds (the header and direct-I/O block alignment):
  // dead space a rewriting gc reclaims along with the deleted version's.
  uint64_t pack_bytes = 0;
  for (auto& e : std::filesystem::directory_iterator(dir_ + "/packs")) pack_bytes += e.file_size();
  const uint64_t slack = pack_bytes - static_cast<uint64_t>(One(db, "SELECT SUM(size) FROM chunk"));

  // No number, no such version: refused. A parent: refused without force,
  // naming the child, and nothing changes.
  EXPECT_EQ(store_->DeleteVersion({"m", std::nullopt}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->DeleteVersion({"m", 9}).status().code(), absl::StatusCode::kNotFound);
  auto refused = store_->DeleteVersion({"m", 1});
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(Msg(refused.status())).find("m@2"), std::string::npos) << refused.status();
  EXPECT_EQ(store_->ListVersions("m")->size(), 3u);

  auto d1 = store_->DeleteVersion({"m", 1}, /*force=*/true);
  ASSERT_TRUE(d1.ok()) << d1.status();
  EXPECT_EQ(d1->ref, "m@1");
  EXPECT_EQ(d1->children, std::vector<std::string>{"m@2"});
  EXPECT_EQ(d1->tensors, 3u);
  EXPECT_EQ(d1->exclusive_bytes, (uint64_t{2} << 20) + 5000u);  // "a" and "c"; "b" and the header stay
  auto versions = store_->ListVersions("m");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].ref(), "m@2");
  EXPECT_FALSE((*versions)[0].parent.has_value());  // relinked to m@1's parent: none
  std::string v1 = std::to_string(r1->version_id);
  for (const char* t : {"component", "segment", "segment_chunk", "file", "fts_doc"})
    EXPECT_EQ(One(db, fmt::format("SELECT COUNT(*) FROM {} WHERE version_id = {}", t, v1)), 0) << t;
  EXPECT_EQ(One(db, "SELECT COUNT(*) FROM embedding WHERE component_id NOT IN (SELECT id FROM component)"), 0);
  EXPECT_EQ(One(db, "SELECT COUNT(*) FROM tensor_chunk WHERE component_id NOT IN (SELECT id FROM component)"), 0);
  EXPECT_FALSE(store_->Resolve({"m", 1}).ok());

  // gc reclaims what only m@1 held, plus the slack, less the header of the
  // pack it rewrote the live chunks into; m@2 still exports bit for bit.
  auto g = store_->Gc();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->bytes_reclaimed, d1->exclusive_bytes + slack - 16);
  std::string got2 = root_ + "/got2.bin";
  ASSERT_TRUE(store_->Export(r2->version_id, got2, true, false).ok());
  EXPECT_EQ(ReadAll(got2), ReadAll(want2));
  auto v = store_->Verify(false);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());

  // Deleting the newest version frees the highest ids; the next ingest
  // still gets a new number, a new version id and new component ids.
  ASSERT_TRUE(store_->DeleteVersion({"m", 3}).ok());
  auto r4 = store_->Ingest(MakeSource(root_ + "/d", Base(300)), Opts("m"));
  ASSERT_TRUE(r4.ok()) << r4.status();
  EXPECT_EQ(r4->number, 4);
  EXPECT_GT(r4->version_id, r3->version_id);
  EXPECT_GT(One(db, fmt::format("SELECT MIN(id) FROM component WHERE version_id = {}", r4->version_id)),
            max_component);
  EXPECT_EQ(One(db, "SELECT COUNT(*) FROM component WHERE name = '' AND kind = 'model'"), 0);

  auto ev = store_->Events(0);
  ASSERT_TRUE(ev.ok());
  int deleted = 0;
  for (const auto& e : *ev)
    if (e.kind == "version.deleted") {
      ++deleted;
      if (e.payload["number"] == 1) {
        EXPECT_EQ(e.payload["children_relinked"], nlohmann::json({"m@2"}));
      }
    }
  EXPECT_EQ(deleted, 2);
}

TEST_F(StoreTest, GcWaitsForNoOtherUserAndFailsClearly) {
  auto second = Store::Open(dir_);
  ASSERT_TRUE(second.ok());
  // Another process reading: emulate with a shared flock on LOCK.
  int fd = ::open((dir_ + "/LOCK").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_SH), 0);
  (*second)->set_gc_wait(std::chrono::milliseconds(200));
  auto g = (*second)->Gc();
  EXPECT_EQ(g.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(g.status().message()).find("in use"), std::string::npos);
  ::close(fd);
  EXPECT_TRUE((*second)->Gc().ok());
}

TEST_F(StoreTest, StatsCountLogicalAndPhysicalBytes) {
  auto src = MakeSource(root_ + "/a", Base(4));
  ASSERT_TRUE(store_->Ingest(src, Opts("m")).ok());
  ASSERT_TRUE(store_->Ingest(src, Opts("m")).ok());
  ASSERT_TRUE(store_->Ingest(MakeSource(root_ + "/b", Base(40)), Opts("n")).ok());
  auto s = store_->Stats();
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->models.size(), 2u);
  const StatsRow& m = s->models[0];
  EXPECT_EQ(m.model, "m");
  EXPECT_EQ(m.versions, 2u);
  EXPECT_EQ(m.tensors, 6u);
  EXPECT_EQ(m.logical_bytes, 2 * src.files[0].map->size());
  EXPECT_EQ(m.physical_bytes, src.files[0].map->size());
  EXPECT_DOUBLE_EQ(m.dedup_ratio, 2.0);
  EXPECT_EQ(s->total.versions, 3u);
  // The 3-byte header "hdr" is one chunk shared by both models.
  EXPECT_EQ(s->total.physical_bytes, 2 * src.files[0].map->size() - 3);
  EXPECT_GE(s->pack_bytes, s->total.physical_bytes);
  EXPECT_GT(s->catalog_bytes, 0u);
}

}  // namespace
}  // namespace hart::store::testing

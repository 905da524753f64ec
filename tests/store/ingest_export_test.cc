#include <sqlite3.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "core/sha256.h"
#include "fmt/format.h"

#include "store/store.h"
#include "store_test_util.h"

namespace hart::store::testing {
namespace {

int64_t Count(sqlite3* db, const std::string& table) { return One(db, "SELECT COUNT(*) FROM " + table); }

uint64_t PackBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/packs")) n += e.file_size();
  return n;
}

std::vector<TestFile> OneFile(uint64_t seed) {
  return {{"tiny.safetensors",
           {'H', 'D', 'R', '1', 0, 1, 2, 3},
           {{"embed", RandomBytes(2621440 + 17, seed)},  // 2.5 MiB + 17: three chunks
            {"norm", RandomBytes(100, seed + 1)},
            {"empty", {}}},
           {'E', 'N', 'D'}}};
}

TEST_F(StoreTest, IngestThenExportGivesTheOriginalBytes) {
  auto src = MakeSource(root_ + "/src", OneFile(1));
  auto r = store_->Ingest(src, Opts());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "tiny");
  EXPECT_EQ(r->number, 1);
  EXPECT_EQ(r->tensors, 3u);
  EXPECT_EQ(r->license, "mit");
  EXPECT_EQ(r->logical_bytes, src.files[0].map->size());
  EXPECT_EQ(r->chunks, 3u + 1u + 2u);  // embed 3, norm 1, header 1, trailer 1
  EXPECT_EQ(r->new_chunks, r->chunks);
  EXPECT_FALSE(r->suggested_parent);

  std::string out = root_ + "/out.safetensors";
  ASSERT_TRUE(store_->Export(r->version_id, out, /*verify=*/true, false).ok());
  EXPECT_EQ(ReadAll(out), ReadAll(root_ + "/src/tiny.safetensors"));

  auto files = store_->ListFiles(r->version_id);
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  auto data = ReadAll(out);
  // The file digest always; the plain SHA-256 only when asked for.
  EXPECT_EQ((*files)[0].digest.size(), 64u);
  EXPECT_TRUE((*files)[0].sha256.empty());
  EXPECT_EQ((*files)[0].size, data.size());

  auto versions = store_->ListVersions("tiny");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ((*versions)[0].ref(), "tiny@1");
  EXPECT_EQ((*versions)[0].architecture, "llama");
  EXPECT_EQ((*versions)[0].metadata["general.name"], "tiny");
  EXPECT_EQ((*versions)[0].tensors, 3u);

  // ReadFileRange across segment borders (header | embed).
  std::vector<uint8_t> mid(20);
  ASSERT_TRUE(store_->ReadFileRange(r->version_id, 0, 4, mid).ok());
  EXPECT_TRUE(std::equal(mid.begin(), mid.end(), data.begin() + 4));
  // ... and across a chunk border inside a tensor, and the tail.
  std::vector<uint8_t> tail(1000);
  uint64_t at = data.size() - tail.size();
  ASSERT_TRUE(store_->ReadFileRange(r->version_id, 0, at, tail).ok());
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), data.begin() + at));
  std::vector<uint8_t> past(10);
  EXPECT_EQ(store_->ReadFileRange(r->version_id, 0, data.size() - 5, past).code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(StoreTest, ReadTensorIsZeroCopyForFreshTensors) {
  auto files = OneFile(2);
  auto src = MakeSource(root_ + "/src", files);
  auto r = store_->Ingest(src, Opts());
  ASSERT_TRUE(r.ok()) << r.status();
  auto t = store_->ReadTensor(r->version_id, "embed");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->zero_copy());
  EXPECT_TRUE(std::equal(t->bytes().begin(), t->bytes().end(), files[0].tensors[0].bytes.begin(),
                         files[0].tensors[0].bytes.end()));
  auto e = store_->ReadTensor(r->version_id, "empty");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->bytes().size(), 0u);
  EXPECT_EQ(store_->ReadTensor(r->version_id, "nope").status().code(), absl::StatusCode::kNotFound);

  auto rows = store_->ListTensors(r->version_id);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].name, "embed");
  EXPECT_TRUE((*rows)[0].contiguous);
  EXPECT_EQ((*rows)[0].shape, Shape{files[0].tensors[0].bytes.size()});
  EXPECT_EQ((*rows)[0].dtype, DType::kU8);
}

TEST_F(StoreTest, SameTensorsTwiceStoreNoNewChunks) {
  auto src = MakeSource(root_ + "/src", OneFile(3));
  auto a = store_->Ingest(src, Opts());
  ASSERT_TRUE(a.ok()) << a.status();
  uint64_t packs = PackBytes(dir_);
  auto b = store_->Ingest(src, Opts());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->number, 2);
  EXPECT_EQ(b->new_chunks, 0u);
  EXPECT_EQ(b->new_bytes, 0u);
  EXPECT_EQ(PackBytes(dir_), packs);
  ASSERT_TRUE(b->suggested_parent);
  EXPECT_EQ(*b->suggested_parent, "tiny@1");
  EXPECT_DOUBLE_EQ(b->suggested_shared, 1.0);
  auto rows = store_->ListTensors(b->version_id);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ((*rows)[0].shared_with, std::vector<std::string>{"tiny@1"});
  std::string out = root_ + "/b.safetensors";
  ASSERT_TRUE(store_->Export(b->version_id, out, true, false).ok());
  EXPECT_EQ(ReadAll(out), ReadAll(root_ + "/src/tiny.safetensors"));
}

TEST_F(StoreTest, AppendedRowsShareThePrefixChunks) {
  auto vocab = RandomBytes(3 << 20, 4);  // exactly three chunks
  auto a = MakeSource(root_ + "/a", {{"m.bin", {}, {{"vocab", vocab}}, {}}});
  auto ra = store_->Ingest(a, Opts("m"));
  ASSERT_TRUE(ra.ok()) << ra.status();
  auto longer = vocab;
  auto extra = RandomBytes(4096, 5);
  longer.insert(longer.end(), extra.begin(), extra.end());
  auto b = MakeSource(root_ + "/b", {{"m.bin", {}, {{"vocab", longer}}, {}}});
  auto rb = store_->Ingest(b, Opts("m"));
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(rb->chunks, 4u);
  EXPECT_EQ(rb->new_chunks, 1u);
  EXPECT_EQ(rb->new_bytes, 4096u);
  auto t = store_->ReadTensor(rb->version_id, "vocab");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(std::equal(t->bytes().begin(), t->bytes().end(), longer.begin(), longer.end()));
  ASSERT_TRUE(rb->suggested_parent);
  EXPECT_EQ(*rb->suggested_parent, "m@1");
  EXPECT_NEAR(rb->suggested_shared, 3.0 * (1 << 20) / (3.0 * (1 << 20) + 4096), 1e-9);
}

TEST_F(StoreTest, RepeatedChunksInsideOneVersionAreStoredOnce) {
  std::vector<uint8_t> zeros(4 << 20, 0);
  auto src = MakeSource(root_ + "/z", {{"z.bin", {}, {{"a", zeros}, {"b", zeros}}, {}}});
  auto r = store_->Ingest(src, Opts("z"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks, 8u);
  EXPECT_EQ(r->new_chunks, 1u);
  EXPECT_EQ(r->new_bytes, uint64_t{1} << 20);
  auto t = store_->ReadTensor(r->version_id, "b");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->zero_copy());
  EXPECT_EQ(t->bytes().size(), zeros.size());
  std::string out = root_ + "/z.out";
  ASSERT_TRUE(store_->Export(r->version_id, out, true, false).ok());
  EXPECT_EQ(ReadAll(out), ReadAll(root_ + "/z/z.bin"));
}

TEST_F(StoreTest, MissingLicenseIsRefusedAndChangesNothing) {
  auto src = MakeSource(root_ + "/src", OneFile(6), std::nullopt);
  uint64_t packs = PackBytes(dir_);
  std::vector<int64_t> before;
  for (const char* t : {"model", "version", "chunk", "component", "outbox", "audit"})
    before.push_back(Count(store_->catalog(), t));
  auto r = store_->Ingest(src, Opts());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("license"), std::string::npos);
  std::vector<int64_t> after;
  for (const char* t : {"model", "version", "chunk", "component", "outbox", "audit"})
    after.push_back(Count(store_->catalog(), t));
  EXPECT_EQ(before, after);
  EXPECT_EQ(PackBytes(dir_), packs);

  IngestOptions o = Opts();
  o.license = "apache-2.0";
  auto ok = store_->Ingest(src, o);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->license, "apache-2.0");
  auto v = store_->Resolve({"tiny", 1});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->license, "apache-2.0");
}

TEST_F(StoreTest, ParentIsResolvedOrRefused) {
  auto src = MakeSource(root_ + "/src", OneFile(7));
  IngestOptions o = Opts();
  o.parent = VersionRef{"tiny", 4};
  auto bad = store_->Ingest(src, o);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count(store_->catalog(), "version"), 0);
  ASSERT_TRUE(store_->Ingest(src, Opts()).ok());
  o.parent = VersionRef{"tiny", 1};
  auto good = store_->Ingest(src, o);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_FALSE(good->suggested_parent);  // a parent was given
  auto v = store_->Resolve({"tiny", std::nullopt});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->number, 2);
  EXPECT_EQ(v->parent, "tiny@1");
}

TEST_F(StoreTest, MultiFileVersionExportsIntoADirectory) {
  auto src = MakeSource(root_ + "/src",
                        {{"model-00001-of-00002.safetensors", {'a', 'b'}, {{"w1", RandomBytes(5000, 8)}}, {}},
                         {"sub/model-00002-of-00002.safetensors", {'c'}, {{"w2", RandomBytes(7000, 9)}}, {}},
                         {"config.json", {'{', '}'}, {}, {}}});
  auto r = store_->Ingest(src, Opts("sharded"));
  ASSERT_TRUE(r.ok()) << r.status();
  std::string out = root_ + "/exported";
  ASSERT_TRUE(store_->Export(r->version_id, out, true, false).ok());
  for (const char* f : {"model-00001-of-00002.safetensors", "sub/model-00002-of-00002.safetensors",
                        "config.json"})
    EXPECT_EQ(ReadAll(out + "/" + f), ReadAll(root_ + "/src/" + f)) << f;
  EXPECT_EQ(store_->ListTensors(r->version_id)->size(), 2u);
}

// Full-size all-zero chunks are stored once and exported as holes; the file
// still has its size and bytes, --verify included, also when it ends in one.
TEST_F(StoreTest, ZeroChunksExportAsHolesAndVerify) {
  std::vector<uint8_t> zeros((4u << 20) + 5, 0);
  auto src = MakeSource(root_ + "/src", {{"zeros.bin", {'h', 'd', 'r'}, {{"z", zeros}, {"r", RandomBytes(100, 3)}},
                                          std::vector<uint8_t>(3u << 20, 0)}});
  auto r = store_->Ingest(src, Opts("zeros"));
  ASSERT_TRUE(r.ok()) << r.status();
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_LT(stats->pack_bytes, 1u << 21);  // one 1 MiB zero chunk and the small rest
  std::string out = root_ + "/zeros_out.bin";
  auto st = store_->Export(r->version_id, out, /*verify=*/true, false);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(ReadAll(out), ReadAll(root_ + "/src/zeros.bin"));
  struct stat sb;
  ASSERT_EQ(::stat(out.c_str(), &sb), 0);
  EXPECT_LT(static_cast<uint64_t>(sb.st_blocks) * 512, 1u << 20) << "7 MiB of zero chunks should be holes";
}

TEST_F(StoreTest, ParallelIngestsOfOneModelGetDistinctNumbers) {
  auto src = MakeSource(root_ + "/src", OneFile(10));
  constexpr int kThreads = 4;
  std::vector<absl::StatusOr<IngestResult>> results(kThreads, absl::UnknownError(""));
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i)
    ts.emplace_back([&, i] {
      auto s = Store::Open(dir_);  // one Store per thread, as separate processes would
      if (!s.ok()) {
        results[i] = s.status();
        return;
      }
      results[i] = (*s)->Ingest(src, Opts());
    });
  for (auto& t : ts) t.join();
  std::set<int64_t> numbers;
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    numbers.insert(r->number);
  }
  EXPECT_EQ(numbers, (std::set<int64_t>{1, 2, 3, 4}));
  for (int64_t n = 1; n <= kThreads; ++n) {
    auto v = store_->Resolve({"tiny", n});
    ASSERT_TRUE(v.ok());
    std::string out = fmt::format("{}/p{}.bin", root_, n);
    ASSERT_TRUE(store_->Export(v->id, out, true, false).ok());
  }
}

TEST_F(StoreTest, BadModelNamesAndMissingStoresAreRefused) {
  auto src = MakeSource(root_ + "/src", OneFile(11));
  EXPECT_EQ(store_->Ingest(src, Opts("a@b")).status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = Store::Open(root_ + "/nowhere");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find("hart init"), std::string::npos);
  EXPECT_EQ(ParseVersionRef("llama@3")->number, 3);
  EXPECT_FALSE(ParseVersionRef("llama@x").ok());
  EXPECT_FALSE(ParseVersionRef("@3").ok());
  EXPECT_EQ(ParseVersionRef("org/llama")->model, "org/llama");
}

}  // namespace
TEST_F(StoreTest, FileSha256IsRecordedOnRequestAndVerifiedOnExport) {
  auto src = MakeSource(root_ + "/src", OneFile(4));
  auto opts = Opts();
  opts.file_sha256 = true;
  auto r = store_->Ingest(src, opts);
  ASSERT_TRUE(r.ok()) << r.status();
  auto files = store_->ListFiles(r->version_id);
  ASSERT_TRUE(files.ok());
  auto data = ReadAll(root_ + "/src/tiny.safetensors");
  EXPECT_EQ((*files)[0].sha256, ToHex(Sha256(data)));
  // The digest does not depend on whether the plain hash was taken.
  auto again = store_->Ingest(src, Opts("tiny2"));
  ASSERT_TRUE(again.ok()) << again.status();
  auto files2 = store_->ListFiles(again->version_id);
  ASSERT_TRUE(files2.ok());
  EXPECT_EQ((*files2)[0].digest, (*files)[0].digest);
  std::string out = root_ + "/out.safetensors";
  ASSERT_TRUE(store_->Export(r->version_id, out, /*verify=*/true, false).ok());
  EXPECT_EQ(ReadAll(out), data);
}

TEST_F(StoreTest, ExportVerifyCatchesChunksInTheWrongOrder) {
  // Every chunk stays intact (hart verify sees nothing wrong), but the
  // catalog lists two of a tensor's chunks swapped: the bytes would come
  // out reordered, and the file digest recorded at ingest says so.
  auto r = store_->Ingest(MakeSource(root_ + "/src", OneFile(5)), Opts());
  ASSERT_TRUE(r.ok()) << r.status();
  sqlite3* db = store_->catalog();
  const std::string embed = "component_id = (SELECT id FROM component WHERE name = 'embed')";
  for (std::string step : {"seq = 1000 WHERE seq = 0", "seq = 0 WHERE seq = 1", "seq = 1 WHERE seq = 1000"})
    ASSERT_EQ(sqlite3_exec(db, ("UPDATE tensor_chunk SET " + step + " AND " + embed).c_str(), nullptr,
                           nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  auto v = store_->Verify(false);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->ok());
  std::string out = root_ + "/out.safetensors";
  absl::Status st = store_->Export(r->version_id, out, /*verify=*/true, false);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_NE(std::string(st.message()).find("file digest"), std::string::npos) << st;
  EXPECT_FALSE(std::filesystem::exists(out));
  // Without --verify the reordered bytes do come out: the check is what catches it.
  ASSERT_TRUE(store_->Export(r->version_id, out, /*verify=*/false, false).ok());
  EXPECT_NE(ReadAll(out), ReadAll(root_ + "/src/tiny.safetensors"));
}

TEST_F(StoreTest, DirectIoIngestsStartOnABlockOfTheirOwn) {
  struct statfs sf;
  ASSERT_EQ(::statfs(dir_.c_str(), &sf), 0);
  if (sf.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs: packs are written through the page cache";
  auto a = store_->Ingest(MakeSource(root_ + "/a", OneFile(6)), Opts("a"));
  ASSERT_TRUE(a.ok()) << a.status();
  sqlite3* db = store_->catalog();
  const int64_t end_a = One(db, "SELECT MAX(offset + size) FROM chunk");
  auto b = store_->Ingest(MakeSource(root_ + "/b", OneFile(7)), Opts("b"));
  ASSERT_TRUE(b.ok()) << b.status();
  // b's first new chunk starts on the first block boundary past a's bytes,
  // and the pack ends on a block boundary (the last block padded).
  const int64_t first_b = One(db, fmt::format("SELECT MIN(offset) FROM chunk WHERE offset >= {}", end_a));
  EXPECT_EQ(first_b % 4096, 0);
  EXPECT_LT(first_b - end_a, 4096);
  const uint64_t pack_size = std::filesystem::file_size(dir_ + "/packs/000001.pack");
  EXPECT_EQ(pack_size % 4096, 0u);
  // Both export byte for byte, and gc finds nothing worth moving.
  for (auto [r, src] : {std::pair{*a, root_ + "/a/tiny.safetensors"}, std::pair{*b, root_ + "/b/tiny.safetensors"}}) {
    std::string out = root_ + "/out-" + r.model;
    ASSERT_TRUE(store_->Export(r.version_id, out, /*verify=*/true, false).ok());
    EXPECT_EQ(ReadAll(out), ReadAll(src));
  }
  auto g = store_->Gc();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->packs_rewritten, 0u);
  EXPECT_LT(g->bytes_reclaimed, 4096u);  // at most the last block's pad
}

TEST_F(StoreTest, SourceShrinkingDuringIngestFailsAndLeavesTheCatalogAsItWas) {
  ASSERT_TRUE(store_->Ingest(MakeSource(root_ + "/a", OneFile(8)), Opts("a")).ok());
  sqlite3* db = store_->catalog();
  const int64_t versions = Count(db, "version"), chunks = Count(db, "chunk"), events = Count(db, "outbox");
  // Parsed and mapped, then cut short on disk before the pipeline reads it:
  // the read fails (nothing touches the map past the end), naming the file.
  auto src = MakeSource(root_ + "/b", OneFile(9));
  const std::string path = root_ + "/b/tiny.safetensors";
  ASSERT_EQ(::truncate(path.c_str(), 1 << 20), 0);
  auto r = store_->Ingest(src, Opts("b"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(std::string(r.status().message()).find(path), std::string::npos) << r.status();
  EXPECT_EQ(Count(db, "version"), versions);
  EXPECT_EQ(Count(db, "chunk"), chunks);
  EXPECT_EQ(Count(db, "outbox"), events);
  auto v = store_->Verify(false);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->ok());
}

}  // namespace hart::store::testing

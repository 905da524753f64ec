// ExtentReader: direct and buffered reads of pack ranges at any alignment
// give the file's bytes; tmpfs falls back to buffered; Evict drops only the
// ranges the reader read through the page cache. LocateTensor gives a
// tensor's bytes as extents, split where dedup placed its chunks apart.
#include "store/extent_reader.h"

#include <linux/magic.h>
#include <sys/statfs.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "store/pack.h"
#include "store_test_util.h"

namespace hart::store {
namespace {

using testing::RandomBytes;

bool IsTmpfs(const std::string& dir) {
  struct statfs sf;
  return ::statfs(dir.c_str(), &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

// Two packs of random bytes whose sizes are no multiple of a block.
struct Packs {
  std::string dir;
  std::vector<uint8_t> bytes[3];
  explicit Packs(const std::string& parent) {
    dir = parent + "/packs";
    std::filesystem::create_directories(dir);
    bytes[1] = RandomBytes(3 * (1 << 20) + 123, 1);
    bytes[2] = RandomBytes(5000, 2);
    testing::WriteAllBytes(PackPath(dir, 1), bytes[1]);
    testing::WriteAllBytes(PackPath(dir, 2), bytes[2]);
  }
};

std::vector<Extent> SomeExtents(const Packs& p) {
  std::vector<Extent> out = {
      {1, 0, 1},
      {1, 0, 4096},
      {1, 4095, 2},                       // across a block boundary
      {1, 1000, (1 << 20) + 5000},        // longer than a bounce buffer
      {1, p.bytes[1].size() - 777, 777},  // to the pack's unaligned end
      {2, 17, 4983},                      // a second pack, to its end
      {2, 4096, 1},
  };
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20; ++i) {
    uint64_t off = rng() % p.bytes[1].size();
    uint64_t n = 1 + rng() % std::min<uint64_t>(p.bytes[1].size() - off, 3 << 20);
    out.push_back({1, off, n});
  }
  return out;
}

void ExpectReadsMatch(ExtentReader& r, const Packs& p) {
  for (const Extent& e : SomeExtents(p)) {
    SCOPED_TRACE(::testing::Message() << "pack " << e.pack << " [" << e.offset << ", +" << e.size << ")");
    const std::vector<uint8_t>& want = p.bytes[e.pack];
    std::vector<uint8_t> copy(e.size);
    ASSERT_TRUE(r.ReadCopy(e, copy).ok());
    EXPECT_TRUE(std::equal(copy.begin(), copy.end(), want.begin() + e.offset));
    // In place: a buffer placed at the offset's alignment, with room for the superset.
    const uint64_t a = ExtentReader::kAlign;
    void* raw = nullptr;
    ASSERT_EQ(0, ::posix_memalign(&raw, a, e.size + 3 * a));
    std::unique_ptr<uint8_t, void (*)(void*)> buf(static_cast<uint8_t*>(raw), std::free);
    uint8_t* dst = buf.get() + e.offset % a;
    ASSERT_TRUE(r.ReadInPlace(e, dst).ok());
    EXPECT_EQ(0, std::memcmp(dst, want.data() + e.offset, e.size));
  }
}

TEST(ExtentReader, DirectAndBufferedReadsGiveThePackBytes) {
  const std::string root = testing::MakeTempDir("extent");
  Packs p(root);
  for (bool direct : {true, false}) {
    SCOPED_TRACE(direct);
    ExtentReader r(p.dir, ExtentReaderOptions{.direct = direct});
    if (!direct || IsTmpfs(p.dir)) EXPECT_FALSE(r.Direct(1));
    ExpectReadsMatch(r, p);
    std::vector<uint8_t> out(10);
    EXPECT_TRUE(absl::IsDataLoss(r.ReadCopy({2, 4995, 10}, out)));  // past the end
    EXPECT_TRUE(absl::IsDataLoss(r.ReadCopy({9, 0, 10}, out)));     // no such pack
  }
  std::filesystem::remove_all(root);
}

TEST(ExtentReader, TmpfsFallsBackToBufferedReads) {
  if (!IsTmpfs("/dev/shm")) GTEST_SKIP() << "/dev/shm is not tmpfs here";
  const std::string root = "/dev/shm/hart_extent_" + std::to_string(::getpid());
  Packs p(root);
  ExtentReader r(p.dir, {});
  EXPECT_FALSE(r.Direct(1));
  ExpectReadsMatch(r, p);
  std::filesystem::remove_all(root);
}

TEST(ExtentReader, EvictDropsOnlyWhatItReadThroughTheCache) {
  const std::string root = testing::MakeTempDir("evict");
  Packs p(root);
  std::vector<Extent> evicted;
  auto hook = [&](const Extent& e) { evicted.push_back(e); };
  {
    ExtentReader r(p.dir, ExtentReaderOptions{.direct = false, .on_evict = hook});
    std::vector<uint8_t> a(4000), b(10000), c(100);
    ASSERT_TRUE(r.ReadCopy({1, 1000, 4000}, a).ok());
    ASSERT_TRUE(r.ReadCopy({1, 10000, 10000}, b).ok());
    ASSERT_TRUE(r.ReadCopy({2, 0, 100}, c).ok());
    r.Evict({1, 0, 15000});  // covers the first read and half the second
    ASSERT_EQ(evicted.size(), 2u);
    EXPECT_EQ(evicted[0].offset, 1000u);
    EXPECT_EQ(evicted[0].size, 4000u);
    EXPECT_EQ(evicted[1].offset, 10000u);
    EXPECT_EQ(evicted[1].size, 5000u);
    for (const Extent& e : evicted) EXPECT_EQ(e.pack, 1);
    evicted.clear();
    r.Evict({1, 0, 15000});  // nothing left there
    EXPECT_TRUE(evicted.empty());
    r.Evict({1, 0, 1 << 21});  // the rest of the second read
    ASSERT_EQ(evicted.size(), 1u);
    EXPECT_EQ(evicted[0].offset, 15000u);
    EXPECT_EQ(evicted[0].size, 5000u);
    evicted.clear();
    r.Evict({1, 0, 100}, /*force=*/true);
    ASSERT_EQ(evicted.size(), 1u);
    EXPECT_EQ(evicted[0].size, 100u);
  }
  if (!IsTmpfs(p.dir)) {
    // Direct reads cached nothing: nothing to evict.
    evicted.clear();
    ExtentReader r(p.dir, ExtentReaderOptions{.direct = true, .on_evict = hook});
    ASSERT_TRUE(r.Direct(1));
    std::vector<uint8_t> a(4000);
    ASSERT_TRUE(r.ReadCopy({1, 1000, 4000}, a).ok());
    r.Evict({1, 0, 1 << 20});
    EXPECT_TRUE(evicted.empty());
  }
  std::filesystem::remove_all(root);
}

class LocateTensor : public testing::StoreTest {};

TEST_F(LocateTensor, ExtentsFollowTheChunksDedupPlaced) {
  std::vector<uint8_t> a = RandomBytes(3 * kChunkSize + 999, 11);
  std::vector<uint8_t> b = RandomBytes(5000, 12);
  auto v1 = testing::MakeSource(root_ + "/v1", {{"m.bin", {}, {{"a", a}, {"b", b}}, {}}});
  IngestOptions io;
  io.model = "m";
  io.progress = false;
  ASSERT_TRUE(store_->Ingest(v1, io).ok());
  std::vector<uint8_t> a2 = a;
  a2[kChunkSize + 5] ^= 0xff;  // only the second chunk changes
  auto v2 = testing::MakeSource(root_ + "/v2", {{"m.bin", {}, {{"a", a2}, {"b", b}}, {}}});
  ASSERT_TRUE(store_->Ingest(v2, io).ok());

  auto r1 = store_->Resolve({"m", 1});
  auto r2 = store_->Resolve({"m", 2});
  ASSERT_TRUE(r1.ok() && r2.ok());
  auto e1 = store_->LocateTensor(r1->id, "a");
  auto e2 = store_->LocateTensor(r2->id, "a");
  ASSERT_TRUE(e1.ok()) << e1.status();
  ASSERT_TRUE(e2.ok()) << e2.status();
  EXPECT_EQ(e1->size(), 1u);  // written back to back
  ASSERT_EQ(e2->size(), 3u);  // v1's first chunk, its own second, v1's rest
  EXPECT_EQ((*e2)[0].offset, (*e1)[0].offset);
  EXPECT_EQ((*e2)[2].offset, (*e1)[0].offset + 2 * kChunkSize);
  auto reader = store_->OpenExtentReader();
  std::vector<uint8_t> got;
  for (const Extent& e : *e2) {
    std::vector<uint8_t> part(e.size);
    ASSERT_TRUE(reader->ReadCopy(e, part).ok());
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, a2);
  EXPECT_TRUE(absl::IsNotFound(store_->LocateTensor(r2->id, "nope").status()));
}

}  // namespace
}  // namespace hart::store

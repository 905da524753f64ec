// Streaming out of NinaDB: the direct-I/O store path gives output identical
// to the mapped store path and to the file for every budget; its buffer
// plans coalesce pieces adjacent in a pack and read the right bytes across
// chunk boundaries, dedup splits and unaligned offsets; releasing with
// drop_cache evicts only ranges this process read; tmpfs falls back to
// buffered reads.
#include <linux/magic.h>
#include <sys/statfs.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "../store/store_test_util.h"
#include "formats/gguf.h"
#include "gtest/gtest.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/weight_source.h"
#include "runtime_fixtures.h"
#include "tests/runtime/ingest_fixture.h"
#include "store/store.h"

namespace hart::runtime {
namespace {

bool IsTmpfs(const std::string& dir) {
  struct statfs sf;
  return ::statfs(dir.c_str(), &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

std::shared_ptr<store::Store> NewStore(const std::string& dir) {
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(store::Store::Init(dir).ok());
  auto st = store::Store::Open(dir);
  EXPECT_TRUE(st.ok()) << st.status();
  return st.ok() ? std::shared_ptr<store::Store>(std::move(*st)) : nullptr;
}

void IngestGguf(store::Store& st, const std::string& gguf, const std::string& model) {
  auto r = testing::IngestGguf(st, gguf, model);
  ASSERT_TRUE(r.ok()) << r.status();
}

struct RunOut {
  std::vector<float> prefill;
  std::vector<int32_t> tokens;
  StreamerStats stats;
};

RunOut Generate(WeightSource* src, uint64_t budget, bool drop_cache = false) {
  RunOut r;
  ThreadPool pool(2);
  ModelOptions mo{.max_context = 64, .pool = &pool};
  mo.stream.budget = budget;
  mo.stream.drop_page_cache = drop_cache;
  auto model = Model::Load(src, mo);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return r;
  Model& m = **model;
  std::vector<int32_t> prompt = {1, 72, 101, 108, 108, 111};
  EXPECT_TRUE(m.Forward(prompt, true, &r.prefill).ok());
  m.Reset();
  Sampler greedy(SamplerOptions{.temperature = 0});
  auto st = GenerateFromTokens(m, nullptr, prompt, GenerateOptions{.n_predict = 12}, greedy,
                               [&](int32_t id, std::string_view) {
                                 r.tokens.push_back(id);
                                 return true;
                               });
  EXPECT_TRUE(st.ok()) << st.status();
  r.stats = m.streamer_stats();
  return r;
}

void ExpectSame(const RunOut& want, const RunOut& got) {
  ASSERT_EQ(got.prefill.size(), want.prefill.size());
  EXPECT_EQ(0, std::memcmp(got.prefill.data(), want.prefill.data(), want.prefill.size() * 4));
  EXPECT_EQ(got.tokens, want.tokens);
}

// Budgets from everything resident down to one layer, and the weights.
std::vector<uint64_t> Budgets(WeightSource* src) {
  auto m = Model::Load(src, ModelOptions{.max_context = 4});
  EXPECT_TRUE(m.ok());
  if (!m.ok()) return {};
  const uint64_t total = (*m)->weight_bytes_per_pass(), min = (*m)->min_budget();
  return {0, total + (4 << 20), total / 2, total / 4, min};
}

void CheckStoreMatchesFile(const std::string& store_dir, bool expect_direct) {
  const std::string fx = testing::MakeFixture("sstream_q8", "--type q8_0 --layers 4");
  auto st = NewStore(store_dir);
  ASSERT_NE(st, nullptr);
  IngestGguf(*st, fx + "/model.gguf", "tiny");
  auto file = OpenFileWeights(fx + "/model.gguf");
  ASSERT_TRUE(file.ok());
  const RunOut want = Generate(file->get(), 0);
  ASSERT_EQ(want.tokens.size(), 12u);
  for (bool direct : {true, false}) {
    auto stored = OpenStoreWeights(st, "tiny", StoreWeightOptions{.direct_io = direct});
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ((*stored)->direct_io(), direct && expect_direct);
    for (uint64_t budget : Budgets(stored->get())) {
      SCOPED_TRACE(::testing::Message() << "direct " << direct << " budget " << budget);
      const RunOut got = Generate(stored->get(), budget, /*drop_cache=*/budget != 0);
      ExpectSame(want, got);
      if (budget != 0) EXPECT_LE(got.stats.resident_bytes, budget);
    }
  }
  std::filesystem::remove_all(store_dir);
}

TEST(StoreStreaming, DirectReadsMatchMappedAndFileAtEveryBudget) {
  const std::string dir = testing::FixtureRoot() + "/store_direct";
  std::filesystem::create_directories(testing::FixtureRoot());
  const bool disk = !IsTmpfs(testing::FixtureRoot());
  CheckStoreMatchesFile(dir, disk);
}

TEST(StoreStreaming, TmpfsStoreFallsBackToBufferedReads) {
  if (!IsTmpfs("/dev/shm")) GTEST_SKIP() << "/dev/shm is not tmpfs here";
  CheckStoreMatchesFile("/dev/shm/hart_store_stream_" + std::to_string(::getpid()), false);
}

// Raw U8 tensors: "a" of three chunks and change, then two small ones
// that follow it in the pack. Version 2 changes a's second chunk only, so
// its "a" lies in three extents (dedup keeps v1's first and last chunks).
class StorePlans : public store::testing::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    a_ = store::testing::RandomBytes(3 * store::kChunkSize + 999, 1);
    b_ = store::testing::RandomBytes(100001, 2);
    c_ = store::testing::RandomBytes(5003, 3);
    auto v1 = store::testing::MakeSource(root_ + "/v1", {{"m.bin", {}, {{"a", a_}, {"b", b_}, {"c", c_}}, {}}});
    ASSERT_TRUE(store_->Ingest(v1, Opts("m")).ok());
    a2_ = a_;
    a2_[store::kChunkSize + 7] ^= 0x5a;
    auto v2 = store::testing::MakeSource(root_ + "/v2", {{"m.bin", {}, {{"a", a2_}, {"b", b_}, {"c", c_}}, {}}});
    ASSERT_TRUE(store_->Ingest(v2, Opts("m")).ok());
    shared_ = std::shared_ptr<store::Store>(std::move(store_));
  }
  void TearDown() override {
    shared_.reset();
    StoreTest::TearDown();
  }
  // Plans the pieces, runs every op into a fresh buffer, checks each piece.
  void CheckPlan(WeightSource& src, const std::vector<WeightPiece>& pieces,
                 const std::vector<const std::vector<uint8_t>*>& want, uint64_t max_op, BufferPlan* out) {
    auto plan = src.PlanBuffer(pieces, max_op);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_EQ(plan->piece_at.size(), pieces.size());
    EXPECT_EQ(plan->bytes % BufferPlan::kBufferAlign, 0u);
    uint64_t bound = 0;
    for (const auto& p : pieces) bound += BufferPlan::Bound(p.nbytes);
    EXPECT_LE(plan->bytes, bound);
    void* raw = nullptr;
    ASSERT_EQ(0, ::posix_memalign(&raw, BufferPlan::kBufferAlign, plan->bytes));
    std::unique_ptr<uint8_t, void (*)(void*)> buf(static_cast<uint8_t*>(raw), std::free);
    std::memset(buf.get(), 0xcc, plan->bytes);
    for (const auto& op : plan->ops) ASSERT_TRUE(src.RunOp(op, buf.get(), true).ok());
    for (size_t i = 0; i < pieces.size(); ++i) {
      SCOPED_TRACE(::testing::Message() << pieces[i].info->name << " at " << pieces[i].offset);
      EXPECT_EQ(0, std::memcmp(buf.get() + plan->piece_at[i], want[i]->data() + pieces[i].offset,
                               pieces[i].nbytes));
    }
    *out = std::move(*plan);
  }
  std::vector<uint8_t> a_, a2_, b_, c_;
  std::shared_ptr<store::Store> shared_;
};

TEST_F(StorePlans, CoalescedReadsGiveEveryPieceAcrossChunksExtentsAndAlignments) {
  for (bool direct : {true, false}) {
    SCOPED_TRACE(direct);
    for (const char* ref : {"m@1", "m@2"}) {
      SCOPED_TRACE(ref);
      const bool v2 = std::string(ref) == "m@2";
      auto src = OpenStoreWeights(shared_, ref, StoreWeightOptions{.direct_io = direct});
      ASSERT_TRUE(src.ok()) << src.status();
      const WeightInfo *a = (*src)->Find("a"), *b = (*src)->Find("b"), *c = (*src)->Find("c");
      ASSERT_TRUE(a && b && c);
      const auto* wa = v2 ? &a2_ : &a_;
      // Whole tensors in an order other than the pack's, and slices that
      // start and end off block and chunk boundaries.
      std::vector<WeightPiece> pieces = {
          {c, 0, c->nbytes}, {b, 0, b->nbytes}, {a, 0, a->nbytes},
          {a, store::kChunkSize - 3, 2 * store::kChunkSize + 11},  // across both chunk boundaries
          {b, 4095, 3},
          {c, 1, c->nbytes - 2},
      };
      std::vector<const std::vector<uint8_t>*> want = {&c_, &b_, wa, wa, &b_, &c_};
      BufferPlan plan;
      CheckPlan(**src, pieces, want, 64 << 20, &plan);
      if (HasFatalFailure()) return;
      // Adjacent in the pack: every single-extent piece of version 1 is one
      // run, so one read (ops no longer than 64 MiB).
      if (!v2) EXPECT_EQ(plan.ops.size(), 1u);
      // Version 2: a and its slice lie in three extents, read through a
      // bounce buffer per extent; b and c stay one run.
      if (v2) EXPECT_GT(plan.ops.size(), 3u);
      // Small ops: the same bytes, cut at block boundaries.
      BufferPlan small;
      CheckPlan(**src, pieces, want, 4096 * 3, &small);
      EXPECT_GT(small.ops.size(), plan.ops.size());
    }
  }
}

// Model A streamed with the cache dropped after each read evicts only
// ranges of its own tensors, never another model's, never whole packs.
TEST(StoreStreaming, ReleaseEvictsOnlyRangesThisSourceRead) {
  const std::string fa = testing::MakeFixture("evict_a", "--type q8_0 --layers 3");
  const std::string fb = testing::MakeFixture("evict_b", "--type q4_0 --layers 3 --seed 99");
  const std::string dir = testing::FixtureRoot() + "/store_evict";
  auto st = NewStore(dir);
  ASSERT_NE(st, nullptr);
  IngestGguf(*st, fa + "/model.gguf", "a");
  IngestGguf(*st, fb + "/model.gguf", "b");

  struct Range {
    int64_t pack;
    uint64_t lo, hi;
  };
  auto ranges_of = [&](const std::string& ref) {
    std::vector<Range> out;
    auto v = st->Resolve(*store::ParseVersionRef(ref));
    EXPECT_TRUE(v.ok());
    auto ts = st->ListTensors(v->id);
    EXPECT_TRUE(ts.ok());
    for (const auto& t : *ts) {
      auto ext = st->LocateTensor(v->id, t.name);
      EXPECT_TRUE(ext.ok());
      for (const auto& e : *ext) out.push_back({e.pack, e.offset, e.offset + e.size});
    }
    return out;
  };
  const std::vector<Range> mine = ranges_of("a"), theirs = ranges_of("b");
  std::vector<Range> merged = mine;
  std::sort(merged.begin(), merged.end(),
            [](const Range& x, const Range& y) { return std::tie(x.pack, x.lo) < std::tie(y.pack, y.lo); });
  for (size_t i = 1; i < merged.size();) {
    Range& p = merged[i - 1];
    if (merged[i].pack == p.pack && merged[i].lo <= p.hi + 4096) {
      p.hi = std::max(p.hi, merged[i].hi);
      merged.erase(merged.begin() + static_cast<ptrdiff_t>(i));
    } else {
      ++i;
    }
  }

  std::vector<Range> evicted;
  std::mutex mu;
  StoreWeightOptions opts;
  opts.direct_io = false;  // buffered reads: the ones that leave pages to evict
  opts.on_evict = [&](int64_t pack, uint64_t off, uint64_t n) {
    std::lock_guard<std::mutex> l(mu);
    evicted.push_back({pack, off, off + n});
  };
  auto src = OpenStoreWeights(st, "a", opts);
  ASSERT_TRUE(src.ok()) << src.status();
  const uint64_t min = Budgets(src->get()).back();
  const RunOut r = Generate(src->get(), min, /*drop_cache=*/true);
  EXPECT_EQ(r.tokens.size(), 12u);
  ASSERT_FALSE(evicted.empty());
  for (const Range& e : evicted) {
    SCOPED_TRACE(::testing::Message() << "evicted pack " << e.pack << " [" << e.lo << ", " << e.hi << ")");
    EXPECT_LT(e.lo, e.hi);
    // Inside A's extents, a run of them merged across gaps of under a
    // block (the plan reads a layer's adjacent tensors as one run).
    bool inside = false;
    for (const Range& m : merged) inside |= m.pack == e.pack && m.lo <= e.lo && e.hi <= m.hi;
    EXPECT_TRUE(inside);
    // And inside none of B's that A does not share.
    for (const Range& t : theirs) {
      bool shared = false;
      for (const Range& m : mine) shared |= m.pack == t.pack && m.lo == t.lo && m.hi == t.hi;
      if (!shared) EXPECT_FALSE(t.pack == e.pack && e.lo < t.hi && t.lo < e.hi);
    }
  }
  // Direct reads leave nothing in the cache, so nothing is evicted.
  evicted.clear();
  if (!IsTmpfs(dir)) {
    opts.direct_io = true;
    auto direct = OpenStoreWeights(st, "a", opts);
    ASSERT_TRUE(direct.ok());
    ASSERT_TRUE((*direct)->direct_io());
    const RunOut d = Generate(direct->get(), min, /*drop_cache=*/true);
    ExpectSame(r, d);
    EXPECT_TRUE(evicted.empty());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hart::runtime

// Fault injection at every write and sync point of ingest, delete and gc, as
// SQLite and LevelDB test their storage: a FaultInjectionEnv first counts
// the points one operation reaches (pack opens, writes, fsyncs, directory
// fsyncs, truncates, unlinks, and SQLite's own writes and syncs of the
// catalog), then the operation runs again on a fresh copy of the same store
// once per point, failing exactly that one (ENOSPC, EIO and a short write at
// write points, EIO at the others). After every run: the operation returned
// ok or a clear error (never a crash), the store reopens with the real Env,
// verify is clean, every version committed before exports bit-exact, the
// operation happened whole or not at all, and a gc afterwards leaves a store
// that still verifies.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "core/mapped_file.h"
#include "core/sha256.h"
#include "fault_injection_env.h"
#include "store/pack.h"
#include "store_test_util.h"

namespace hart::store::testing {
namespace {

namespace fs = std::filesystem;
using hart::testing::FaultInjectionEnv;
using Fault = FaultInjectionEnv::Fault;

std::string Sha256Of(const std::string& path) {
  auto m = MappedFile::Open(path);
  if (!m.ok()) return "error: " + std::string(m.status().message());
  return ToHex(Sha256((*m)->bytes()));
}

// kIngestNewPack: the same ingest while every existing pack is held by
// another writer, so it creates a pack (create, header, directory fsync).
enum class Op { kIngest, kIngestNewPack, kDelete, kGc };
const char* OpName(Op op) {
  switch (op) {
    case Op::kIngest: return "ingest";
    case Op::kIngestNewPack: return "ingest into a new pack";
    case Op::kDelete: return "delete";
    case Op::kGc: return "gc";
  }
  return "?";
}
bool IsIngest(Op op) { return op == Op::kIngest || op == Op::kIngestNewPack; }

class FaultInjectionTest : public ::testing::Test {
 protected:
  // One pristine store shared by every run: beta@1 and gamma@1 committed,
  // alpha@1 deleted (its chunks lie dead at the front of pack 1, so gc
  // rewrites that pack), gamma's pack with a torn tail (gc truncates it),
  // and an orphan pack (gc unlinks it).
  static void SetUpTestSuite() {
    Progress::SetEnabled(false);
    root_ = new std::string(MakeTempDir("fault"));
    expected_ = new std::map<std::string, std::string>();
    const std::string dir = *root_ + "/pristine";
    ASSERT_TRUE(Store::Init(dir).ok());
    auto store = Store::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto shared = RandomBytes(1 << 20, 7);
    auto ingest = [&](const std::string& name, std::vector<TestTensor> tensors) {
      formats::ModelSource src = MakeSource(*root_ + "/src_" + name,
                                            {{name + ".bin", RandomBytes(64, name.size()), tensors, {}}});
      IngestOptions o;
      o.model = name;
      o.progress = false;
      auto r = (*store)->Ingest(src, o);
      ASSERT_TRUE(r.ok()) << r.status();
    };
    ingest("alpha", {{"a.x", RandomBytes(1536 << 10, 1)}, {"a.shared", shared}});
    ingest("beta", {{"b.x", RandomBytes(700 << 10, 2)}, {"b.shared", shared}, {"b.y", RandomBytes(3000, 3)}});
    auto del = (*store)->DeleteVersion({"alpha", 1});
    ASSERT_TRUE(del.ok()) << del.status();
    {
      // Hold pack 1 so gamma's ingest starts a pack of its own.
      int fd = ::open(PackPath(dir + "/packs", 1).c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::flock(fd, LOCK_EX), 0);
      ingest("gamma", {{"g.x", RandomBytes(1 << 20, 4)}, {"g.y", RandomBytes(5000, 5)}});
      ::close(fd);
    }
    auto packs = ListPacks(dir + "/packs");
    ASSERT_TRUE(packs.ok());
    ASSERT_EQ(packs->size(), 2u) << "gamma should have gone to a pack of its own";
    {
      // A torn tail after gamma's chunks, as a killed ingest leaves.
      std::string p = PackPath(dir + "/packs", packs->back());
      int fd = ::open(p.c_str(), O_WRONLY | O_APPEND);
      ASSERT_GE(fd, 0);
      auto junk = RandomBytes(10000, 9);
      ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
      ::close(fd);
    }
    {
      // An orphan pack, as a crash between pack writes and commit leaves.
      PackWriter w(dir + "/packs");
      ASSERT_TRUE(w.StartNewPack().ok());
      auto junk = RandomBytes(20000, 10);
      ASSERT_TRUE(w.Append(junk).ok());
      ASSERT_TRUE(w.Sync().ok());
    }
    for (const char* ref : {"beta", "gamma"}) {
      auto v = (*store)->Resolve({ref, 1});
      ASSERT_TRUE(v.ok()) << v.status();
      std::string out = *root_ + "/expect_" + ref;
      ASSERT_TRUE((*store)->Export(v->id, out, false, false).ok());
      (*expected_)[ref] = Sha256Of(out);
      fs::remove(out);
    }
    // The model the ingest runs add: one new tensor, one shared with beta.
    delta_src_ = new formats::ModelSource(MakeSource(
        *root_ + "/src_delta",
        {{"delta.bin", RandomBytes(64, 11), {{"d.x", RandomBytes(1200 << 10, 12)}, {"d.shared", shared}}, {}}}));
    delta_sha_ = new std::string(Sha256Of(*root_ + "/src_delta/delta.bin"));
  }
  static void TearDownTestSuite() {
    delete delta_src_;
    delete delta_sha_;
    delete expected_;
    std::error_code ec;
    fs::remove_all(*root_, ec);
    delete root_;
  }

  // Runs `op` on a fresh copy of the pristine store with `env`; returns its status.
  absl::Status RunOp(Op op, FaultInjectionEnv& env, const std::string& work) {
    std::error_code ec;
    fs::remove_all(work, ec);
    fs::copy(*root_ + "/pristine", work, fs::copy_options::recursive);
    StoreOptions so;
    so.env = &env;
    auto store = Store::Open(work, so);
    if (!store.ok()) return absl::InternalError("open before the operation: " + store.status().ToString());
    (*store)->set_gc_wait(std::chrono::milliseconds(0));
    std::vector<int> held;
    if (op == Op::kIngestNewPack) {
      auto packs = ListPacks(work + "/packs");
      if (!packs.ok()) return packs.status();
      for (int64_t p : *packs) {
        int fd = ::open(PackPath(work + "/packs", p).c_str(), O_RDWR);
        if (fd >= 0 && ::flock(fd, LOCK_EX) == 0) held.push_back(fd);
      }
    }
    env.set_active(true);
    absl::Status s;
    if (IsIngest(op)) {
      IngestOptions o;
      o.model = "delta";
      o.progress = false;
      s = (*store)->Ingest(*delta_src_, o).status();
    } else if (op == Op::kDelete) {
      s = (*store)->DeleteVersion({"beta", 1}).status();
    } else {
      s = (*store)->Gc().status();
    }
    env.set_active(false);
    for (int fd : held) ::close(fd);
    return s;
  }

  // The promises after one run; `what` names the run in failures.
  void CheckStore(Op op, const absl::Status& s, const std::string& work, const std::string& what) {
    SCOPED_TRACE(what);
    auto store = Store::Open(work);
    ASSERT_TRUE(store.ok()) << "store does not reopen: " << store.status();
    auto rep = (*store)->Verify(false);
    ASSERT_TRUE(rep.ok()) << rep.status();
    EXPECT_TRUE(rep->ok()) << rep->bad.size() << " bad chunks, first: " << rep->bad[0].reason;
    auto expect_export = [&](const std::string& model, const std::string& sha) {
      auto v = (*store)->Resolve({model, 1});
      ASSERT_TRUE(v.ok()) << model << "@1: " << v.status();
      std::string out = work + ".export";
      absl::Status e = (*store)->Export(v->id, out, false, false);
      ASSERT_TRUE(e.ok()) << model << "@1: " << e;
      EXPECT_EQ(Sha256Of(out), sha) << model << "@1 does not export bit-exact";
      fs::remove(out);
    };
    for (const auto& [model, sha] : *expected_) {
      if (op == Op::kDelete && model == "beta") {
        // Deleted entirely when it said so, else untouched.
        bool present = (*store)->Resolve({"beta", 1}).ok();
        if (s.ok()) {
          EXPECT_FALSE(present) << "delete returned ok but beta@1 is still there";
          EXPECT_EQ(One((*store)->catalog(), "SELECT COUNT(*) FROM component c WHERE NOT EXISTS "
                                            "(SELECT 1 FROM version v WHERE v.id = c.version_id)"),
                    0) << "rows of the deleted version left behind";
        } else {
          EXPECT_TRUE(present) << "delete failed (" << s << ") but beta@1 is gone";
        }
        if (present) expect_export(model, sha);
        continue;
      }
      expect_export(model, sha);
    }
    auto delta = (*store)->ListVersions("delta");
    ASSERT_TRUE(delta.ok() || absl::IsNotFound(delta.status())) << delta.status();
    size_t deltas = delta.ok() ? delta->size() : 0;
    if (IsIngest(op) && s.ok()) {
      ASSERT_EQ(deltas, 1u) << "ingest returned ok but made no version";
      expect_export("delta", *delta_sha_);
    } else {
      EXPECT_EQ(deltas, 0u) << "a failed ingest left a version: " << s;
    }
    // What a failed operation left behind, gc reclaims.
    auto gc = (*store)->Gc();
    ASSERT_TRUE(gc.ok()) << "gc after the fault: " << gc.status();
    auto rep2 = (*store)->Verify(false);
    ASSERT_TRUE(rep2.ok()) << rep2.status();
    EXPECT_TRUE(rep2->ok()) << "verify after gc";
    expect_export("gamma", (*expected_)["gamma"]);
  }

  // Counts the points of `op`, then fails each in turn: at a pack write
  // ENOSPC, EIO and a short write; at a SQLite write ENOSPC or EIO in turn
  // (SQLite's runs of WAL page writes are many and alike; HART_FAULT_SWEEP=full
  // runs both at each); EIO everywhere else.
  void Sweep(Op op) {
    FaultInjectionEnv env;
    const std::string work = *root_ + "/work_" + OpName(op);
    env.Reset(0, Fault::kNoSpace);
    absl::Status clean = RunOp(op, env, work);
    ASSERT_TRUE(clean.ok()) << OpName(op) << " without faults: " << clean;
    std::vector<FaultInjectionEnv::Point> points = env.points();
    ASSERT_GT(points.size(), 0u);
    CheckStore(op, clean, work, "no fault");
    std::map<std::string, int> kinds;
    for (auto p : points) ++kinds[FaultInjectionEnv::PointName(p)];
    std::string census;
    for (const auto& [k, n] : kinds) census += " " + k + "=" + std::to_string(n);

    const char* mode = std::getenv("HART_FAULT_SWEEP");
    const bool full = mode && std::string(mode) == "full";
    int runs = 0, failed = 0, absorbed = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t k = 1; k <= points.size(); ++k) {
      std::vector<Fault> faults = {Fault::kIo};
      if (points[k - 1] == FaultInjectionEnv::Point::kWrite)
        faults = {Fault::kNoSpace, Fault::kIo, Fault::kShortWrite};
      else if (points[k - 1] == FaultInjectionEnv::Point::kSqliteWrite)
        faults = full ? std::vector<Fault>{Fault::kNoSpace, Fault::kIo}
                      : std::vector<Fault>{k % 2 ? Fault::kNoSpace : Fault::kIo};
      for (Fault f : faults) {
        env.Reset(static_cast<int64_t>(k), f);
        absl::Status s = RunOp(op, env, work);
        ++runs;
        std::string what = std::string(OpName(op)) + ", point " + std::to_string(k) + "/" +
                           std::to_string(points.size()) + " (" + env.fired() + "), fault " +
                           std::to_string(static_cast<int>(f)) + ": " + s.ToString();
        if (!s.ok()) {
          ++failed;
          // A clear error: says what failed and where, never an empty message.
          std::string m(s.message());
          EXPECT_FALSE(m.empty()) << what;
          EXPECT_TRUE(m.find("Input/output error") != std::string::npos ||
                      m.find("No space left") != std::string::npos ||
                      m.find("disk I/O error") != std::string::npos ||
                      m.find("database or disk is full") != std::string::npos)
              << "the error does not say the disk failed: " << what;
        } else {
          ++absorbed;
        }
        CheckStore(op, s, work, what);
        if (HasFailure()) return;
      }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[fault sweep] %s: %zu points (%s), %d runs: %d failed cleanly, %d absorbed the "
                "fault and succeeded; %.1f s\n",
                OpName(op), points.size(), census.c_str(), runs, failed, absorbed, secs);
    RecordProperty("points", static_cast<int>(points.size()));
    RecordProperty("runs", runs);
    EXPECT_GT(failed, 0);
  }

  static std::string* root_;
  static std::map<std::string, std::string>* expected_;
  static formats::ModelSource* delta_src_;
  static std::string* delta_sha_;
};
std::string* FaultInjectionTest::root_ = nullptr;
std::map<std::string, std::string>* FaultInjectionTest::expected_ = nullptr;
formats::ModelSource* FaultInjectionTest::delta_src_ = nullptr;
std::string* FaultInjectionTest::delta_sha_ = nullptr;

TEST_F(FaultInjectionTest, EveryWriteAndSyncPointOfIngest) { Sweep(Op::kIngest); }
TEST_F(FaultInjectionTest, EveryWriteAndSyncPointOfIngestIntoANewPack) { Sweep(Op::kIngestNewPack); }
TEST_F(FaultInjectionTest, EveryWriteAndSyncPointOfDelete) { Sweep(Op::kDelete); }
TEST_F(FaultInjectionTest, EveryWriteAndSyncPointOfGc) { Sweep(Op::kGc); }

// The process-wide default Env reaches a Store opened without options.
TEST_F(FaultInjectionTest, DefaultEnvIsUsedWhenNoneIsGiven) {
  FaultInjectionEnv env;
  Env::SetDefault(&env);
  const std::string work = *root_ + "/work_default";
  fs::copy(*root_ + "/pristine", work, fs::copy_options::recursive);
  {
    auto store = Store::Open(work);
    ASSERT_TRUE(store.ok()) << store.status();
    env.Reset(1, Fault::kNoSpace);
    env.set_active(true);
    absl::Status s = (*store)->DeleteVersion({"beta", 1}).status();
    env.set_active(false);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(env.fired(), "");
  }
  Env::SetDefault(nullptr);
  EXPECT_EQ(Env::Default(), Env::Posix());
  auto store = Store::Open(work);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->Resolve({"beta", 1}).ok());
}

}  // namespace
}  // namespace hart::store::testing

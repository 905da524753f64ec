// Issue 14: a model's owner and visibility are written in the same
// transaction as the ingest that creates it. Every write and sync point of
// a signed-in caller's ingest is made to fail in turn (the fault-injecting
// Env of the store's hardening tests); after each, the store either has no
// such model at all or has the version with its owner, private, never a
// version owned by nobody (the catalog default `local`).
#include <gtest/gtest.h>

#include <filesystem>

#include "app/access.h"
#include "app/transfer.h"
#include "tests/app/app_test_util.h"
#include "tests/store/fault_injection_env.h"

namespace hart::auth_test {
namespace {

namespace fs = std::filesystem;

absl::Status IngestAs(const app::Caller& who, const std::string& dir, Env* env, const std::string& model) {
  store::StoreOptions so;
  so.env = env;
  auto s = store::Store::Open(dir, so);
  if (!s.ok()) return s.status();
  app::Context ctx;
  ctx.store = std::shared_ptr<store::Store>(std::move(*s));
  ctx.caller = who;
  ctx.actor = who.actor;
  app::IngestRequest req;
  req.path = app::testing::Fixture("base.safetensors");
  req.model = model;
  req.license = "mit";
  return app::Ingest(ctx, req).status();
}

TEST(AuthOwnership, NoFailureLeavesAVersionWithoutItsOwner) {
  Progress::SetEnabled(false);
  const std::string root = cli_test::MakeTempDir("hart_auth_own_");
  const app::Caller carol{.actor = "carol", .owner = "https://idp|carol", .tenant = "t2",
                          .role = app::AccessRole::kContributor, .authenticated = true};
  testing::FaultInjectionEnv env;
  auto fresh = [&](const std::string& dir) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    return store::Store::Init(dir);
  };
  // Count the points of one clean run.
  const std::string dir = root + "/s";
  ASSERT_TRUE(fresh(dir).ok());
  env.Reset(0, testing::FaultInjectionEnv::Fault::kIo);
  env.set_active(true);
  absl::Status clean = IngestAs(carol, dir, &env, "carol-m");
  env.set_active(false);
  ASSERT_TRUE(clean.ok()) << clean;
  const int64_t points = env.count();
  ASSERT_GT(points, 3);
  // Every sync (the pack's, the catalog's commit and any later commit), every
  // other catalog write, and a sample of the rest (the pack's many data
  // writes fail before the catalog is touched): bounded time under load.
  const std::vector<testing::FaultInjectionEnv::Point> kinds = env.points();
  int failed = 0, committed = 0;
  for (int64_t k = 1; k <= points + 2; ++k) {
    using P = testing::FaultInjectionEnv::Point;
    const P at = k > points ? P::kSqliteSync : kinds[k - 1];
    const bool sync = at == P::kSqliteSync || at == P::kSync || at == P::kSyncDir;
    if (!sync && !(at == P::kSqliteWrite && k % 2 == 0) && k % 16 != 1) continue;
    SCOPED_TRACE("failing point " + std::to_string(k));
    ASSERT_TRUE(fresh(dir).ok());
    env.Reset(k, testing::FaultInjectionEnv::Fault::kIo);
    env.set_active(true);
    absl::Status st = IngestAs(carol, dir, &env, "carol-m");
    env.set_active(false);
    failed += st.ok() ? 0 : 1;
    // As the next process finds it.
    auto s = store::Store::Open(dir);
    ASSERT_TRUE(s.ok()) << s.status();
    auto v = (*s)->Resolve({"carol-m", 1});
    if (st.ok()) EXPECT_TRUE(v.ok()) << v.status();
    auto a = (*s)->GetModelAccess("carol-m");
    if (v.ok()) {
      ++committed;
      ASSERT_TRUE(a.ok()) << a.status();
      EXPECT_EQ(a->owner, carol.owner) << env.fired();
      EXPECT_EQ(a->tenant, "t2");
      EXPECT_EQ(a->visibility, "private");
    } else {
      EXPECT_TRUE(absl::IsNotFound(a.status())) << "a model row without its version: " << env.fired();
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(committed, 0);
  std::error_code ec;
  fs::remove_all(root, ec);
}

// The access check is repeated inside the commit: a model that another
// caller created between the first check and the commit is not appended to.
TEST(AuthOwnership, CommitRechecksTheModelAsItIsThen) {
  Progress::SetEnabled(false);
  const std::string root = cli_test::MakeTempDir("hart_auth_own_");
  ASSERT_TRUE(store::Store::Init(root + "/s").ok());
  auto s = store::Store::Open(root + "/s");
  ASSERT_TRUE(s.ok());
  std::shared_ptr<store::Store> st(std::move(*s));
  const app::Caller carol{.actor = "carol", .owner = "https://idp|carol", .tenant = "t2",
                          .role = app::AccessRole::kContributor, .authenticated = true};
  const app::Caller bob{.actor = "bob", .owner = "https://idp|bob", .tenant = "t1",
                        .role = app::AccessRole::kContributor, .authenticated = true};
  auto src = formats::OpenModel(app::testing::Fixture("base.safetensors"));
  ASSERT_TRUE(src.ok());
  // carol's ingest was judged when "m" did not exist; bob creates it first.
  store::IngestOptions o;
  o.model = "m";
  o.license = "mit";
  o.progress = false;
  o.authorize = [&](const std::optional<store::ModelAccess>& m) { return app::IngestAllowed(carol, "m", m); };
  o.new_model_access = store::ModelAccess{carol.owner, carol.tenant, "private"};
  store::IngestOptions ob = o;
  ob.authorize = [&](const std::optional<store::ModelAccess>& m) { return app::IngestAllowed(bob, "m", m); };
  ob.new_model_access = store::ModelAccess{bob.owner, bob.tenant, "private"};
  ASSERT_TRUE(st->Ingest(*src, ob).ok());
  auto r = st->Ingest(*src, o);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_FALSE(st->Resolve({"m", 2}).ok());
  EXPECT_EQ(st->GetModelAccess("m")->owner, bob.owner);
  std::error_code ec;
  fs::remove_all(root, ec);
}

}  // namespace
}  // namespace hart::auth_test

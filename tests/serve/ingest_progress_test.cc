// The server's board of running ingests (serve/ingest_progress.h): what the
// event stream tells whom, and how often.
#include "serve/ingest_progress.h"

#include <gtest/gtest.h>

namespace hart::serve {
namespace {

app::Caller Who(const std::string& owner, app::AccessRole role = app::AccessRole::kContributor) {
  app::Caller c;
  c.actor = owner;
  c.owner = owner;
  c.role = role;
  c.authenticated = true;
  return c;
}

TEST(IngestProgress, TellsTheUploaderAndAdminsOnlyStartToEnd) {
  IngestProgress board;
  const app::Caller alice = Who("alice"), bob = Who("bob"), admin = Who("root", app::AccessRole::kAdmin);
  uint64_t ca = 0, cb = 0, cr = 0;
  auto sink = board.Start(alice, "m", "m.safetensors");
  auto a = board.Changes(alice, &ca);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["state"], "running");
  EXPECT_EQ(a[0]["model"], "m");
  EXPECT_TRUE(board.Changes(bob, &cb).empty());  // someone else's upload is not bob's business
  EXPECT_EQ(board.Changes(admin, &cr).size(), 1u);
  EXPECT_TRUE(board.Changes(alice, &ca).empty());  // nothing new since

  sink->Begin("ingest m", 1000, "B");
  a = board.Changes(alice, &ca);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["total"], 1000);
  EXPECT_EQ(a[0]["done"], 0);
  // Less than 1 % more is never told, however long it takes.
  for (int i = 0; i < 9; ++i) sink->Advance(1);
  EXPECT_TRUE(board.Changes(alice, &ca).empty());
  // The last byte always is.
  sink->Advance(991);
  a = board.Changes(alice, &ca);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["done"], 1000);
  EXPECT_EQ(a[0]["state"], "running");

  sink->Finish("m@1", "");
  a = board.Changes(alice, &ca);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["state"], "done");
  EXPECT_EQ(a[0]["version"], "m@1");
  EXPECT_FALSE(a[0].contains("error"));
  EXPECT_TRUE(board.Changes(bob, &cb).empty());

  // A failed one says why; a fresh stream (cursor 0) still sees the jobs.
  auto bad = board.Start(bob, "x", "x.gguf");
  bad->Finish("", "x.gguf: bad magic");
  uint64_t fresh = 0;
  auto b = board.Changes(bob, &fresh);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0]["state"], "failed");
  EXPECT_EQ(b[0]["error"], "x.gguf: bad magic");
  fresh = 0;
  EXPECT_EQ(board.Changes(admin, &fresh).size(), 2u);
}

}  // namespace
}  // namespace hart::serve

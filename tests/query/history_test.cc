#include <gtest/gtest.h>

#include "query/engine.h"
#include "tests/store/store_test_util.h"

namespace hart::query {
namespace {

using store::testing::MakeSource;
using store::testing::RandomBytes;
using store::testing::TestFile;

class HistoryTest : public store::testing::StoreTest {
 protected:
  void Ingest(const std::string& model, int variant, std::optional<std::string> parent) {
    TestFile f{"m.safetensors", RandomBytes(16, 1), {}, {}};
    f.tensors.push_back({"token_embd.weight", RandomBytes(512, 7)});
    f.tensors.push_back({"output.weight", RandomBytes(512, 100 + variant)});
    if (variant >= 2) f.tensors.push_back({"extra.weight", RandomBytes(64, 9)});
    auto src = MakeSource(root_ + "/v" + std::to_string(variant), {f});
    auto o = Opts(model);
    if (parent) o.parent = *store::ParseVersionRef(*parent);
    auto r = store_->Ingest(src, o);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  ResultSet Q(Engine& e, const std::string& sql) {
    auto r = e.Query(sql);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status();
    return r.ok() ? *r : ResultSet{};
  }
};

TEST_F(HistoryTest, LineageFollowsParentChain) {
  Ingest("base", 0, std::nullopt);
  Ingest("base", 1, "base@1");
  Ingest("chat", 2, "base@2");
  auto e = Engine::Attach(*store_);
  ASSERT_TRUE(e.ok());
  auto r = Q(**e, "SELECT depth, ref FROM lineage('chat@1')");
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(std::get<std::string>(r.rows[0][1]), "chat@1");
  EXPECT_EQ(std::get<std::string>(r.rows[1][1]), "base@2");
  EXPECT_EQ(std::get<std::string>(r.rows[2][1]), "base@1");
  EXPECT_EQ(std::get<int64_t>(r.rows[2][0]), 2);
  // A bare model name means its latest version.
  EXPECT_EQ(Q(**e, "SELECT ref FROM lineage('base')").rows.size(), 2u);
  EXPECT_TRUE(Q(**e, "SELECT * FROM lineage('nope@1')").rows.empty());
  EXPECT_FALSE((*e)->Query("SELECT * FROM lineage").ok());
}

TEST_F(HistoryTest, ComponentsAsOfVersionAndTime) {
  Ingest("m", 0, std::nullopt);
  Ingest("m", 2, "m@1");
  auto e = Engine::Attach(*store_);
  ASSERT_TRUE(e.ok());
  auto by_number = Q(**e, "SELECT COUNT(*) FROM components_as_of('m', 1) WHERE kind = 'tensor'");
  EXPECT_EQ(std::get<int64_t>(by_number.rows[0][0]), 2);
  auto v2 = Q(**e, "SELECT COUNT(*) FROM components_as_of('m', 2) WHERE kind = 'tensor'");
  EXPECT_EQ(std::get<int64_t>(v2.rows[0][0]), 3);
  // Make version 1 old, then ask for a time between the two.
  SqlOptions w;
  w.write = true;
  ASSERT_TRUE((*e)->Query("UPDATE version SET created_at = 1700000000 WHERE number = 1", w).ok());
  auto at = Q(**e, "SELECT DISTINCT ref FROM components_as_of('m', '2024-01-01 00:00:00')");
  ASSERT_EQ(at.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(at.rows[0][0]), "m@1");
  auto unix = Q(**e, "SELECT DISTINCT ref FROM components_as_of('m', 1800000000)");
  ASSERT_EQ(unix.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(unix.rows[0][0]), "m@2");
  EXPECT_TRUE(Q(**e, "SELECT * FROM components_as_of('m', '2000-01-01')").rows.empty());
}

}  // namespace
}  // namespace hart::query

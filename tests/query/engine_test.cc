#include "query/engine.h"

#include <gtest/gtest.h>

#include <set>

#include "query/graph.h"
#include "tests/query/engine_test_util.h"
#include "tests/store/store_test_util.h"

namespace hart::query {
namespace {

using store::testing::MakeSource;
using store::testing::RandomBytes;
using store::testing::TestFile;

class EngineTest : public testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    // A two-layer llama-named model.
    TestFile f{"model.safetensors", RandomBytes(64, 1), {}, {}};
    int seed = 10;
    f.tensors.push_back({"token_embd.weight", RandomBytes(4096, seed++)});
    for (int l = 0; l < 2; ++l)
      for (const char* t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                            "ffn_gate", "ffn_up", "ffn_down"})
        f.tensors.push_back({"blk." + std::to_string(l) + "." + t + ".weight", RandomBytes(1024, seed++)});
    f.tensors.push_back({"output_norm.weight", RandomBytes(256, seed++)});
    f.tensors.push_back({"output.weight", RandomBytes(4096, seed++)});
    auto src = MakeSource(root_ + "/m", {f});
    IngestAndAttach(src, "tiny");
  }
  ResultSet Q(const std::string& sql) {
    auto r = engine_->Query(sql);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status();
    return r.ok() ? *r : ResultSet{};
  }
  int64_t Int(const ResultSet& r, size_t row = 0, size_t col = 0) {
    return std::get<int64_t>(r.rows.at(row).at(col));
  }
};

TEST_F(EngineTest, ViewsExposeModelsVersionsTensorsEdges) {
  auto m = Q("SELECT name, versions, latest FROM models");
  ASSERT_EQ(m.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(m.rows[0][0]), "tiny");
  EXPECT_EQ(Int(m, 0, 1), 1);
  auto v = Q("SELECT ref, license, tensors FROM versions");
  EXPECT_EQ(std::get<std::string>(v.rows[0][0]), "tiny@1");
  EXPECT_EQ(Int(v, 0, 2), 21);
  auto t = Q("SELECT COUNT(*) FROM tensors WHERE role = 'attn_q' AND layer = 1");
  EXPECT_EQ(Int(t), 1);
  auto e = Q("SELECT COUNT(*) FROM edges WHERE kind = 'feeds' AND src_name = 'blk.0.ffn_down.weight' "
             "AND dst_name = 'blk.1.attn_norm.weight'");
  EXPECT_EQ(Int(e), 1);
  auto c = Q("SELECT COUNT(*) FROM chunks");
  EXPECT_GT(Int(c), 0);
  auto blocks = Q("SELECT COUNT(*) FROM components WHERE kind = 'block' AND name LIKE 'blk._'");
  EXPECT_EQ(Int(blocks), 2);
}

TEST_F(EngineTest, ReadOnlyRefusesWritesAttachPragmas) {
  for (const char* sql : {"DELETE FROM model", "INSERT INTO model(name, created_at) VALUES('x', 0)",
                          "UPDATE version SET license = 'x'", "DROP TABLE chunk",
                          "ATTACH DATABASE '/tmp/x.db' AS x", "PRAGMA journal_mode = DELETE",
                          "SELECT load_extension('/tmp/evil.so')", "CREATE TABLE t(x)"}) {
    auto r = engine_->Query(sql);
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << sql << ": " << r.status();
    EXPECT_NE(std::string(r.status().message()).find("read-only"), std::string::npos) << r.status();
  }
  EXPECT_EQ(Int(Q("SELECT COUNT(*) FROM model")), 1);
  // Read-only pragmas pass.
  EXPECT_FALSE(Q("PRAGMA table_info(model)").rows.empty());
}

TEST_F(EngineTest, WriteModeAllowsDeliberateChanges) {
  SqlOptions w;
  w.write = true;
  ASSERT_TRUE(engine_->Query("UPDATE version SET architecture = 'mistral'", w).ok());
  EXPECT_EQ(std::get<std::string>(Q("SELECT architecture FROM versions").rows[0][0]), "mistral");
  // ATTACH stays refused even with --write.
  EXPECT_FALSE(engine_->Query("ATTACH DATABASE '/tmp/x.db' AS x", w).ok());
}

TEST_F(EngineTest, SqlErrorsCarrySqliteMessage) {
  auto r = engine_->Query("SELEC 1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("syntax error"), std::string::npos);
  r = engine_->Query("SELECT nope FROM models");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("no such column"), std::string::npos);
}

TEST_F(EngineTest, TimeoutStopsRunawayQuery) {
  SqlOptions o;
  o.timeout_seconds = 0.2;
  auto r = engine_->Query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                          "SELECT COUNT(*) FROM c", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  // The connection still works afterwards.
  EXPECT_EQ(Int(Q("SELECT 41 + 1")), 42);
}

TEST_F(EngineTest, GraphWalkDownstreamAndUpstream) {
  auto down = Q("SELECT name, depth FROM graph_walk('tiny@1:blk.1.ffn_down.weight', 'down', 64, 'feeds') "
                "ORDER BY depth");
  std::set<std::string> names;
  for (auto& row : down.rows) names.insert(std::get<std::string>(row[0]));
  EXPECT_TRUE(names.count("output.weight"));
  EXPECT_FALSE(names.count("blk.0.attn_q.weight"));
  auto up = Q("SELECT name FROM graph_walk('tiny@1:blk.0.attn_q.weight', 'up', 64, 'feeds')");
  names.clear();
  for (auto& row : up.rows) names.insert(std::get<std::string>(row[0]));
  EXPECT_TRUE(names.count("blk.0.attn_norm.weight"));
  EXPECT_TRUE(names.count("token_embd.weight"));
  EXPECT_FALSE(names.count("output.weight"));
  // Depth limit.
  auto one = Q("SELECT COUNT(*) FROM graph_walk('tiny@1:blk.0.attn_norm.weight', 'down', 1, 'feeds')");
  EXPECT_EQ(Int(one), 4);  // itself + q, k, v
  // Missing arguments and bad direction give errors.
  EXPECT_FALSE(engine_->Query("SELECT * FROM graph_walk('tiny@1:output.weight')").ok());
  EXPECT_FALSE(engine_->Query("SELECT * FROM graph_walk('tiny@1:output.weight', 'sideways', 3)").ok());
  EXPECT_FALSE(engine_->Query("SELECT * FROM graph_walk('tiny@1:nope', 'down', 3)").ok());
}

TEST_F(EngineTest, GraphWalkTerminatesOnCycles) {
  SqlOptions w;
  w.write = true;
  // Close a loop: output feeds the embedding.
  ASSERT_TRUE(engine_->Query(
      "INSERT INTO edge(src, dst, kind) SELECT o.id, e.id, 'feeds' FROM component o, component e "
      "WHERE o.name = 'output.weight' AND e.name = 'token_embd.weight'", w).ok());
  auto all = Q("SELECT COUNT(*), COUNT(DISTINCT id) FROM graph_walk('tiny@1:token_embd.weight', 'down', 1000000, 'feeds')");
  EXPECT_EQ(Int(all, 0, 0), Int(all, 0, 1));
  EXPECT_EQ(Int(all), 23);  // every tensor and both blocks, once
}

TEST_F(EngineTest, ShortestPathAndComponentBytes) {
  auto p = Q("SELECT step, name, edge FROM shortest_path('tiny@1:blk.0.ffn_down.weight', "
             "'tiny@1:blk.1.attn_q.weight', 'feeds')");
  ASSERT_EQ(p.rows.size(), 3u);  // down -> blk.1.attn_norm -> blk.1.attn_q
  EXPECT_EQ(std::get<std::string>(p.rows[1][1]), "blk.1.attn_norm.weight");
  // Against edge direction the path still exists, ignoring direction.
  auto back = Q("SELECT direction FROM shortest_path('tiny@1:blk.1.attn_q.weight', "
                "'tiny@1:blk.1.attn_norm.weight', 'feeds')");
  ASSERT_EQ(back.rows.size(), 2u);
  EXPECT_EQ(std::get<std::string>(back.rows[1][0]), "backward");
  auto bytes = Q("SELECT component_bytes(id) FROM components WHERE name = 'blk.0'");
  EXPECT_EQ(Int(bytes), 9 * 1024);
  auto model = Q("SELECT component_bytes(id) FROM components WHERE kind = 'model'");
  EXPECT_EQ(Int(model), 4096 + 18 * 1024 + 256 + 4096);
}

}  // namespace
}  // namespace hart::query

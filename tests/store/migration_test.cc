// A catalog written by the first schema (v1, frozen below exactly as it
// shipped) opens in this build, is migrated forward, and keeps its rows.
#include <sqlite3.h>

#include <filesystem>

#include "store/catalog.h"
#include "store/store.h"
#include "store_test_util.h"

namespace hart::store::testing {
namespace {

// Frozen copy of migration 1. Never edit: it stands for stores in the field.
constexpr const char* kV1Ddl = R"sql(
CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
CREATE TABLE model(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL);
CREATE TABLE version(
  id INTEGER PRIMARY KEY,
  model_id INTEGER NOT NULL REFERENCES model(id),
  number INTEGER NOT NULL,
  parent_id INTEGER REFERENCES version(id),
  format TEXT NOT NULL,
  license TEXT NOT NULL,
  architecture TEXT NOT NULL DEFAULT '',
  metadata TEXT NOT NULL DEFAULT '{}',
  logical_bytes INTEGER NOT NULL,
  tensor_count INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE(model_id, number));
CREATE TABLE file(
  version_id INTEGER NOT NULL REFERENCES version(id),
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  PRIMARY KEY(version_id, idx));
CREATE TABLE chunk(
  id INTEGER PRIMARY KEY,
  sha256 BLOB NOT NULL UNIQUE,
  pack INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  size INTEGER NOT NULL);
CREATE INDEX chunk_pack ON chunk(pack, offset);
CREATE TABLE component(
  id INTEGER PRIMARY KEY,
  version_id INTEGER NOT NULL REFERENCES version(id),
  parent_id INTEGER REFERENCES component(id),
  kind TEXT NOT NULL CHECK(kind IN ('model', 'block', 'tensor')),
  name TEXT NOT NULL,
  role TEXT,
  layer INTEGER,
  dtype TEXT,
  shape TEXT,
  nbytes INTEGER NOT NULL DEFAULT 0,
  sha256 BLOB);
CREATE INDEX component_version ON component(version_id, kind, name);
CREATE INDEX component_parent ON component(parent_id);
CREATE INDEX component_sha256 ON component(sha256);
CREATE TABLE tensor_chunk(
  component_id INTEGER NOT NULL REFERENCES component(id),
  seq INTEGER NOT NULL,
  chunk_id INTEGER NOT NULL REFERENCES chunk(id),
  PRIMARY KEY(component_id, seq)) WITHOUT ROWID;
CREATE INDEX tensor_chunk_chunk ON tensor_chunk(chunk_id);
CREATE TABLE segment(
  version_id INTEGER NOT NULL REFERENCES version(id),
  file_idx INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  size INTEGER NOT NULL,
  component_id INTEGER REFERENCES component(id),
  PRIMARY KEY(version_id, file_idx, seq)) WITHOUT ROWID;
CREATE TABLE segment_chunk(
  version_id INTEGER NOT NULL,
  file_idx INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  chunk_seq INTEGER NOT NULL,
  chunk_id INTEGER NOT NULL REFERENCES chunk(id),
  PRIMARY KEY(version_id, file_idx, seq, chunk_seq),
  FOREIGN KEY(version_id, file_idx, seq) REFERENCES segment(version_id, file_idx, seq))
  WITHOUT ROWID;
CREATE INDEX segment_chunk_chunk ON segment_chunk(chunk_id);
CREATE TABLE edge(
  src INTEGER NOT NULL REFERENCES component(id),
  dst INTEGER NOT NULL REFERENCES component(id),
  kind TEXT NOT NULL,
  PRIMARY KEY(src, dst, kind)) WITHOUT ROWID;
CREATE INDEX edge_dst ON edge(dst, kind);
CREATE TABLE embedding(
  component_id INTEGER NOT NULL REFERENCES component(id),
  kind TEXT NOT NULL,
  vector BLOB NOT NULL,
  PRIMARY KEY(component_id, kind));
CREATE TABLE outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL);
CREATE TABLE audit(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL);
INSERT INTO schema_migrations VALUES(1, 1700000000);
INSERT INTO model VALUES(1, 'old', 1700000000);
INSERT INTO version VALUES(1, 1, 1, NULL, 'gguf', 'mit', 'llama',
  '{"general.architecture":"llama"}', 0, 0, 1700000000);
INSERT INTO component VALUES(1, 1, NULL, 'model', 'old', NULL, NULL, NULL, NULL, 0, NULL);
)sql";

TEST(Migrations, AV1CatalogOpensAndMigratesForward) {
  Progress::SetEnabled(false);
  std::string dir = MakeTempDir("v1");
  std::filesystem::create_directories(dir + "/packs");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/catalog.sqlite").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr), SQLITE_OK);
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, kV1Ddl, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(db);

  auto store = Store::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto version = SchemaVersion((*store)->catalog());
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, LatestSchemaVersion());
  EXPECT_GT(LatestSchemaVersion(), 1);

  // The old rows are there, and the v2 expression index serves the filter.
  auto versions = (*store)->ListVersions("old");
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ((*versions)[0].license, "mit");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2((*store)->catalog(),
                               "EXPLAIN QUERY PLAN SELECT id FROM version WHERE "
                               "json_extract(metadata, '$.\"general.architecture\"') = 'llama'",
                               -1, &st, nullptr),
            SQLITE_OK);
  std::string plan;
  while (sqlite3_step(st) == SQLITE_ROW) plan += reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
  sqlite3_finalize(st);
  EXPECT_NE(plan.find("version_meta_architecture"), std::string::npos) << plan;

  // New versions go on after the old ones.
  auto src = MakeSource(dir + "/src", {{"old.bin", {}, {{"w", RandomBytes(1000, 1)}}, {}}});
  IngestOptions o;
  o.model = "old";
  o.progress = false;
  auto r = (*store)->Ingest(src, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->number, 2);

  // Reopening is a no-op.
  store->reset();
  auto again = Store::Open(dir);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*SchemaVersion((*again)->catalog()), LatestSchemaVersion());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(Migrations, ANewerCatalogIsRefused) {
  std::string dir = MakeTempDir("future");
  ASSERT_TRUE(Store::Init(dir).ok());
  {
    auto s = Store::Open(dir);
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(sqlite3_exec((*s)->catalog(), "INSERT INTO schema_migrations VALUES(999, 0)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
  }
  auto s = Store::Open(dir);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(s.status().message()).find("upgrade"), std::string::npos);
}

}  // namespace
}  // namespace hart::store::testing

#include "store/catalog.h"

#include <sqlite3.h>

#include <ctime>

#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"

namespace hart::store {
namespace {

// v1: the tables of DESIGN.md "NinaDB on disk". Frozen: tests/store keep a
// copy and check that a catalog made from it opens in this build.
constexpr const char* kV1 = R"sql(
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
)sql";

// v2: expression indexes on the metadata paths people filter on (GGUF
// general.* keys; safetensors and config.json keys).
constexpr const char* kV2 = R"sql(
CREATE INDEX version_meta_architecture ON version(json_extract(metadata, '$."general.architecture"'));
CREATE INDEX version_meta_name ON version(json_extract(metadata, '$."general.name"'));
CREATE INDEX version_meta_license ON version(json_extract(metadata, '$."general.license"'));
CREATE INDEX version_meta_file_type ON version(json_extract(metadata, '$."general.file_type"'));
CREATE INDEX version_meta_size_label ON version(json_extract(metadata, '$."general.size_label"'));
CREATE INDEX version_meta_model_type ON version(json_extract(metadata, '$.model_type'));
CREATE INDEX version_meta_torch_dtype ON version(json_extract(metadata, '$.torch_dtype'));
CREATE INDEX version_architecture ON version(architecture);
CREATE INDEX version_parent ON version(parent_id);
)sql";

// v3: the MQE's search and caches. fts_doc is the full-text index over
// versions (model name, architecture, license, flattened metadata text, so a
// model card kept in metadata is searchable) and tensors (name, role, layer,
// dtype); the fts_*_source views are its one definition, used here to index
// what exists and by ingest (search_index.cc) for each new version.
// tensor_stats caches tensor_stats() JSON by tensor content (sha256).
constexpr const char* kV3 = R"sql(
CREATE VIRTUAL TABLE fts_doc USING fts5(
  kind UNINDEXED, ref UNINDEXED, component_id UNINDEXED, version_id UNINDEXED, name, body,
  tokenize = 'unicode61 remove_diacritics 2');
CREATE VIEW fts_version_source AS
  SELECT 'version' AS kind, m.name || '@' || v.number AS ref,
         (SELECT c.id FROM component c WHERE c.version_id = v.id AND c.kind = 'model' LIMIT 1)
           AS component_id,
         v.id AS version_id, m.name || '@' || v.number AS name,
         m.name || ' ' || v.architecture || ' ' || v.license || ' ' ||
         COALESCE((SELECT group_concat(j.value, ' ') FROM json_tree(v.metadata) j
                   WHERE j.type = 'text' AND j.fullkey NOT LIKE '$."tokenizer.%'
                     AND NOT (typeof(j.key) = 'integer' AND j.key >= 32)), '') AS body
  FROM version v JOIN model m ON m.id = v.model_id;
CREATE VIEW fts_tensor_source AS
  SELECT 'tensor' AS kind, m.name || '@' || v.number AS ref, c.id AS component_id,
         v.id AS version_id, c.name AS name,
         COALESCE(c.role, '') || ' ' || COALESCE('layer ' || c.layer, '') || ' ' ||
         COALESCE(c.dtype, '') AS body
  FROM component c JOIN version v ON v.id = c.version_id JOIN model m ON m.id = v.model_id
  WHERE c.kind = 'tensor';
INSERT INTO fts_doc(kind, ref, component_id, version_id, name, body)
  SELECT * FROM fts_version_source;
INSERT INTO fts_doc(kind, ref, component_id, version_id, name, body)
  SELECT * FROM fts_tensor_source;
CREATE TABLE tensor_stats(
  sha256 BLOB PRIMARY KEY,
  stats TEXT NOT NULL) WITHOUT ROWID;
)sql";

// v4: indexes for questions asked across the whole store ("every attn_q
// of layer 3", "where does this tensor name occur"): without them a filter
// on name or role scans every component row (112 ms at 300k tensors).
constexpr const char* kV4 = R"sql(
CREATE INDEX component_name ON component(name, kind, role, version_id);
CREATE INDEX component_role ON component(role, layer);
)sql";

// v5: deleted versions leave a tombstone, so a model's version numbers are
// never reused ("m@3" in an event, a log or a parent chain always means the
// same bytes), nor are version and component ids (SQLite hands out max + 1,
// which comes back after the newest rows are deleted): the floors are the
// highest ids that existed when the version was deleted.
constexpr const char* kV5 = R"sql(
CREATE TABLE version_tombstone(
  model_id INTEGER NOT NULL REFERENCES model(id),
  number INTEGER NOT NULL,
  version_id INTEGER NOT NULL,
  version_floor INTEGER NOT NULL,
  component_floor INTEGER NOT NULL,
  deleted_at INTEGER NOT NULL,
  PRIMARY KEY(model_id, number)) WITHOUT ROWID;
)sql";

// v6: each file's NinaDB digest (see FileDigest in store/chunker.h), a tree
// hash over its segments' chunk digests that ingest gets without a second
// pass over the bytes. file.sha256 (a plain SHA-256 of the whole file, one
// serial pass) is now '' unless ingest was asked for it (--file-sha256).
constexpr const char* kV6 = R"sql(
ALTER TABLE file ADD COLUMN digest TEXT;
)sql";

// v7: lineage of derived versions (src/workshop/): how a version was made
// from others. One row per derived version, written in the ingest's own
// transaction. inputs is a JSON array of {"ref", "version_id", "digest"}
// (each input's file digests when the derivation ran: the inputs may be
// deleted later, the record stays true); parameters is the method's JSON.
constexpr const char* kV7 = R"sql(
CREATE TABLE derivation(
  version_id INTEGER PRIMARY KEY REFERENCES version(id),
  method TEXT NOT NULL,
  parameters TEXT NOT NULL DEFAULT '{}',
  inputs TEXT NOT NULL DEFAULT '[]',
  hart_version TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE INDEX derivation_method ON derivation(method);
)sql";

constexpr Migration kMigrations[] = {
    {1, "core tables", kV1},
    {2, "metadata expression indexes", kV2},
    {3, "full-text search and tensor_stats cache", kV3},
    {4, "component name and role indexes", kV4},
    {5, "tombstones of deleted versions", kV5},
    {6, "file digests", kV6},
    {7, "derivations (lineage)", kV7},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }
int LatestSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

absl::StatusOr<int> SchemaVersion(sqlite3* db) {
  ASSIGN_OR_RETURN(Stmt has, Stmt::Prepare(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                               "name='schema_migrations'"));
  ASSIGN_OR_RETURN(bool exists, has.Step());
  if (!exists) return 0;
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? static_cast<int>(q.Int(0)) : 0;
}

absl::Status Migrate(sqlite3* db) {
  ASSIGN_OR_RETURN(int current, SchemaVersion(db));
  if (current > LatestSchemaVersion())
    return absl::FailedPreconditionError(fmt::format(
        "catalog schema version {} is newer than this build knows ({}); upgrade hart", current,
        LatestSchemaVersion()));
  if (current == LatestSchemaVersion()) return absl::OkStatus();
  for (const Migration& m : kMigrations) {
    ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
    // Re-read under the write lock: another process may have migrated.
    RETURN_IF_ERROR(Exec(db,
                         "CREATE TABLE IF NOT EXISTS schema_migrations("
                         "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"));
    ASSIGN_OR_RETURN(current, SchemaVersion(db));
    if (m.version <= current) continue;
    absl::Status s = Exec(db, m.sql);
    if (!s.ok()) return Annotate(s, fmt::format("migration {} ({})", m.version, m.what));
    ASSIGN_OR_RETURN(Stmt ins, Stmt::Prepare(db, "INSERT INTO schema_migrations(version, applied_at) "
                                                 "VALUES(?, ?)"));
    RETURN_IF_ERROR(ins.Bind(1, int64_t{m.version}).Bind(2, int64_t{std::time(nullptr)}).Run());
    RETURN_IF_ERROR(txn.Commit());
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite3*> OpenCatalog(const std::string& path, bool create, const std::string& vfs) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, vfs.empty() ? nullptr : vfs.c_str());
  if (rc != SQLITE_OK) {
    absl::Status s = SqlError(db, rc, fmt::format("open {}", path));
    sqlite3_close_v2(db);
    return s;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 30000);
  // synchronous=FULL: a commit is durable when it returns. Commits are one per
  // ingest or gc step, so the extra WAL fsync costs nothing measurable, and a
  // version reported as created must survive a power cut.
  absl::Status s = Exec(db,
                        "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; "
                        "PRAGMA synchronous=FULL;");
  if (s.ok()) s = Migrate(db);
  if (!s.ok()) {
    sqlite3_close_v2(db);
    return Annotate(s, path);
  }
  return db;
}

}  // namespace hart::store

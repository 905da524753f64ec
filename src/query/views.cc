// The user-facing views: stable names and columns documented in docs/MQE.md,
// so nobody joins the internal tables. TEMP views live on the connection, so
// they need no migration and change with the build that serves them.
#include <sqlite3.h>

#include "query/functions.h"
#include "store/db.h"

namespace hart::query {

namespace {
constexpr const char* kViews = R"sql(
CREATE TEMP VIEW IF NOT EXISTS models AS
  SELECT m.id, m.name, COUNT(v.id) AS versions, MAX(v.number) AS latest, m.created_at
  FROM main.model m LEFT JOIN main.version v ON v.model_id = m.id
  GROUP BY m.id;
CREATE TEMP VIEW IF NOT EXISTS versions AS
  SELECT v.id, m.name AS model, v.number, m.name || '@' || v.number AS ref,
         pm.name || '@' || p.number AS parent, v.format, v.license, v.architecture,
         v.tensor_count AS tensors, v.logical_bytes, v.created_at, v.metadata
  FROM main.version v JOIN main.model m ON m.id = v.model_id
  LEFT JOIN main.version p ON p.id = v.parent_id
  LEFT JOIN main.model pm ON pm.id = p.model_id;
CREATE TEMP VIEW IF NOT EXISTS components AS
  SELECT c.id, c.version_id, m.name || '@' || v.number AS ref, c.parent_id, c.kind, c.name,
         c.role, c.layer, c.dtype, c.shape, c.nbytes
  FROM main.component c JOIN main.version v ON v.id = c.version_id
  JOIN main.model m ON m.id = v.model_id;
CREATE TEMP VIEW IF NOT EXISTS tensors AS
  SELECT c.id, c.version_id, m.name AS model, v.number AS version,
         m.name || '@' || v.number AS ref, c.name, c.role, c.layer, c.dtype, c.shape, c.nbytes,
         lower(hex(c.sha256)) AS sha256, c.parent_id
  FROM main.component c JOIN main.version v ON v.id = c.version_id
  JOIN main.model m ON m.id = v.model_id
  WHERE c.kind = 'tensor';
CREATE TEMP VIEW IF NOT EXISTS edges AS
  SELECT e.src, e.dst, e.kind, s.name AS src_name, d.name AS dst_name, s.version_id,
         m.name || '@' || v.number AS ref
  FROM main.edge e JOIN main.component s ON s.id = e.src
  JOIN main.component d ON d.id = e.dst
  JOIN main.version v ON v.id = s.version_id JOIN main.model m ON m.id = v.model_id;
CREATE TEMP VIEW IF NOT EXISTS chunks AS
  SELECT c.id, lower(hex(c.sha256)) AS sha256, c.pack, c.offset, c.size,
         (SELECT COUNT(*) FROM main.tensor_chunk tc WHERE tc.chunk_id = c.id) AS tensor_refs
  FROM main.chunk c;
CREATE TEMP VIEW IF NOT EXISTS derivations AS
  SELECT d.version_id, m.name || '@' || v.number AS ref, d.method, d.parameters,
         (SELECT group_concat(json_extract(j.value, '$.ref'), ',') FROM json_each(d.inputs) j) AS inputs,
         d.inputs AS inputs_json, d.hart_version, d.created_at
  FROM main.derivation d JOIN main.version v ON v.id = d.version_id
  JOIN main.model m ON m.id = v.model_id;
)sql";
}  // namespace

absl::Status CreateViews(sqlite3* db) { return store::Exec(db, kViews); }

}  // namespace hart::query

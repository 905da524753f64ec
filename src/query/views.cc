// The user-facing views: stable names and columns documented in docs/MQE.md,
// so nobody joins the internal tables. TEMP views live on the connection, so
// they need no migration and change with the build that serves them.
//
// Every view keeps only rows of models the connection's caller may read
// (hart_can_read, scope.cc; always true for the CLI and Admins), and a
// column that names another model (a parent, a derivation's input) names it
// only when that model is readable too.
#include <sqlite3.h>

#include "core/status.h"
#include "query/functions.h"
#include "store/db.h"

namespace hart::query {

namespace {
#define HART_READABLE(m) "hart_can_read(" m ".owner, " m ".tenant, " m ".visibility)"
// The model name of a ref held in SQL expression r ("model@N" or "model").
#define HART_REF_READABLE(r)                                                                   \
  "EXISTS (SELECT 1 FROM main.model rm WHERE rm.name = CASE WHEN instr(" r ", '@') > 0 THEN " \
  "substr(" r ", 1, instr(" r ", '@') - 1) ELSE " r " END AND " HART_READABLE("rm") ")"

constexpr const char* kViews =
    "CREATE TEMP VIEW IF NOT EXISTS models AS "
    "  SELECT m.id, m.name, COUNT(v.id) AS versions, MAX(v.number) AS latest, m.created_at "
    "  FROM main.model m LEFT JOIN main.version v ON v.model_id = m.id "
    "  WHERE " HART_READABLE("m") " GROUP BY m.id;"
    "CREATE TEMP VIEW IF NOT EXISTS versions AS "
    "  SELECT v.id, m.name AS model, v.number, m.name || '@' || v.number AS ref, "
    "         CASE WHEN " HART_READABLE("pm") " THEN pm.name || '@' || p.number END AS parent, "
    "         v.format, v.license, v.architecture, "
    "         v.tensor_count AS tensors, v.logical_bytes, v.created_at, v.metadata "
    "  FROM main.version v JOIN main.model m ON m.id = v.model_id "
    "  LEFT JOIN main.version p ON p.id = v.parent_id "
    "  LEFT JOIN main.model pm ON pm.id = p.model_id "
    "  WHERE " HART_READABLE("m") ";"
    "CREATE TEMP VIEW IF NOT EXISTS components AS "
    "  SELECT c.id, c.version_id, m.name || '@' || v.number AS ref, c.parent_id, c.kind, c.name, "
    "         c.role, c.layer, c.dtype, c.shape, c.nbytes "
    "  FROM main.component c JOIN main.version v ON v.id = c.version_id "
    "  JOIN main.model m ON m.id = v.model_id "
    "  WHERE " HART_READABLE("m") ";"
    "CREATE TEMP VIEW IF NOT EXISTS tensors AS "
    "  SELECT c.id, c.version_id, m.name AS model, v.number AS version, "
    "         m.name || '@' || v.number AS ref, c.name, c.role, c.layer, c.dtype, c.shape, c.nbytes, "
    "         lower(hex(c.sha256)) AS sha256, c.parent_id "
    "  FROM main.component c JOIN main.version v ON v.id = c.version_id "
    "  JOIN main.model m ON m.id = v.model_id "
    "  WHERE c.kind = 'tensor' AND " HART_READABLE("m") ";"
    "CREATE TEMP VIEW IF NOT EXISTS edges AS "
    "  SELECT e.src, e.dst, e.kind, s.name AS src_name, d.name AS dst_name, s.version_id, "
    "         m.name || '@' || v.number AS ref "
    "  FROM main.edge e JOIN main.component s ON s.id = e.src "
    "  JOIN main.component d ON d.id = e.dst "
    "  JOIN main.version v ON v.id = s.version_id JOIN main.model m ON m.id = v.model_id "
    "  WHERE " HART_READABLE("m") ";"
    "CREATE TEMP VIEW IF NOT EXISTS derivations AS "
    "  SELECT d.version_id, m.name || '@' || v.number AS ref, d.method, d.parameters, "
    "         (SELECT group_concat(json_extract(j.value, '$.ref'), ',') FROM json_each(d.inputs) j "
    "          WHERE " HART_REF_READABLE("json_extract(j.value, '$.ref')") ") AS inputs, "
    "         CASE WHEN NOT EXISTS (SELECT 1 FROM json_each(d.inputs) j WHERE NOT "
    HART_REF_READABLE("json_extract(j.value, '$.ref')") ") THEN d.inputs "
    "         ELSE (SELECT json_group_array(json(j.value)) FROM json_each(d.inputs) j WHERE "
    HART_REF_READABLE("json_extract(j.value, '$.ref')") ") END AS inputs_json, "
    "         d.hart_version, d.created_at "
    "  FROM main.derivation d JOIN main.version v ON v.id = d.version_id "
    "  JOIN main.model m ON m.id = v.model_id "
    "  WHERE " HART_READABLE("m") ";";

// Everything in the store: the CLI and Admins see every chunk and how many
// tensors share it.
constexpr const char* kAllChunks = R"sql(
CREATE TEMP VIEW IF NOT EXISTS chunks AS
  SELECT c.id, lower(hex(c.sha256)) AS sha256, c.pack, c.offset, c.size,
         (SELECT COUNT(*) FROM main.tensor_chunk tc WHERE tc.chunk_id = c.id) AS tensor_refs
  FROM main.chunk c;
)sql";

// A scoped caller sees the chunks of tensors it may read, and counts only
// those references: whether another owner's tensor shares a chunk stays
// invisible (issue 14, dedup across owners).
constexpr const char* kReadableChunks =
    "CREATE TEMP VIEW IF NOT EXISTS chunks AS "
    "  SELECT c.id, lower(hex(c.sha256)) AS sha256, c.pack, c.offset, c.size, "
    "         COUNT(*) AS tensor_refs "
    "  FROM main.chunk c JOIN main.tensor_chunk tc ON tc.chunk_id = c.id "
    "  JOIN main.component t ON t.id = tc.component_id "
    "  JOIN main.version v ON v.id = t.version_id JOIN main.model m ON m.id = v.model_id "
    "  WHERE " HART_READABLE("m") " GROUP BY c.id;";
#undef HART_REF_READABLE
#undef HART_READABLE
}  // namespace

absl::Status CreateViews(sqlite3* db, bool restricted) {
  RETURN_IF_ERROR(store::Exec(db, kViews));
  return store::Exec(db, restricted ? kReadableChunks : kAllChunks);
}

}  // namespace hart::query

// History functions: versions are immutable snapshots with a parent, so
// "as of" questions are answered by choosing the version.
//   lineage(ref)                 table: ref's parent chain, depth 0 = ref itself;
//     for a scoped caller the chain ends before the first parent it may not
//     read (as the versions view's parent is NULL there): no name of an
//     unreadable model, and no gap in depth
//   components_as_of(model, at)  table: the components of `model` as they were
//     at version `at` (an integer below 10^9 is a version number), or at a
//     time: unix seconds, or text such as '2026-11-25 12:00:00' (UTC): the
//     latest version created at or before it.
#include "core/status.h"
#include "query/functions.h"
#include "query/sql_table_function.h"

namespace hart::query {

absl::Status RegisterHistoryFunctions(sqlite3* db) {
  SqlTableFunctionSpec lineage;
  lineage.name = "lineage";
  lineage.columns = {"depth", "id", "ref", "model", "number", "created_at", "license", "format"};
  lineage.args = {"version"};
  lineage.required_args = 1;
  lineage.sql = R"sql(
    WITH RECURSIVE start(id) AS (
      SELECT v.id FROM main.version v JOIN main.model m ON m.id = v.model_id
      WHERE (m.name || '@' || v.number = ?1
         OR (m.name = ?1 AND v.number = (SELECT MAX(number) FROM main.version WHERE model_id = m.id)))
        AND hart_can_read(m.owner, m.tenant, m.visibility)),
    chain(id, depth) AS (
      SELECT id, 0 FROM start
      UNION ALL
      SELECT v.parent_id, chain.depth + 1 FROM main.version v JOIN chain ON v.id = chain.id
      JOIN main.version pv ON pv.id = v.parent_id JOIN main.model pm ON pm.id = pv.model_id
      WHERE chain.depth < 10000 AND hart_can_read(pm.owner, pm.tenant, pm.visibility))
    SELECT chain.depth, v.id, m.name || '@' || v.number, m.name, v.number, v.created_at, v.license, v.format
    FROM chain JOIN main.version v ON v.id = chain.id JOIN main.model m ON m.id = v.model_id
    WHERE hart_can_read(m.owner, m.tenant, m.visibility)
    ORDER BY chain.depth)sql";
  RETURN_IF_ERROR(RegisterSqlTableFunction(db, lineage));

  SqlTableFunctionSpec as_of;
  as_of.name = "components_as_of";
  as_of.columns = {"id", "version_id", "ref", "parent_id", "kind", "name", "role", "layer", "dtype",
                   "shape", "nbytes"};
  as_of.args = {"model", "at"};
  as_of.required_args = 2;
  as_of.sql = R"sql(
    WITH target(id) AS (
      SELECT v.id FROM main.version v JOIN main.model m ON m.id = v.model_id
      WHERE m.name = ?1 AND hart_can_read(m.owner, m.tenant, m.visibility) AND v.number = CASE
        WHEN typeof(?2) = 'integer' AND ?2 < 1000000000 THEN ?2
        ELSE (SELECT MAX(v2.number) FROM main.version v2 WHERE v2.model_id = m.id AND v2.created_at <=
                CASE WHEN typeof(?2) IN ('integer', 'real') THEN ?2
                     ELSE CAST(strftime('%s', ?2) AS INTEGER) END)
      END)
    SELECT c.id, c.version_id, m.name || '@' || v.number, c.parent_id, c.kind, c.name, c.role, c.layer,
           c.dtype, c.shape, c.nbytes
    FROM target JOIN main.component c ON c.version_id = target.id
    JOIN main.version v ON v.id = c.version_id JOIN main.model m ON m.id = v.model_id
    ORDER BY c.id)sql";
  return RegisterSqlTableFunction(db, as_of);
}

}  // namespace hart::query

// DeleteVersion: one transaction removes every row that belongs to the
// version; the chunks become dead only where no other version references
// them, and gc reclaims those bytes (crash-safely) later. A tombstone keeps
// the number from ever being handed out again.
#include <ctime>

#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {

absl::Status RecordEvent(sqlite3* db, std::string_view kind, const nlohmann::json& payload,
                         std::string_view action, std::string_view actor);

absl::StatusOr<DeleteReport> Store::DeleteVersion(const VersionRef& ref, bool force,
                                                  std::string_view actor) {
  if (!ref.number)
    return absl::InvalidArgumentError(fmt::format(
        "'{}' names no version: say which one to delete, e.g. {}@1", ref.model, ref.model));
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
  sqlite3* db = impl_->db;
  ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));

  ASSIGN_OR_RETURN(Stmt qv, Stmt::Prepare(db, "SELECT v.id, v.model_id, v.parent_id FROM version v "
                                              "JOIN model m ON m.id = v.model_id "
                                              "WHERE m.name = ? AND v.number = ?"));
  qv.Bind(1, ref.model).Bind(2, *ref.number);
  ASSIGN_OR_RETURN(bool found, qv.Step());
  if (!found) return absl::NotFoundError(fmt::format("no version {} in the store", ref.ToString()));
  const int64_t vid = qv.Int(0), model_id = qv.Int(1);
  const std::optional<int64_t> parent = qv.IsNull(2) ? std::nullopt : std::optional<int64_t>(qv.Int(2));

  DeleteReport rep;
  rep.ref = fmt::format("{}@{}", ref.model, *ref.number);
  ASSIGN_OR_RETURN(Stmt qc, Stmt::Prepare(db, "SELECT m.name || '@' || v.number FROM version v "
                                              "JOIN model m ON m.id = v.model_id WHERE v.parent_id = ? "
                                              "ORDER BY m.name, v.number"));
  qc.Bind(1, vid);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, qc.Step());
    if (!row) break;
    rep.children.push_back(qc.Text(0));
  }
  if (!rep.children.empty() && !force) {
    std::string list;
    for (const auto& c : rep.children) list += (list.empty() ? "" : ", ") + c;
    return absl::FailedPreconditionError(fmt::format(
        "{} is the parent of {}; delete it with force to do it anyway (they then descend "
        "from its parent)", rep.ref, list));
  }

  // What gc will reclaim: chunks of this version no other version uses.
  constexpr const char* kMine =
      "SELECT tc.chunk_id FROM tensor_chunk tc JOIN component c ON c.id = tc.component_id "
      "WHERE c.version_id = ?1 UNION SELECT chunk_id FROM segment_chunk WHERE version_id = ?1";
  ASSIGN_OR_RETURN(Stmt qb, Stmt::Prepare(db, fmt::format(
      "SELECT COALESCE(SUM(ch.size), 0) FROM chunk ch WHERE ch.id IN ({}) "
      "AND NOT EXISTS (SELECT 1 FROM tensor_chunk tc JOIN component c ON c.id = tc.component_id "
      "                WHERE tc.chunk_id = ch.id AND c.version_id != ?1) "
      "AND NOT EXISTS (SELECT 1 FROM segment_chunk sc WHERE sc.chunk_id = ch.id "
      "                AND sc.version_id != ?1)", kMine)));
  qb.Bind(1, vid);
  ASSIGN_OR_RETURN(bool brow, qb.Step());
  if (brow) rep.exclusive_bytes = static_cast<uint64_t>(qb.Int(0));

  ASSIGN_OR_RETURN(Stmt qt, Stmt::Prepare(db, "SELECT COUNT(*) FROM component "
                                              "WHERE version_id = ? AND kind = 'tensor'"));
  qt.Bind(1, vid);
  ASSIGN_OR_RETURN(bool trow, qt.Step());
  if (trow) rep.tensors = static_cast<uint64_t>(qt.Int(0));

  ASSIGN_OR_RETURN(Stmt qm, Stmt::Prepare(db, "SELECT COALESCE(MAX(id), 0) FROM component"));
  ASSIGN_OR_RETURN(bool mrow, qm.Step());
  const int64_t max_component = mrow ? qm.Int(0) : 0;

  // Children first, then every row keyed by the version or its components.
  constexpr const char* kComps = "(SELECT id FROM component WHERE version_id = ?1)";
  const std::string steps[] = {
      "UPDATE version SET parent_id = ?2 WHERE parent_id = ?1",
      "DELETE FROM fts_doc WHERE version_id = ?1",
      fmt::format("DELETE FROM embedding WHERE component_id IN {}", kComps),
      fmt::format("DELETE FROM edge WHERE src IN {0} OR dst IN {0}", kComps),
      fmt::format("DELETE FROM tensor_chunk WHERE component_id IN {}", kComps),
      "DELETE FROM segment_chunk WHERE version_id = ?1",
      "DELETE FROM segment WHERE version_id = ?1",
      "DELETE FROM file WHERE version_id = ?1",
      "DELETE FROM derivation WHERE version_id = ?1",
      "DELETE FROM component WHERE version_id = ?1",
      "DELETE FROM version WHERE id = ?1",
  };
  for (const std::string& sql : steps) {
    ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, sql));
    st.Bind(1, vid);
    if (sql.find("?2") != std::string::npos) {
      if (parent) st.Bind(2, *parent);
      else st.BindNull(2);
    }
    RETURN_IF_ERROR(st.Run());
  }
  ASSIGN_OR_RETURN(Stmt ts, Stmt::Prepare(db,
      "INSERT INTO version_tombstone(model_id, number, version_id, version_floor, component_floor, "
      "deleted_at) VALUES(?1, ?2, ?3, MAX(?3, COALESCE((SELECT MAX(id) FROM version), 0)), "
      "MAX(?4, COALESCE((SELECT MAX(id) FROM component), 0)), ?5)"));
  RETURN_IF_ERROR(ts.Bind(1, model_id).Bind(2, *ref.number).Bind(3, vid).Bind(4, max_component)
                      .Bind(5, static_cast<int64_t>(std::time(nullptr))).Run());
  RETURN_IF_ERROR(RecordEvent(db, "version.deleted",
                              {{"model", ref.model},
                               {"number", *ref.number},
                               {"version_id", vid},
                               {"tensors", rep.tensors},
                               {"exclusive_bytes", rep.exclusive_bytes},
                               {"children_relinked", rep.children}},
                              "delete", actor));
  RETURN_IF_ERROR(txn.Commit());
  return rep;
}

}  // namespace hart::store

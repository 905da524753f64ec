// Stats (logical vs physical bytes per model and overall, pack and catalog
// bytes on disk) and the outbox change feed.
#include <sys/stat.h>

#include "core/status.h"
#include "store/db.h"
#include "store/pack.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {
namespace {

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Unique chunk bytes referenced by the versions that `where` selects
// (a condition on version v).
constexpr const char* kPhysical =
    "SELECT COALESCE(SUM(size), 0) FROM chunk WHERE id IN ("
    " SELECT tc.chunk_id FROM tensor_chunk tc JOIN component co ON co.id = tc.component_id"
    " JOIN version v ON v.id = co.version_id WHERE {0}"
    " UNION SELECT sc.chunk_id FROM segment_chunk sc JOIN version v ON v.id = sc.version_id WHERE {0})";

}  // namespace

absl::StatusOr<StatsReport> Store::Stats() {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  sqlite3* db = rc.db();
  StatsReport rep;
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db,
                                         "SELECT m.id, m.name, COUNT(v.id), COALESCE(SUM(v.tensor_count), 0), "
                                         "COALESCE(SUM(v.logical_bytes), 0) FROM model m "
                                         "LEFT JOIN version v ON v.model_id = m.id GROUP BY m.id ORDER BY m.name"));
  ASSIGN_OR_RETURN(Stmt phys, Stmt::Prepare(db, fmt::format(kPhysical, "v.model_id = ?1")));
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    StatsRow r;
    r.model = q.Text(1);
    r.versions = static_cast<uint64_t>(q.Int(2));
    r.tensors = static_cast<uint64_t>(q.Int(3));
    r.logical_bytes = static_cast<uint64_t>(q.Int(4));
    phys.Bind(1, q.Int(0));
    ASSIGN_OR_RETURN(bool prow, phys.Step());
    if (prow) r.physical_bytes = static_cast<uint64_t>(phys.Int(0));
    phys.Reset();
    r.dedup_ratio = r.physical_bytes ? double(r.logical_bytes) / double(r.physical_bytes) : 0;
    rep.total.versions += r.versions;
    rep.total.tensors += r.tensors;
    rep.total.logical_bytes += r.logical_bytes;
    rep.models.push_back(std::move(r));
  }
  ASSIGN_OR_RETURN(Stmt all, Stmt::Prepare(db, fmt::format(kPhysical, "1")));
  ASSIGN_OR_RETURN(bool arow, all.Step());
  if (arow) rep.total.physical_bytes = static_cast<uint64_t>(all.Int(0));
  rep.total.dedup_ratio = rep.total.physical_bytes
                              ? double(rep.total.logical_bytes) / double(rep.total.physical_bytes)
                              : 0;
  ASSIGN_OR_RETURN(std::vector<int64_t> packs, ListPacks(impl_->packs_dir));
  for (int64_t p : packs) rep.pack_bytes += FileSize(PackPath(impl_->packs_dir, p));
  std::string cat = impl_->dir + "/catalog.sqlite";
  rep.catalog_bytes = FileSize(cat) + FileSize(cat + "-wal");
  return rep;
}

absl::StatusOr<std::vector<Event>> Store::Events(int64_t after_id, int64_t limit) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  if (limit <= 0) limit = 1000;
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                         "SELECT id, ts, kind, payload FROM outbox WHERE id > ? "
                                         "ORDER BY id LIMIT ?"));
  q.Bind(1, after_id).Bind(2, limit);
  std::vector<Event> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    Event e;
    e.id = q.Int(0);
    e.ts = q.Int(1);
    e.kind = q.Text(2);
    e.payload = nlohmann::json::parse(q.Text(3), nullptr, false);
    if (e.payload.is_discarded()) e.payload = nlohmann::json::object();
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace hart::store

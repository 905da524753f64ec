// Catalog listings: models, versions, tensors, files, and resolving
// "model@N" references.
#include <map>

#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {
namespace {

constexpr const char* kVersionSelect =
    "SELECT v.id, m.name, v.number, pm.name, pv.number, v.format, v.license, v.architecture, "
    "v.created_at, v.tensor_count, v.logical_bytes, v.metadata "
    "FROM version v JOIN model m ON m.id = v.model_id "
    "LEFT JOIN version pv ON pv.id = v.parent_id LEFT JOIN model pm ON pm.id = pv.model_id ";

VersionRow ReadVersionRow(const Stmt& q) {
  VersionRow r;
  r.id = q.Int(0);
  r.model = q.Text(1);
  r.number = q.Int(2);
  if (!q.IsNull(3)) r.parent = fmt::format("{}@{}", q.Text(3), q.Int(4));
  if (auto f = formats::FormatFromName(q.Text(5)); f.ok()) r.format = *f;
  r.license = q.Text(6);
  r.architecture = q.Text(7);
  r.created_at = q.Int(8);
  r.tensors = static_cast<uint64_t>(q.Int(9));
  r.logical_bytes = static_cast<uint64_t>(q.Int(10));
  r.metadata = nlohmann::json::parse(q.Text(11), nullptr, /*allow_exceptions=*/false);
  if (r.metadata.is_discarded()) r.metadata = nlohmann::json::object();
  return r;
}

}  // namespace

absl::StatusOr<std::vector<ModelRow>> Store::ListModels() {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                         "SELECT m.id, m.name, COUNT(v.id), COALESCE(MAX(v.number), 0), "
                                         "(SELECT logical_bytes FROM version WHERE model_id = m.id "
                                         " ORDER BY number DESC LIMIT 1) "
                                         "FROM model m LEFT JOIN version v ON v.model_id = m.id "
                                         "GROUP BY m.id HAVING COUNT(v.id) > 0 ORDER BY m.name"));
  std::vector<ModelRow> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Int(0), q.Text(1), q.Int(2), q.Int(3), static_cast<uint64_t>(q.Int(4))});
  }
  return out;
}

absl::StatusOr<std::vector<VersionRow>> Store::ListVersions(std::string_view model) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  std::string sql = std::string(kVersionSelect) +
                    (model.empty() ? "" : "WHERE m.name = ? ") + "ORDER BY m.name, v.number";
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(), sql));
  if (!model.empty()) q.Bind(1, model);
  std::vector<VersionRow> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ReadVersionRow(q));
  }
  if (out.empty() && !model.empty()) {
    ASSIGN_OR_RETURN(Stmt m, Stmt::Prepare(rc.db(), "SELECT 1 FROM model WHERE name = ?"));
    m.Bind(1, model);
    ASSIGN_OR_RETURN(bool exists, m.Step());
    if (!exists) return absl::NotFoundError(fmt::format("no model named '{}'", model));
  }
  return out;
}

absl::StatusOr<VersionRow> Store::Impl::VersionById(int64_t version_id) {
  ASSIGN_OR_RETURN(ReadConn rc, Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(), std::string(kVersionSelect) + "WHERE v.id = ?"));
  q.Bind(1, version_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(fmt::format("no version with id {}", version_id));
  return ReadVersionRow(q);
}

absl::StatusOr<VersionRow> Store::Resolve(const VersionRef& ref) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  std::string sql = std::string(kVersionSelect) + "WHERE m.name = ? " +
                    (ref.number ? "AND v.number = ?" : "ORDER BY v.number DESC LIMIT 1");
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(), sql));
  q.Bind(1, ref.model);
  if (ref.number) q.Bind(2, *ref.number);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (row) return ReadVersionRow(q);
  ASSIGN_OR_RETURN(Stmt m, Stmt::Prepare(rc.db(),
                                         "SELECT COUNT(v.id), MAX(v.number) FROM model m "
                                         "LEFT JOIN version v ON v.model_id = m.id WHERE m.name = ?"));
  m.Bind(1, ref.model);
  ASSIGN_OR_RETURN(bool has, m.Step());
  if (!has || m.Int(0) == 0) return absl::NotFoundError(fmt::format("no model named '{}'", ref.model));
  return absl::NotFoundError(fmt::format("{} has no version {} (latest is {}@{})", ref.model,
                                         *ref.number, ref.model, m.Int(1)));
}

absl::StatusOr<std::vector<TensorRow>> Store::ListTensors(int64_t version_id) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  RETURN_IF_ERROR(impl_->VersionById(version_id).status());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                         "SELECT id, name, dtype, shape, nbytes, sha256 FROM component "
                                         "WHERE version_id = ? AND kind = 'tensor' ORDER BY id"));
  q.Bind(1, version_id);
  std::vector<TensorRow> out;
  std::map<int64_t, size_t> by_id;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    TensorRow t;
    t.id = q.Int(0);
    t.name = q.Text(1);
    if (auto d = DTypeFromName(q.Text(2)); d.ok()) t.dtype = *d;
    auto shape = nlohmann::json::parse(q.Text(3), nullptr, false);
    if (shape.is_array())
      for (const auto& d : shape)
        if (d.is_number_unsigned()) t.shape.push_back(d.get<uint64_t>());
    t.nbytes = static_cast<uint64_t>(q.Int(4));
    t.contiguous = t.nbytes == 0;
    for (uint8_t b : q.Blob(5)) t.sha256 += fmt::format("{:02x}", b);
    by_id[t.id] = out.size();
    out.push_back(std::move(t));
  }
  // Contiguity: the chunks, in order, lie back to back in one pack.
  ASSIGN_OR_RETURN(Stmt c, Stmt::Prepare(rc.db(),
                                         "SELECT tc.component_id, ch.pack, ch.offset, ch.size "
                                         "FROM component co JOIN tensor_chunk tc ON tc.component_id = co.id "
                                         "JOIN chunk ch ON ch.id = tc.chunk_id "
                                         "WHERE co.version_id = ? AND co.kind = 'tensor' "
                                         "ORDER BY tc.component_id, tc.seq"));
  c.Bind(1, version_id);
  int64_t cur = -1, pack = -1;
  uint64_t next = 0;
  bool ok = false;
  auto flush = [&] {
    if (cur >= 0) out[by_id[cur]].contiguous = ok;
  };
  for (;;) {
    ASSIGN_OR_RETURN(bool row, c.Step());
    if (!row) break;
    int64_t comp = c.Int(0);
    if (comp != cur) {
      flush();
      cur = comp;
      pack = c.Int(1);
      next = static_cast<uint64_t>(c.Int(2) + c.Int(3));
      ok = true;
      continue;
    }
    if (c.Int(1) != pack || static_cast<uint64_t>(c.Int(2)) != next) ok = false;
    next = static_cast<uint64_t>(c.Int(2) + c.Int(3));
  }
  flush();
  // Other versions holding the same bytes (equal tensor digests).
  ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(rc.db(),
                                         "SELECT a.id, m.name, v.number FROM component a "
                                         "JOIN component b ON b.sha256 = a.sha256 AND b.kind = 'tensor' "
                                         "AND b.version_id != a.version_id "
                                         "JOIN version v ON v.id = b.version_id JOIN model m ON m.id = v.model_id "
                                         "WHERE a.version_id = ? AND a.kind = 'tensor' AND a.nbytes > 0 "
                                         "GROUP BY a.id, b.version_id ORDER BY a.id, m.name, v.number"));
  s.Bind(1, version_id);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[by_id[s.Int(0)]].shared_with.push_back(fmt::format("{}@{}", s.Text(1), s.Int(2)));
  }
  return out;
}

absl::StatusOr<std::vector<FileRow>> Store::ListFiles(int64_t version_id) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  RETURN_IF_ERROR(impl_->VersionById(version_id).status());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                         "SELECT idx, name, size, sha256, COALESCE(digest, '') FROM file WHERE version_id = ? "
                                         "ORDER BY idx"));
  q.Bind(1, version_id);
  std::vector<FileRow> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({static_cast<int>(q.Int(0)), q.Text(1), static_cast<uint64_t>(q.Int(2)), q.Text(3),
                   q.Text(4)});
  }
  return out;
}

}  // namespace hart::store

// Diff of two versions by tensor name: added, removed, changed (bytes,
// dtype or shape), with the bytes of B's chunks that A's tensor lacks.
#include <map>
#include <set>

#include "core/status.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {
namespace {

struct Side {
  int64_t id = 0;
  std::string dtype;
  Shape shape;
  uint64_t nbytes = 0;
  std::vector<uint8_t> digest;
};

absl::StatusOr<std::map<std::string, Side>> Tensors(sqlite3* db, int64_t version_id) {
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db,
                                         "SELECT id, name, dtype, shape, nbytes, sha256 FROM component "
                                         "WHERE version_id = ? AND kind = 'tensor'"));
  q.Bind(1, version_id);
  std::map<std::string, Side> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    Side s;
    s.id = q.Int(0);
    s.dtype = q.Text(2);
    auto shape = nlohmann::json::parse(q.Text(3), nullptr, false);
    if (shape.is_array())
      for (const auto& d : shape)
        if (d.is_number_unsigned()) s.shape.push_back(d.get<uint64_t>());
    s.nbytes = static_cast<uint64_t>(q.Int(4));
    auto blob = q.Blob(5);
    s.digest.assign(blob.begin(), blob.end());
    out.emplace(q.Text(1), std::move(s));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<DiffRow>> Store::Diff(int64_t version_a, int64_t version_b) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  RETURN_IF_ERROR(impl_->VersionById(version_a).status());
  RETURN_IF_ERROR(impl_->VersionById(version_b).status());
  ASSIGN_OR_RETURN(auto a, Tensors(rc.db(), version_a));
  ASSIGN_OR_RETURN(auto b, Tensors(rc.db(), version_b));
  std::vector<DiffRow> out;
  for (const auto& [name, sa] : a) {
    if (b.count(name)) continue;
    DiffRow r;
    r.kind = DiffRow::Kind::kRemoved;
    r.name = name;
    r.dtype_a = sa.dtype;
    r.shape_a = sa.shape;
    r.bytes_a = sa.nbytes;
    out.push_back(std::move(r));
  }
  for (const auto& [name, sb] : b) {
    auto it = a.find(name);
    DiffRow r;
    r.name = name;
    r.dtype_b = sb.dtype;
    r.shape_b = sb.shape;
    r.bytes_b = sb.nbytes;
    if (it == a.end()) {
      r.kind = DiffRow::Kind::kAdded;
      r.changed_bytes = sb.nbytes;
      out.push_back(std::move(r));
      continue;
    }
    const Side& sa = it->second;
    if (sa.digest == sb.digest && sa.dtype == sb.dtype && sa.shape == sb.shape) continue;
    r.kind = DiffRow::Kind::kChanged;
    r.dtype_a = sa.dtype;
    r.shape_a = sa.shape;
    r.bytes_a = sa.nbytes;
    ASSIGN_OR_RETURN(std::vector<ChunkLoc> ca, impl_->TensorChunks(sa.id));
    ASSIGN_OR_RETURN(std::vector<ChunkLoc> cb, impl_->TensorChunks(sb.id));
    std::set<int64_t> have;
    for (const ChunkLoc& c : ca) have.insert(c.id);
    for (const ChunkLoc& c : cb)
      if (!have.count(c.id)) r.changed_bytes += c.size;
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const DiffRow& x, const DiffRow& y) { return x.name < y.name; });
  return out;
}

}  // namespace hart::store

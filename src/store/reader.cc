// Reads: a tensor's bytes (zero copy from a pack map when its chunks lie
// back to back in one pack) and byte ranges of a version's original files.
#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {

absl::StatusOr<TensorBytes> Store::ReadTensor(int64_t version_id, std::string_view name) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  int64_t comp;
  uint64_t nbytes;
  std::vector<ChunkLoc> chunks;
  {
    ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
    ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                           "SELECT id, nbytes FROM component WHERE version_id = ? "
                                           "AND kind = 'tensor' AND name = ?"));
    q.Bind(1, version_id).Bind(2, name);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) {
      ASSIGN_OR_RETURN(std::string ref, VersionRefString(rc.db(), version_id));
      return absl::NotFoundError(fmt::format("{} has no tensor '{}'", ref, name));
    }
    comp = q.Int(0);
    nbytes = static_cast<uint64_t>(q.Int(1));
    ASSIGN_OR_RETURN(chunks, impl_->TensorChunks(comp));
  }
  uint64_t total = 0;
  for (const ChunkLoc& c : chunks) total += c.size;
  if (total != nbytes)
    return absl::DataLossError(fmt::format("tensor '{}': catalog lists {} bytes of chunks for {} bytes",
                                           name, total, nbytes));
  if (nbytes == 0) return TensorBytes::Owned({});
  std::vector<PackRun> runs = MergeRuns(chunks);
  if (runs.size() == 1) {
    ASSIGN_OR_RETURN(auto map, impl_->packs->Get(runs[0].pack, runs[0].offset + runs[0].size));
    return TensorBytes::Mapped(map, map->bytes().subspan(runs[0].offset, runs[0].size));
  }
  std::vector<uint8_t> buf(nbytes);
  RETURN_IF_ERROR(impl_->CopyChunks(chunks, 0, buf));
  return TensorBytes::Owned(std::move(buf));
}

absl::Status Store::ReadFileRange(int64_t version_id, int file_index, uint64_t offset,
                                  std::span<uint8_t> out) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  struct Seg {
    int64_t seq;
    uint64_t offset, size;
    std::optional<int64_t> component;
  };
  std::vector<Seg> segs;
  uint64_t file_size = 0;
  {
    ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
    ASSIGN_OR_RETURN(Stmt f, Stmt::Prepare(rc.db(),
                                           "SELECT size, name FROM file WHERE version_id = ? AND idx = ?"));
    f.Bind(1, version_id).Bind(2, int64_t{file_index});
    ASSIGN_OR_RETURN(bool row, f.Step());
    if (!row) return absl::NotFoundError(fmt::format("version {} has no file #{}", version_id, file_index));
    file_size = static_cast<uint64_t>(f.Int(0));
    if (offset > file_size || out.size() > file_size - offset)
      return absl::OutOfRangeError(fmt::format("{}: range [{}, {}) lies past the end ({} bytes)",
                                               f.Text(1), offset, offset + out.size(), file_size));
    ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                           "SELECT seq, offset, size, component_id FROM segment "
                                           "WHERE version_id = ? AND file_idx = ? AND offset < ? "
                                           "AND offset + size > ? ORDER BY seq"));
    q.Bind(1, version_id).Bind(2, int64_t{file_index});
    q.Bind(3, static_cast<int64_t>(offset + out.size())).Bind(4, static_cast<int64_t>(offset));
    for (;;) {
      ASSIGN_OR_RETURN(bool r, q.Step());
      if (!r) break;
      Seg s{q.Int(0), static_cast<uint64_t>(q.Int(1)), static_cast<uint64_t>(q.Int(2)), std::nullopt};
      if (!q.IsNull(3)) s.component = q.Int(3);
      segs.push_back(s);
    }
  }
  uint64_t pos = offset;
  for (const Seg& s : segs) {
    if (s.offset > pos) break;  // a gap: caught below
    ASSIGN_OR_RETURN(std::vector<ChunkLoc> chunks,
                     s.component ? impl_->TensorChunks(*s.component)
                                 : impl_->SegmentChunks(version_id, file_index, s.seq));
    uint64_t n = std::min(s.offset + s.size, offset + out.size()) - pos;
    RETURN_IF_ERROR(impl_->CopyChunks(chunks, pos - s.offset, out.subspan(pos - offset, n)));
    pos += n;
  }
  if (pos != offset + out.size())
    return absl::DataLossError(fmt::format("version {} file #{}: no segment covers offset {}",
                                           version_id, file_index, pos));
  return absl::OkStatus();
}

}  // namespace hart::store

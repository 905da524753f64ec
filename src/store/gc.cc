// Gc: the store taken exclusively; chunk rows nothing references are
// deleted, then every pack with dead bytes is reclaimed:
//  - no live chunk: the pack is an orphan (a crashed ingest's new pack, a
//    pack emptied earlier) and is unlinked;
//  - dead bytes only after the last live chunk (a torn tail): truncated;
//  - dead bytes between live chunks: the live chunks are copied, in offset
//    order (so tensors stay contiguous), to a new pack that is fsynced
//    before one transaction repoints their rows; only after the commit is the
//    old pack unlinked. At every step the catalog points at complete data.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {

absl::Status RecordEvent(sqlite3* db, std::string_view kind, const nlohmann::json& payload,
                         std::string_view action, std::string_view actor);

namespace {

// Releases the exclusive store lock on every path out of Gc().
struct ExclusiveHold {
  StoreLock* l;
  ~ExclusiveHold() { l->UnlockExclusive(); }
};

}  // namespace

void Store::set_gc_wait(std::chrono::milliseconds wait) { impl_->gc_wait = wait; }

absl::StatusOr<GcReport> Store::Gc(std::string_view actor) {
  RETURN_IF_ERROR(impl_->lock->LockExclusive(impl_->gc_wait));
  ExclusiveHold hold{impl_->lock.get()};
  std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
  sqlite3* db = impl_->db;
  GcReport rep;

  {
    ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
    constexpr const char* kDead =
        "NOT EXISTS (SELECT 1 FROM tensor_chunk tc WHERE tc.chunk_id = chunk.id) AND "
        "NOT EXISTS (SELECT 1 FROM segment_chunk sc WHERE sc.chunk_id = chunk.id)";
    ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db, fmt::format("SELECT COUNT(*), COALESCE(SUM(size), 0) "
                                                           "FROM chunk WHERE {}", kDead)));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) rep.chunks_removed = static_cast<uint64_t>(q.Int(0));
    if (rep.chunks_removed > 0) {
      RETURN_IF_ERROR(Exec(db, fmt::format("DELETE FROM chunk WHERE {}", kDead)));
      RETURN_IF_ERROR(txn.Commit());
    }
  }

  ASSIGN_OR_RETURN(std::vector<int64_t> packs, ListPacks(impl_->packs_dir));
  std::unique_ptr<PackWriter> writer;  // created at the first rewrite
  ASSIGN_OR_RETURN(Stmt lq, Stmt::Prepare(db, "SELECT id, offset, size FROM chunk WHERE pack = ? "
                                              "ORDER BY offset"));
  for (int64_t pack : packs) {
    std::string path = PackPath(impl_->packs_dir, pack);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    uint64_t size = static_cast<uint64_t>(st.st_size);
    std::vector<ChunkLoc> live;
    lq.Bind(1, pack);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, lq.Step());
      if (!row) break;
      live.push_back({lq.Int(0), pack, static_cast<uint64_t>(lq.Int(1)), static_cast<uint64_t>(lq.Int(2))});
    }
    lq.Reset();

    if (live.empty()) {
      RETURN_IF_ERROR(impl_->env->Unlink(path));
      ++rep.packs_deleted;
      rep.bytes_reclaimed += size;
      continue;
    }
    // Live bytes tiling [header, end) leave dead bytes only at the tail.
    // Gaps under a block are the alignment of direct-I/O ingests (see
    // PackWriter::UseDirectIo), not worth rewriting a pack for.
    uint64_t pos = kPackHeaderSize, live_bytes = 0;
    bool tiled = true;
    for (const ChunkLoc& c : live) {
      if (c.offset < pos || c.offset - pos >= kDirectBlock) tiled = false;
      pos = std::max(pos, c.offset + c.size);
      live_bytes += c.size;
    }
    if (pos > size)  // a chunk past the end: verify reports it; never cut live bytes
      continue;
    if (tiled) {
      if (pos == size) continue;
      ASSIGN_OR_RETURN(Fd fd, impl_->env->Open(path, O_RDWR));
      RETURN_IF_ERROR(impl_->env->Truncate(fd.get(), pos, path));
      RETURN_IF_ERROR(impl_->env->Fsync(fd.get(), path));
      rep.bytes_reclaimed += size - pos;
      continue;
    }

    // Rewrite: copy live runs to the gc's own pack(s), then repoint.
    ASSIGN_OR_RETURN(auto map, impl_->packs->Get(pack, pos));
    if (!writer) {
      writer = std::make_unique<PackWriter>(impl_->packs_dir, impl_->env);
      RETURN_IF_ERROR(writer->StartNewPack());
    }
    std::vector<std::pair<int64_t, uint64_t>> moved(live.size());
    size_t i = 0;
    while (i < live.size()) {
      size_t j = i + 1;
      uint64_t run = live[i].size;
      while (j < live.size() && live[j].offset == live[i].offset + run) run += live[j++].size;
      RETURN_IF_ERROR(writer->Reserve(run));
      ASSIGN_OR_RETURN(auto at, writer->Append(map->bytes().subspan(live[i].offset, run)));
      uint64_t off = at.second;
      for (size_t k = i; k < j; ++k) {
        moved[k] = {at.first, off};
        off += live[k].size;
      }
      i = j;
    }
    RETURN_IF_ERROR(writer->Sync());
    {
      ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
      ASSIGN_OR_RETURN(Stmt up, Stmt::Prepare(db, "UPDATE chunk SET pack = ?, offset = ? WHERE id = ?"));
      for (size_t k = 0; k < live.size(); ++k) {
        up.Bind(1, moved[k].first).Bind(2, static_cast<int64_t>(moved[k].second)).Bind(3, live[k].id);
        RETURN_IF_ERROR(up.Run());
      }
      RETURN_IF_ERROR(txn.Commit());
    }
    RETURN_IF_ERROR(impl_->env->Unlink(path));
    ++rep.packs_rewritten;
    rep.bytes_reclaimed += size - live_bytes - kPackHeaderSize;
  }
  RETURN_IF_ERROR(impl_->env->FsyncDir(impl_->packs_dir));
  impl_->packs->Clear();
  // Scratch files (NewTempPath) a crashed upload or load left behind.
  {
    std::error_code ec;
    auto cutoff = std::filesystem::file_time_type::clock::now() - std::chrono::hours(24);
    for (const auto& e : std::filesystem::directory_iterator(impl_->dir + "/tmp", ec)) {
      std::error_code ec2;
      if (e.is_regular_file(ec2) && e.last_write_time(ec2) < cutoff) std::filesystem::remove(e.path(), ec2);
    }
  }

  nlohmann::json payload = {{"chunks_removed", rep.chunks_removed},
                            {"bytes_reclaimed", rep.bytes_reclaimed},
                            {"packs_rewritten", rep.packs_rewritten},
                            {"packs_deleted", rep.packs_deleted}};
  ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
  RETURN_IF_ERROR(RecordEvent(db, "gc.completed", payload, "gc", actor));
  RETURN_IF_ERROR(txn.Commit());
  return rep;
}

}  // namespace hart::store

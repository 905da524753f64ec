// Verify: every chunk re-read from its pack and re-hashed in parallel; each
// bad chunk (missing pack, truncated pack, hash mismatch) is reported with
// the tensors and files of the versions it hurts.
#include <cstring>
#include <map>

#include "core/progress.h"
#include "core/sha256.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "fmt/format.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {

absl::StatusOr<VerifyReport> Store::Verify(bool progress) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  struct Row {
    ChunkLoc loc;
    Digest digest{};
  };
  std::vector<Row> rows;
  {
    ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
    ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                           "SELECT id, pack, offset, size, sha256 FROM chunk "
                                           "ORDER BY pack, offset"));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      Row r;
      r.loc = {q.Int(0), q.Int(1), static_cast<uint64_t>(q.Int(2)), static_cast<uint64_t>(q.Int(3))};
      auto blob = q.Blob(4);
      if (blob.size() == r.digest.size()) std::memcpy(r.digest.data(), blob.data(), blob.size());
      rows.push_back(r);
    }
  }
  VerifyReport rep;
  rep.chunks = rows.size();
  for (const Row& r : rows) rep.bytes += r.loc.size;

  // One map per pack, long enough for its last chunk, or the reason none is.
  std::map<int64_t, absl::StatusOr<std::shared_ptr<MappedFile>>> maps;
  std::map<int64_t, uint64_t> need;
  for (const Row& r : rows) need[r.loc.pack] = std::max(need[r.loc.pack], r.loc.offset + r.loc.size);
  for (auto [pack, end] : need) {
    auto m = impl_->packs->Get(pack, end);
    // A short pack: map what there is, fresh (a cached map may be longer
    // than the file now), and judge chunk by chunk.
    if (!m.ok() && Msg(m.status()).find("truncated") != std::string_view::npos)
      m = MappedFile::Open(PackPath(impl_->packs_dir, pack));
    maps.emplace(pack, std::move(m));
  }

  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("verify", rep.bytes);
  std::vector<std::string> reason(rows.size());
  ThreadPool::Default().ParallelFor(rows.size(), [&](size_t i) {
    const Row& r = rows[i];
    const auto& m = maps.at(r.loc.pack);
    if (!m.ok()) {
      reason[i] = absl::IsDataLoss(m.status()) && Msg(m.status()).find("missing") != std::string_view::npos
                      ? "pack missing"
                      : std::string(Msg(m.status()));
    } else if ((*m)->size() < r.loc.offset + r.loc.size || r.loc.offset < kPackHeaderSize) {
      reason[i] = "truncated";
    } else {
      // Read, not touched through the map (see MappedFile::ReadAt).
      thread_local std::vector<uint8_t> buf;
      buf.resize(r.loc.size);
      absl::Status s = (*m)->ReadAt(r.loc.offset, buf);
      if (!s.ok()) reason[i] = std::string(Msg(s));
      else if (Sha256(buf) != r.digest) reason[i] = "hash mismatch";
    }
    if (bar) bar->Add(r.loc.size);
  });
  if (bar) bar->Finish();

  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt tq, Stmt::Prepare(rc.db(),
      "SELECT DISTINCT m.name, v.number, co.name FROM tensor_chunk tc "
      "JOIN component co ON co.id = tc.component_id JOIN version v ON v.id = co.version_id "
      "JOIN model m ON m.id = v.model_id WHERE tc.chunk_id = ? ORDER BY m.name, v.number, co.name"));
  ASSIGN_OR_RETURN(Stmt fq, Stmt::Prepare(rc.db(),
      "SELECT DISTINCT m.name, v.number, f.name FROM segment_chunk sc "
      "JOIN file f ON f.version_id = sc.version_id AND f.idx = sc.file_idx "
      "JOIN version v ON v.id = sc.version_id JOIN model m ON m.id = v.model_id "
      "WHERE sc.chunk_id = ? ORDER BY m.name, v.number, f.name"));
  for (size_t i = 0; i < rows.size(); ++i) {
    if (reason[i].empty()) continue;
    BadChunk b;
    b.sha256 = ToHex(rows[i].digest);
    b.pack = PackName(rows[i].loc.pack);
    b.offset = rows[i].loc.offset;
    b.reason = reason[i];
    tq.Bind(1, rows[i].loc.id);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, tq.Step());
      if (!row) break;
      b.tensors.push_back(fmt::format("{}@{}:{}", tq.Text(0), tq.Int(1), tq.Text(2)));
    }
    tq.Reset();
    // Raw file bytes (headers, metadata) are named by their file.
    fq.Bind(1, rows[i].loc.id);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, fq.Step());
      if (!row) break;
      b.tensors.push_back(fmt::format("{}@{}:file:{}", fq.Text(0), fq.Int(1), fq.Text(2)));
    }
    fq.Reset();
    rep.bad.push_back(std::move(b));
  }
  return rep;
}

}  // namespace hart::store

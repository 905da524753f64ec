// Export: a version's files rebuilt byte for byte from its segments, or its
// tensors written as one safetensors file (ExportSafetensors). Each
// run of chunks lying back to back in a pack is copied with
// copy_file_range (in-kernel, a reflink on filesystems that share extents),
// falling back to write() from the pack map; each file is written to a
// temporary beside its target and renamed into place when whole.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/mapped_file.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "core/sha256.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "fmt/format.h"
#include "store/chunker.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {
namespace fs = std::filesystem;
namespace {

// A stored file name must stay inside the export directory.
absl::Status CheckRelativeName(const std::string& name) {
  fs::path p(name);
  if (name.empty() || p.is_absolute())
    return absl::DataLossError(fmt::format("file name '{}' is not a relative path", name));
  for (const auto& part : p)
    if (part == "..") return absl::DataLossError(fmt::format("file name '{}' leaves the export directory", name));
  return absl::OkStatus();
}

// Copies [off, off + n) of pack fd `in` to `out` at out_off.
absl::Status CopyRange(int in, const std::string& in_path, uint64_t off, uint64_t n, int out,
                       uint64_t out_off, const std::string& out_path, std::span<const uint8_t> map,
                       bool* use_cfr) {
  while (n > 0 && *use_cfr) {
    loff_t a = static_cast<loff_t>(off), b = static_cast<loff_t>(out_off);
    ssize_t r = ::copy_file_range(in, &a, out, &b, std::min<uint64_t>(n, 1u << 30), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) {
        *use_cfr = false;
        break;
      }
      if (errno == ENOSPC) return absl::ResourceExhaustedError(fmt::format("{}: no space left", out_path));
      return absl::InternalError(fmt::format("{}: copy from {}: {}", out_path, in_path, std::strerror(errno)));
    }
    if (r == 0) return DataError(in_path, off, "pack", "truncated");
    off += static_cast<uint64_t>(r);
    out_off += static_cast<uint64_t>(r);
    n -= static_cast<uint64_t>(r);
  }
  if (n == 0) return absl::OkStatus();
  return PWriteAll(out, map.subspan(off, n), out_off, out_path);
}

}  // namespace

// What the files of one export share: open pack descriptors, whether
// copy_file_range still works here, the id of the all-zero chunk, progress.
struct Store::ExportCtx {
  std::map<int64_t, Fd> pack_fds;
  bool use_cfr = true;
  int64_t zero_chunk = -1;  // chunk row of kChunkSize zero bytes; -1 when absent
  Progress* bar = nullptr;
};

namespace {

const std::vector<uint8_t>& ZeroChunk() {
  static const std::vector<uint8_t> zeros(kChunkSize, 0);
  return zeros;
}

// The row id of the all-zero full-size chunk, when the store has one.
absl::StatusOr<int64_t> ZeroChunkId(sqlite3* db) {
  static const Digest digest = Sha256(ZeroChunk());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db, "SELECT id FROM chunk WHERE sha256 = ?"));
  q.BindBlob(1, digest);
  ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? q.Int(0) : int64_t{-1};
}

}  // namespace

absl::Status Store::ExportFile(const VersionRow& v, const FileRow& f, const std::string& target,
                               bool verify, ExportCtx& ctx) {
  const int64_t version_id = v.id;
  std::error_code ec;
  fs::path tpath(target);
  if (tpath.has_parent_path()) {
    fs::create_directories(tpath.parent_path(), ec);
    if (ec)
      return absl::PermissionDeniedError(
          fmt::format("{}: cannot create: {}", tpath.parent_path().string(), ec.message()));
  }
  std::string tmp = fmt::format("{}.hart-tmp-{}", target, ::getpid());
  ASSIGN_OR_RETURN(Fd out, OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC));
  struct Cleanup {
    std::string path;
    bool keep = false;
    ~Cleanup() {
      if (!keep) ::unlink(path.c_str());
    }
  } cleanup{tmp};

  struct Seg {
    int64_t seq;
    uint64_t size;
    std::optional<int64_t> component;
  };
  std::vector<Seg> segs;
  {
    ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
    ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                           "SELECT seq, size, component_id FROM segment WHERE "
                                           "version_id = ? AND file_idx = ? ORDER BY seq"));
    q.Bind(1, version_id).Bind(2, int64_t{f.index});
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      Seg s{q.Int(0), static_cast<uint64_t>(q.Int(1)), std::nullopt};
      if (!q.IsNull(2)) s.component = q.Int(2);
      segs.push_back(s);
    }
  }
  // --verify: the file digest from the chunks as read back (on every core,
  // after the copy), and the plain SHA-256 too when ingest recorded one.
  const bool check_sha = verify && !f.sha256.empty();
  const bool check_digest = verify && !f.digest.empty();
  if (verify && !check_sha && !check_digest)
    return absl::DataLossError(fmt::format("{} {}: no digest recorded to verify against", v.ref(), f.name));
  struct ToHash {
    std::shared_ptr<MappedFile> pack;  // null: the zero chunk
    uint64_t offset = 0, size = 0;
  };
  std::vector<ToHash> to_hash;
  std::vector<std::pair<uint64_t, size_t>> seg_ends;  // (size, end index in to_hash) per segment
  Sha256Stream hash;
  uint64_t pos = 0;
  for (const Seg& s : segs) {
    ASSIGN_OR_RETURN(std::vector<ChunkLoc> chunks,
                     s.component ? impl_->TensorChunks(*s.component)
                                 : impl_->SegmentChunks(version_id, f.index, s.seq));
    uint64_t seg_bytes = 0;
    for (size_t i = 0; i < chunks.size();) {
      if (chunks[i].id == ctx.zero_chunk) {
        // Left as a hole: the file is sized at the end, and reads as zeros.
        if (check_sha) hash.Update(std::span<const uint8_t>(ZeroChunk()).first(chunks[i].size));
        if (check_digest) to_hash.push_back({nullptr, 0, chunks[i].size});
        pos += chunks[i].size;
        seg_bytes += chunks[i].size;
        if (ctx.bar) ctx.bar->Add(chunks[i].size);
        ++i;
        continue;
      }
      size_t j = i;
      while (j < chunks.size() && chunks[j].id != ctx.zero_chunk) ++j;
      std::vector<ChunkLoc> part(chunks.begin() + static_cast<ptrdiff_t>(i),
                                 chunks.begin() + static_cast<ptrdiff_t>(j));
      i = j;
      if (check_digest)
        for (const ChunkLoc& c : part) {
          ASSIGN_OR_RETURN(auto map, impl_->packs->Get(c.pack, c.offset + c.size));
          to_hash.push_back({std::move(map), c.offset, c.size});
        }
      for (const PackRun& r : MergeRuns(part)) {
        ASSIGN_OR_RETURN(auto map, impl_->packs->Get(r.pack, r.offset + r.size));
        auto it = ctx.pack_fds.find(r.pack);
        if (it == ctx.pack_fds.end()) {
          ASSIGN_OR_RETURN(Fd fd, OpenFile(map->path(), O_RDONLY));
          it = ctx.pack_fds.emplace(r.pack, std::move(fd)).first;
        }
        RETURN_IF_ERROR(CopyRange(it->second.get(), map->path(), r.offset, r.size, out.get(), pos,
                                  tmp, map->bytes(), &ctx.use_cfr));
        if (check_sha) hash.Update(map->bytes().subspan(r.offset, r.size));
        pos += r.size;
        seg_bytes += r.size;
        if (ctx.bar) ctx.bar->Add(r.size);
      }
    }
    if (seg_bytes != s.size)
      return absl::DataLossError(fmt::format("{} {}: segment {} has {} bytes of chunks for {} bytes",
                                             v.ref(), f.name, s.seq, seg_bytes, s.size));
    seg_ends.emplace_back(s.size, to_hash.size());
  }
  if (pos != f.size)
    return absl::DataLossError(fmt::format("{} {}: segments cover {} of {} bytes", v.ref(), f.name,
                                           pos, f.size));
  // Sizes the file when it ends in a hole.
  if (::ftruncate(out.get(), static_cast<off_t>(f.size)) != 0)
    return absl::InternalError(fmt::format("{}: ftruncate: {}", tmp, std::strerror(errno)));
  if (check_digest) {
    std::vector<Digest> d(to_hash.size());
    std::vector<absl::Status> errs(to_hash.size());
    ThreadPool::Default().ParallelFor(to_hash.size(), [&](size_t i) {
      const ToHash& h = to_hash[i];
      if (!h.pack) {
        d[i] = ZeroChunkDigest();
        return;
      }
      // Read, not touched through the map: see MappedFile::ReadAt.
      thread_local std::vector<uint8_t> buf;
      buf.resize(h.size);
      errs[i] = h.pack->ReadAt(h.offset, buf);
      if (errs[i].ok()) d[i] = Sha256(buf);
    });
    for (const absl::Status& e : errs) RETURN_IF_ERROR(e);
    std::vector<SegmentDigest> seg_digests;
    size_t begin = 0;
    for (auto [size, end] : seg_ends) {
      seg_digests.push_back({size, TensorDigest({d.data() + begin, end - begin})});
      begin = end;
    }
    std::string got = ToHex(FileDigest(seg_digests));
    if (got != f.digest)
      return absl::DataLossError(fmt::format(
          "{} {}: exported bytes give file digest {} but {} was recorded at ingest; run `hart verify`",
          v.ref(), f.name, got, f.digest));
  }
  if (check_sha) {
    std::string got = ToHex(hash.Finish());
    if (got != f.sha256)
      return absl::DataLossError(fmt::format(
          "{} {}: exported bytes hash to {} but {} was recorded at ingest; run `hart verify`",
          v.ref(), f.name, got, f.sha256));
  }
  // No fsync: the export is a copy the store can make again, and cp does
  // not sync either; the rename only keeps readers from a half file.
  if (::rename(tmp.c_str(), target.c_str()) != 0)
    return absl::InternalError(fmt::format("{}: rename: {}", target, std::strerror(errno)));
  cleanup.keep = true;
  return absl::OkStatus();
}

absl::Status Store::Export(int64_t version_id, const std::string& out_path, bool verify, bool progress) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(VersionRow v, impl_->VersionById(version_id));
  ASSIGN_OR_RETURN(std::vector<FileRow> files, ListFiles(version_id));
  if (files.empty())
    return absl::FailedPreconditionError(fmt::format("{} has no files to export", v.ref()));

  std::error_code ec;
  bool into_dir = files.size() > 1 || fs::is_directory(out_path, ec);
  if (files.size() > 1) {
    fs::create_directories(out_path, ec);
    if (ec) return absl::PermissionDeniedError(fmt::format("{}: cannot create: {}", out_path, ec.message()));
  }
  uint64_t total = 0;
  for (const FileRow& f : files) total += f.size;
  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("export " + v.ref(), total);

  ExportCtx ctx;
  ctx.bar = bar.get();
  {
    ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
    ASSIGN_OR_RETURN(ctx.zero_chunk, ZeroChunkId(rc.db()));
  }
  for (const FileRow& f : files) {
    RETURN_IF_ERROR(CheckRelativeName(f.name));
    fs::path target = into_dir ? fs::path(out_path) / f.name : fs::path(out_path);
    RETURN_IF_ERROR(ExportFile(v, f, target.string(), verify, ctx));
  }
  if (bar) bar->Finish();
  return absl::OkStatus();
}

absl::Status Store::ExportSafetensors(int64_t version_id, const std::string& out_path, bool verify,
                                      bool progress) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(VersionRow v, impl_->VersionById(version_id));
  ASSIGN_OR_RETURN(std::vector<TensorRow> rows, ListTensors(version_id));
  ASSIGN_OR_RETURN(std::vector<FileRow> files, ListFiles(version_id));

  // A path naming a .safetensors file is that file; anything else is a
  // directory for model.safetensors and the sidecars.
  const bool into_dir = !(out_path.size() > 12 && out_path.ends_with(".safetensors"));
  std::error_code ec;
  fs::path weights = into_dir ? fs::path(out_path) / "model.safetensors" : fs::path(out_path);
  fs::path parent = weights.has_parent_path() ? weights.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) return absl::PermissionDeniedError(fmt::format("{}: cannot create: {}", parent.string(), ec.message()));

  std::vector<formats::TensorDesc> descs;
  uint64_t total = 0;
  for (const TensorRow& r : rows) {
    formats::TensorDesc d;
    d.name = r.name;
    d.dtype = r.dtype;
    d.shape = r.shape;
    d.nbytes = r.nbytes;
    if (Info(r.dtype).safetensors_name.empty())
      return absl::FailedPreconditionError(fmt::format(
          "{}: tensor '{}' is {}, which safetensors cannot hold; export it in its original format",
          v.ref(), r.name, Name(r.dtype)));
    total += r.nbytes;
    descs.push_back(std::move(d));
  }
  std::vector<const FileRow*> sidecars;
  if (into_dir)
    for (const FileRow& f : files)
      for (std::string_view side : formats::kSafetensorsSidecars)
        if (f.name == side) sidecars.push_back(&f);
  for (const FileRow* f : sidecars) total += f->size;

  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("export " + v.ref() + " as safetensors", total);
  TensorBytes held;
  absl::Status s = formats::WriteSafetensors(
      weights.string(), descs, {{"format", "pt"}},
      [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
        ASSIGN_OR_RETURN(held, ReadTensor(version_id, descs[i].name));
        if (bar) bar->Add(descs[i].nbytes);
        return held.bytes();
      });
  held = TensorBytes();
  if (!s.ok()) return Annotate(s, weights.string());

  if (verify) {
    ASSIGN_OR_RETURN(formats::ModelSource back, formats::ReadSafetensors(weights.string()));
    if (back.tensors.size() != descs.size())
      return absl::DataLossError(fmt::format("{}: holds {} tensors, {} were written", weights.string(),
                                             back.tensors.size(), descs.size()));
    for (size_t i = 0; i < back.tensors.size(); ++i) {
      const formats::TensorDesc& t = back.tensors[i];
      ASSIGN_OR_RETURN(TensorBytes want, ReadTensor(version_id, t.name));
      auto got = back.TensorBytes(i);
      if (!std::equal(got.begin(), got.end(), want.bytes().begin(), want.bytes().end()))
        return absl::DataLossError(fmt::format("{}: tensor '{}' reads back different bytes",
                                               weights.string(), t.name));
    }
  }

  ExportCtx ctx;
  ctx.bar = bar.get();
  {
    ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
    ASSIGN_OR_RETURN(ctx.zero_chunk, ZeroChunkId(rc.db()));
  }
  for (const FileRow* f : sidecars)
    RETURN_IF_ERROR(ExportFile(v, *f, (fs::path(out_path) / f->name).string(), verify, ctx));
  if (bar) bar->Finish();
  return absl::OkStatus();
}

}  // namespace hart::store

#include "store/extent_reader.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"
#include "store/pack.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {
namespace {

constexpr uint64_t kA = ExtentReader::kAlign;
uint64_t Down(uint64_t x) { return x / kA * kA; }
uint64_t Up(uint64_t x) { return (x + kA - 1) / kA * kA; }

}  // namespace

ExtentReader::ExtentReader(std::string packs_dir, ExtentReaderOptions opts)
    : dir_(std::move(packs_dir)), opts_(std::move(opts)) {}

ExtentReader::~ExtentReader() = default;

absl::StatusOr<ExtentReader::Pack*> ExtentReader::Get(int64_t pack) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = packs_.find(pack);
  if (it != packs_.end()) return it->second.get();
  auto p = std::make_unique<Pack>();
  p->path = PackPath(dir_, pack);
  auto fd = OpenFile(p->path, O_RDONLY | O_CLOEXEC);
  if (!fd.ok()) {
    if (absl::IsNotFound(fd.status())) return absl::DataLossError(fmt::format("{}: pack missing", p->path));
    return fd.status();
  }
  p->buffered = std::move(*fd);
  struct statfs sf;
  const bool tmpfs = ::fstatfs(p->buffered.get(), &sf) == 0 && sf.f_type == TMPFS_MAGIC;
  if (opts_.direct && !tmpfs) {
    int raw = ::open(p->path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (raw >= 0) {  // else EINVAL: no direct I/O here
      p->direct = Fd(raw);
      p->use_direct = true;
    }
  }
  Pack* out = p.get();
  packs_[pack] = std::move(p);
  return out;
}

absl::Status ExtentReader::Prepare(int64_t pack) { return Get(pack).status(); }

bool ExtentReader::Direct(int64_t pack) {
  auto p = Get(pack);
  return p.ok() && (*p)->use_direct.load();
}

// The aligned superset [Down(off), Up(end)) into dst - off % kA. A read
// short of Up(end) is fine at the pack's end (its size is not a block
// multiple); one short of `end` is a truncated pack.
absl::Status ExtentReader::ReadDirect(Pack& p, const Extent& e, uint8_t* dst) {
  const uint64_t a0 = Down(e.offset), a1 = Up(e.offset + e.size), need = e.offset + e.size;
  uint8_t* base = dst - (e.offset - a0);
  uint64_t pos = a0;
  const int fd = p.direct.get();
  while (pos < need) {
    ssize_t n = ::pread(fd, base + (pos - a0), a1 - pos, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL) {
        // The file system took the open but refuses the read: buffered from now on.
        p.use_direct = false;
        return absl::UnavailableError("direct read refused");
      }
      return absl::InternalError(fmt::format("{}: read at offset {}: {}", p.path, pos, std::strerror(errno)));
    }
    if (n == 0)
      return DataError(p.path, pos, "pack", fmt::format("truncated: chunk data runs to offset {}", need));
    pos += static_cast<uint64_t>(n);
    if (pos % kA != 0 && pos < need)  // a direct read ends off a block only at the file's end
      return DataError(p.path, pos, "pack", fmt::format("truncated: chunk data runs to offset {}", need));
  }
  return absl::OkStatus();
}

absl::Status ExtentReader::ReadBuffered(Pack& p, const Extent& e, uint8_t* dst) {
  RETURN_IF_ERROR(PReadAll(p.buffered.get(), {dst, e.size}, e.offset, p.path));
  std::lock_guard<std::mutex> l(mu_);
  auto& ranges = cached_[e.pack];
  uint64_t lo = e.offset, hi = e.offset + e.size;
  // Merge with every range it touches.
  auto it = ranges.upper_bound(lo);
  if (it != ranges.begin() && std::prev(it)->second >= lo) --it;
  while (it != ranges.end() && it->first <= hi) {
    lo = std::min(lo, it->first);
    hi = std::max(hi, it->second);
    it = ranges.erase(it);
  }
  ranges[lo] = hi;
  return absl::OkStatus();
}

absl::Status ExtentReader::ReadInPlace(const Extent& e, uint8_t* dst) {
  if (e.size == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(Pack * p, Get(e.pack));
  const bool direct = p->use_direct.load();
  if (direct && (reinterpret_cast<uintptr_t>(dst) - e.offset) % kA == 0) {
    absl::Status st = ReadDirect(*p, e, dst);
    if (!absl::IsUnavailable(st)) return st;
  }
  return ReadBuffered(*p, e, dst);
}

uint8_t* ExtentReader::TakeBounce() {
  std::lock_guard<std::mutex> l(mu_);
  if (!bounce_free_.empty()) {
    uint8_t* b = bounce_free_.back();
    bounce_free_.pop_back();
    return b;
  }
  void* p = nullptr;
  if (::posix_memalign(&p, kA, kBounce + 2 * kA) != 0) return nullptr;
  bounce_owned_.emplace_back(static_cast<uint8_t*>(p), std::free);
  return static_cast<uint8_t*>(p);
}

void ExtentReader::GiveBounce(uint8_t* b) {
  std::lock_guard<std::mutex> l(mu_);
  bounce_free_.push_back(b);
}

absl::Status ExtentReader::ReadCopy(const Extent& e, std::span<uint8_t> out) {
  if (out.size() != e.size)
    return absl::InvalidArgumentError(fmt::format("pack {}: read of {} bytes into {}", e.pack, e.size, out.size()));
  if (e.size == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(Pack * p, Get(e.pack));
  const bool direct = p->use_direct.load();
  if (direct) {
    uint8_t* b = TakeBounce();
    if (!b) return absl::ResourceExhaustedError("cannot allocate a read buffer");
    absl::Status st;
    for (uint64_t done = 0; done < e.size && st.ok();) {
      const uint64_t n = std::min(kBounce, e.size - done);
      const Extent part{e.pack, e.offset + done, n};
      uint8_t* at = b + part.offset % kA;
      st = ReadDirect(*p, part, at);
      if (st.ok()) std::memcpy(out.data() + done, at, n);
      done += n;
    }
    GiveBounce(b);
    if (!absl::IsUnavailable(st)) return st;
  }
  return ReadBuffered(*p, e, out.data());
}

void ExtentReader::Evict(const Extent& e, bool force) {
  if (e.size == 0) return;
  std::vector<Extent> drop;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (force) {
      drop.push_back(e);
    } else if (auto c = cached_.find(e.pack); c != cached_.end()) {
      auto& ranges = c->second;
      const uint64_t lo = e.offset, hi = e.offset + e.size;
      auto it = ranges.upper_bound(lo);
      if (it != ranges.begin() && std::prev(it)->second > lo) --it;
      while (it != ranges.end() && it->first < hi) {
        const uint64_t r0 = it->first, r1 = it->second;
        it = ranges.erase(it);
        const uint64_t d0 = std::max(r0, lo), d1 = std::min(r1, hi);
        drop.push_back({e.pack, d0, d1 - d0});
        if (r0 < d0) ranges[r0] = d0;
        if (d1 < r1) it = ranges.emplace(d1, r1).first, ++it;
      }
    }
  }
  for (const Extent& d : drop) {
    int fd = -1;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = packs_.find(d.pack);
      if (it != packs_.end()) fd = it->second->buffered.get();
    }
    if (fd < 0) continue;
    ::posix_fadvise(fd, static_cast<off_t>(d.offset), static_cast<off_t>(d.size), POSIX_FADV_DONTNEED);
    if (opts_.on_evict) opts_.on_evict(d);
  }
}

absl::StatusOr<std::vector<Extent>> Store::LocateTensor(int64_t version_id, std::string_view name) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(impl_->db,
                                         "SELECT id, nbytes FROM component WHERE version_id = ? "
                                         "AND kind = 'tensor' AND name = ?"));
  q.Bind(1, version_id).Bind(2, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) {
    ASSIGN_OR_RETURN(std::string ref, VersionRefString(impl_->db, version_id));
    return absl::NotFoundError(fmt::format("{} has no tensor '{}'", ref, name));
  }
  const int64_t comp = q.Int(0);
  const uint64_t nbytes = static_cast<uint64_t>(q.Int(1));
  ASSIGN_OR_RETURN(std::vector<ChunkLoc> chunks, impl_->TensorChunks(comp));
  std::vector<Extent> out;
  uint64_t total = 0;
  for (const PackRun& r : MergeRuns(chunks)) {
    out.push_back({r.pack, r.offset, r.size});
    total += r.size;
  }
  if (total != nbytes)
    return absl::DataLossError(fmt::format("tensor '{}': catalog lists {} bytes of chunks for {} bytes",
                                           name, total, nbytes));
  return out;
}

std::unique_ptr<ExtentReader> Store::OpenExtentReader(ExtentReaderOptions opts) {
  return std::make_unique<ExtentReader>(impl_->packs_dir, std::move(opts));
}

}  // namespace hart::store

#include "store/pack.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <thread>
#include <cstring>

#include "core/status.h"
#include "fmt/format.h"

namespace hart::store {

std::string PackName(int64_t pack) { return fmt::format("{:06d}.pack", pack); }

std::string PackPath(const std::string& packs_dir, int64_t pack) {
  return packs_dir + "/" + PackName(pack);
}

absl::StatusOr<std::vector<int64_t>> ListPacks(const std::string& packs_dir) {
  DIR* d = ::opendir(packs_dir.c_str());
  if (!d)
    return absl::NotFoundError(fmt::format("{}: cannot list packs: {}", packs_dir, std::strerror(errno)));
  std::vector<int64_t> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n.size() < 6 || n.substr(n.size() - 5) != ".pack") continue;
    std::string_view digits = n.substr(0, n.size() - 5);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    out.push_back(std::stoll(std::string(digits)));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status CheckPackHeader(std::span<const uint8_t> b, const std::string& path) {
  if (b.size() < kPackHeaderSize) return DataError(path, 0, "pack header", "file shorter than the header");
  if (std::memcmp(b.data(), kPackMagic, sizeof kPackMagic) != 0)
    return DataError(path, 0, "pack magic", "not a NinaDB pack");
  uint32_t v;
  std::memcpy(&v, b.data() + 8, 4);
  if (v != kPackFormatVersion)
    return DataError(path, 8, "pack version", fmt::format("unknown pack format version {}", v));
  return absl::OkStatus();
}

PackWriter::PackWriter(std::string packs_dir, Env* env, uint64_t roll_size)
    : env_(env ? env : Env::Default()), dir_(std::move(packs_dir)), roll_size_(roll_size) {}


absl::Status PackWriter::OpenExisting() {
  ASSIGN_OR_RETURN(std::vector<int64_t> packs, ListPacks(dir_));
  // Only the newest few: older packs are full or held by long writers.
  int tried = 0;
  for (auto it = packs.rbegin(); it != packs.rend() && tried < 4; ++it, ++tried) {
    std::string path = PackPath(dir_, *it);
    auto fd = env_->Open(path, O_RDWR);
    if (!fd.ok()) continue;
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) continue;
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) continue;
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size < kPackHeaderSize || size >= roll_size_) continue;
    uint8_t hdr[kPackHeaderSize];
    if (!PReadAll(fd->get(), hdr, 0, path).ok() || !CheckPackHeader(hdr, path).ok()) continue;
    auto o = std::make_unique<Open>();
    o->pack = *it;
    o->fd = std::move(*fd);
    o->end = size;
    o->flushed = size;
    o->path = path;
    cur_ = std::move(o);
    StartDirect();
    return absl::OkStatus();
  }
  return CreateNew();
}

struct PackWriter::DirectIo {
  static constexpr int kBuffers = 3;
  struct Job {
    Env* env;
    int fd;
    uint8_t* buf;
    uint64_t len, offset;
    std::string path;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> owned;
  std::vector<uint8_t*> free;
  std::deque<Job> jobs;
  bool busy = false, stop = false;
  absl::Status error;
  std::thread thread;

  static std::unique_ptr<DirectIo> Make() {
    auto io = std::make_unique<DirectIo>();
    for (int i = 0; i < kBuffers; ++i) {
      void* p = nullptr;
      if (::posix_memalign(&p, kDirectBlock, kDirectStaging) != 0) return nullptr;
      io->owned.emplace_back(static_cast<uint8_t*>(p), std::free);
      io->free.push_back(static_cast<uint8_t*>(p));
    }
    io->thread = std::thread([raw = io.get()] { raw->Loop(); });
    return io;
  }
  ~DirectIo() {
    {
      std::lock_guard<std::mutex> l(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
  void Loop() {
    std::unique_lock<std::mutex> l(mu);
    for (;;) {
      cv.wait(l, [&] { return !jobs.empty() || stop; });
      if (jobs.empty()) return;  // stop, and everything written
      Job j = std::move(jobs.front());
      jobs.pop_front();
      busy = true;
      l.unlock();
      absl::Status s = error.ok() ? PWriteAll(j.fd, {j.buf, j.len}, j.offset, j.path, j.env) : absl::OkStatus();
      l.lock();
      if (!s.ok() && error.ok()) error = s;
      busy = false;
      free.push_back(j.buf);
      cv.notify_all();
    }
  }
  uint8_t* Take() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return !free.empty(); });
    uint8_t* b = free.back();
    free.pop_back();
    return b;
  }
  void Submit(Job j) {
    {
      std::lock_guard<std::mutex> l(mu);
      jobs.push_back(std::move(j));
    }
    cv.notify_all();
  }
  absl::Status Drain() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return jobs.empty() && !busy; });
    return error;
  }
};

void PackWriter::StartDirect() {
  if (!want_direct_ || !cur_) return;
  struct statfs sf;
  if (::fstatfs(cur_->fd.get(), &sf) != 0 || sf.f_type == TMPFS_MAGIC) return;  // tmpfs: no gain
  auto raw = env_->Open(cur_->path, O_WRONLY | O_DIRECT);
  if (!raw.ok()) return;  // EINVAL: the file system has no direct I/O
  if (!io_) {
    io_ = DirectIo::Make();
    if (!io_) return;
  }
  if (!staging_) staging_ = io_->Take();
  cur_->direct = std::move(*raw);
  // Start on a block of our own: the block holding the current end may be
  // in another process's page cache, and a direct write under it would
  // leave that copy stale. The gap reads as zeros and is dead space.
  cur_->end = (cur_->end + kDirectBlock - 1) / kDirectBlock * kDirectBlock;
  cur_->staged_at = cur_->end;
  staged_ = 0;
}

absl::Status PackWriter::FlushStaging(bool all) {
  uint64_t n = all ? (staged_ + kDirectBlock - 1) / kDirectBlock * kDirectBlock
                   : staged_ / kDirectBlock * kDirectBlock;
  if (n > 0) {
    if (n > staged_) std::memset(staging_ + staged_, 0, n - staged_);
    // A partial last block moves to the next buffer (unless `all`: then the
    // pad is written and the writer is done with this pack).
    const uint64_t keep = staged_ > n ? staged_ - n : 0;
    uint8_t* next = io_->Take();
    if (keep) std::memcpy(next, staging_ + n, keep);
    io_->Submit({env_, cur_->direct.get(), staging_, n, cur_->staged_at, cur_->path});
    staging_ = next;
    staged_ = keep;
    cur_->staged_at += n;
  }
  if (all) return io_->Drain();
  std::lock_guard<std::mutex> l(io_->mu);
  return io_->error;
}

// io_ goes first (it finishes queued writes), then the fds, which drops the flocks.
PackWriter::~PackWriter() = default;

absl::Status PackWriter::Retire() {
  if (!cur_) return absl::OkStatus();
  if (cur_->direct.valid()) RETURN_IF_ERROR(FlushStaging(/*all=*/true));
  done_.push_back(std::move(cur_));
  return absl::OkStatus();
}

absl::Status PackWriter::CreateNew() {
  ASSIGN_OR_RETURN(std::vector<int64_t> packs, ListPacks(dir_));
  int64_t n = packs.empty() ? 1 : packs.back() + 1;
  for (int attempt = 0; attempt < 1000; ++attempt, ++n) {
    std::string path = PackPath(dir_, n);
    auto created = env_->Open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (!created.ok()) {
      if (absl::IsAlreadyExists(created.status())) continue;
      return Annotate(created.status(), "create pack");
    }
    Fd fd = std::move(*created);
    // Another writer may flock the new file before us; it then skips it as
    // headerless, or we skip it here.
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
    uint8_t hdr[kPackHeaderSize] = {};
    std::memcpy(hdr, kPackMagic, sizeof kPackMagic);
    uint32_t v = kPackFormatVersion;
    std::memcpy(hdr + 8, &v, 4);
    if (absl::Status s = PWriteAll(fd.get(), hdr, 0, path, env_); !s.ok()) {
      // A pack without its header would be skipped by every writer and
      // never reclaimed by name alone; gc unlinks it (no live chunk), but
      // leave nothing half-made behind when we can.
      (void)env_->Unlink(path);
      return s;
    }
    RETURN_IF_ERROR(Retire());
    cur_ = std::make_unique<Open>();
    cur_->pack = n;
    cur_->fd = std::move(fd);
    cur_->end = kPackHeaderSize;
    cur_->flushed = kPackHeaderSize;
    cur_->path = path;
    cur_->fresh = true;
    created_ = true;
    StartDirect();
    return absl::OkStatus();
  }
  return absl::InternalError(fmt::format("{}: could not create a new pack", dir_));
}

absl::Status PackWriter::Reserve(uint64_t bytes) {
  if (!cur_) return OpenExisting();
  if (!cur_->fresh && cur_->end + bytes > roll_size_) return CreateNew();
  return absl::OkStatus();
}

absl::Status PackWriter::StartNewPack() { return CreateNew(); }

absl::StatusOr<std::pair<int64_t, uint64_t>> PackWriter::Append(std::span<const uint8_t> bytes) {
  std::span<const uint8_t> one[1] = {bytes};
  return Append(one);
}

absl::StatusOr<std::pair<int64_t, uint64_t>> PackWriter::Append(
    std::span<const std::span<const uint8_t>> parts) {
  if (!cur_) RETURN_IF_ERROR(OpenExisting());
  uint64_t at = cur_->end;
  cur_->fresh = false;
  if (cur_->direct.valid()) {
    for (std::span<const uint8_t> p : parts) {
      while (!p.empty()) {
        uint64_t take = std::min<uint64_t>(p.size(), kDirectStaging - staged_);
        std::memcpy(staging_ + staged_, p.data(), take);
        staged_ += take;
        p = p.subspan(take);
        if (staged_ == kDirectStaging) RETURN_IF_ERROR(FlushStaging(/*all=*/false));
      }
    }
    for (auto p : parts) cur_->end += p.size();
    return std::make_pair(cur_->pack, at);
  }
  RETURN_IF_ERROR(PWriteVAll(cur_->fd.get(), parts, at, cur_->path, env_));
  for (auto p : parts) cur_->end += p.size();
  // Start the disk on what is written so far instead of leaving gigabytes
  // of dirty pages to the final fsync: writeback then overlaps with the
  // hashing and copying of what follows. Advisory; Sync() still decides.
  if (cur_->end - cur_->flushed >= kWritebackStep) {
    ::sync_file_range(cur_->fd.get(), static_cast<off64_t>(cur_->flushed),
                      static_cast<off64_t>(cur_->end - cur_->flushed), SYNC_FILE_RANGE_WRITE);
    cur_->flushed = cur_->end;
  }
  return std::make_pair(cur_->pack, at);
}

absl::Status PackWriter::Sync() {
  if (cur_ && cur_->direct.valid()) {
    RETURN_IF_ERROR(FlushStaging(/*all=*/true));
    cur_->end = cur_->staged_at;  // past the pad: a later append starts a block of its own
  }
  for (auto& o : done_) RETURN_IF_ERROR(env_->Fsync(o->fd.get(), o->path));
  if (cur_) RETURN_IF_ERROR(env_->Fsync(cur_->fd.get(), cur_->path));
  if (created_) RETURN_IF_ERROR(env_->FsyncDir(dir_));
  return absl::OkStatus();
}

std::vector<int64_t> PackWriter::Touched() const {
  std::vector<int64_t> out;
  for (auto& o : done_) out.push_back(o->pack);
  if (cur_) out.push_back(cur_->pack);
  return out;
}

absl::StatusOr<std::shared_ptr<MappedFile>> PackCache::Get(int64_t pack, uint64_t need_end) {
  std::string path = PackPath(dir_, pack);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::DataLossError(fmt::format("{}: pack missing", path));
    return absl::InternalError(fmt::format("{}: stat: {}", path, std::strerror(errno)));
  }
  // Checked against the file, not the map: reading a map past the end of
  // its file is SIGBUS.
  if (static_cast<uint64_t>(st.st_size) < need_end)
    return DataError(path, static_cast<uint64_t>(st.st_size), "pack",
                     fmt::format("truncated: chunk data runs to offset {}", need_end));
  std::lock_guard<std::mutex> l(mu_);
  auto it = maps_.find(pack);
  if (it != maps_.end() && it->second.dev == st.st_dev && it->second.ino == st.st_ino &&
      it->second.map->size() >= need_end)
    return it->second.map;
  auto m = MappedFile::Open(path);
  if (!m.ok()) {
    if (absl::IsNotFound(m.status())) return absl::DataLossError(fmt::format("{}: pack missing", path));
    return m.status();
  }
  if ((*m)->size() < need_end)
    return DataError(path, (*m)->size(), "pack",
                     fmt::format("truncated: chunk data runs to offset {}", need_end));
  maps_[pack] = Entry{*m, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  return *m;
}

void PackCache::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  maps_.clear();
}

}  // namespace hart::store

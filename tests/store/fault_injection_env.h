// FaultInjectionEnv: an Env over the real one that counts every write and
// sync point it sees (opens for writing, pwrite/write, fsync, directory
// fsync, truncate, rename, unlink, and SQLite's own writes, syncs,
// truncates and deletes through the catalog VFS shim) and fails the k-th:
// ENOSPC, EIO or a short write at a write point, EIO at every other point
// (a failed fsync, unlink, ...). Points are counted only while active, so a
// test opens the store, activates, runs one operation, deactivates.
// Thread-safe (the pack writer's I/O thread writes too).
#pragma once

#include <fcntl.h>

#include <cerrno>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/env.h"

namespace hart::testing {

class FaultInjectionEnv : public Env {
 public:
  enum class Fault { kNoSpace, kIo, kShortWrite };
  enum class Point { kOpen, kWrite, kSync, kSyncDir, kTruncate, kRename, kUnlink, kSqliteWrite,
                     kSqliteSync, kSqliteTruncate, kSqliteDelete };
  static const char* PointName(Point p) {
    static const char* kNames[] = {"open",          "write",       "fsync",
                                   "fsync dir",     "truncate",    "rename",
                                   "unlink",        "sqlite write", "sqlite sync",
                                   "sqlite truncate", "sqlite delete"};
    return kNames[static_cast<int>(p)];
  }
  static bool IsWrite(Point p) { return p == Point::kWrite || p == Point::kSqliteWrite; }

  // Counts from zero again; fails point number `fail_at` (1-based; 0: none)
  // with `fault` when it is a write point, EIO otherwise.
  void Reset(int64_t fail_at, Fault fault) {
    std::lock_guard<std::mutex> l(mu_);
    fail_at_ = fail_at;
    fault_ = fault;
    count_ = 0;
    fired_.clear();
    points_.clear();
    pending_short_fd_ = -1;
  }
  void set_active(bool on) {
    std::lock_guard<std::mutex> l(mu_);
    active_ = on;
  }
  int64_t count() const {
    std::lock_guard<std::mutex> l(mu_);
    return count_;
  }
  // The kind of every point seen since Reset, in order.
  std::vector<Point> points() const {
    std::lock_guard<std::mutex> l(mu_);
    return points_;
  }
  // "write /x/packs/000001.pack" when the fault fired, else "".
  std::string fired() const {
    std::lock_guard<std::mutex> l(mu_);
    return fired_;
  }

  bool InterceptsLibraryIo() const override { return true; }

  absl::StatusOr<Fd> Open(const std::string& path, int flags, int mode) override {
    if (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) {
      if (int e = Hit(Point::kOpen, path); e) return ErrnoStatus(path, "open", e);
    }
    return Env::Open(path, flags, mode);
  }
  absl::StatusOr<size_t> PWriteV(int fd, const struct iovec* iov, int count, uint64_t offset,
                                 const std::string& path) override {
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    size_t allow = total;
    if (int e = WriteHit(fd, path, total, &allow); e) return ErrnoStatus(path, "write", e);
    if (allow == total) return Env::PWriteV(fd, iov, count, offset, path);
    // A short write: the first `allow` bytes go out, as a disk filling up
    // mid-write does; the next write to this file then fails with ENOSPC.
    std::vector<struct iovec> cut;
    for (int i = 0; i < count && allow > 0; ++i) {
      size_t n = std::min(allow, iov[i].iov_len);
      cut.push_back({iov[i].iov_base, n});
      allow -= n;
    }
    return Env::PWriteV(fd, cut.data(), static_cast<int>(cut.size()), offset, path);
  }
  absl::StatusOr<size_t> Write(int fd, const void* data, size_t size, const std::string& path) override {
    size_t allow = size;
    if (int e = WriteHit(fd, path, size, &allow); e) return ErrnoStatus(path, "write", e);
    return Env::Write(fd, data, allow, path);
  }
  absl::Status Fsync(int fd, const std::string& path) override {
    if (int e = Hit(Point::kSync, path); e) return ErrnoStatus(path, "fsync", e);
    return Env::Fsync(fd, path);
  }
  absl::Status FsyncDir(const std::string& dir) override {
    if (int e = Hit(Point::kSyncDir, dir); e) return ErrnoStatus(dir, "fsync", e);
    return Env::FsyncDir(dir);
  }
  absl::Status Truncate(int fd, uint64_t size, const std::string& path) override {
    if (int e = Hit(Point::kTruncate, path); e) return ErrnoStatus(path, "truncate", e);
    return Env::Truncate(fd, size, path);
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (int e = Hit(Point::kRename, to); e) return ErrnoStatus(to, "rename", e);
    return Env::Rename(from, to);
  }
  absl::Status Unlink(const std::string& path) override {
    if (int e = Hit(Point::kUnlink, path); e) return ErrnoStatus(path, "unlink", e);
    return Env::Unlink(path);
  }
  absl::Status LibraryIo(IoOp op, const std::string& path) override {
    Point p = op == IoOp::kWrite ? Point::kSqliteWrite
              : op == IoOp::kSync ? Point::kSqliteSync
              : op == IoOp::kTruncate ? Point::kSqliteTruncate
                                      : Point::kSqliteDelete;
    if (int e = Hit(p, path); e) return ErrnoStatus(path, PointName(p), e);
    return absl::OkStatus();
  }

 private:
  // The errno to fail with at this point, or 0.
  int Hit(Point p, const std::string& path) {
    std::lock_guard<std::mutex> l(mu_);
    if (!active_) return 0;
    points_.push_back(p);
    if (++count_ != fail_at_) return 0;
    fired_ = std::string(PointName(p)) + " " + path;
    if (!IsWrite(p)) return EIO;
    return fault_ == Fault::kIo ? EIO : ENOSPC;  // a short write in SQLite: SQLITE_FULL
  }
  int WriteHit(int fd, const std::string& path, size_t size, size_t* allow) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (active_ && fd == pending_short_fd_) {
        pending_short_fd_ = -1;
        points_.push_back(Point::kWrite);
        ++count_;
        return ENOSPC;
      }
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!active_) return 0;
    points_.push_back(Point::kWrite);
    if (++count_ != fail_at_) return 0;
    fired_ = "write " + path;
    if (fault_ != Fault::kShortWrite) return fault_ == Fault::kIo ? EIO : ENOSPC;
    fired_ = "short write " + path;
    // O_DIRECT takes whole blocks only.
    size_t half = size / 2;
    if (::fcntl(fd, F_GETFL) & O_DIRECT) half = half / 4096 * 4096;
    if (half == 0) return ENOSPC;
    *allow = half;
    pending_short_fd_ = fd;
    return 0;
  }

  mutable std::mutex mu_;
  bool active_ = false;
  int64_t fail_at_ = 0;
  Fault fault_ = Fault::kNoSpace;
  int64_t count_ = 0;
  std::string fired_;
  std::vector<Point> points_;
  int pending_short_fd_ = -1;
};

}  // namespace hart::testing

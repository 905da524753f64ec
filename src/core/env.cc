#include "core/env.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hart {

absl::Status ErrnoStatus(const std::string& path, const char* op, int e) {
  std::string msg = absl::StrCat(path, ": ", op, ": ", std::strerror(e));
  switch (e) {
    case ENOENT: return absl::NotFoundError(msg);
    case EACCES: case EPERM: return absl::PermissionDeniedError(msg);
    case EEXIST: return absl::AlreadyExistsError(msg);
    case ENOSPC: case EDQUOT: return absl::ResourceExhaustedError(msg);
    default: return absl::InternalError(msg);
  }
}

namespace {
std::atomic<Env*> g_default{nullptr};
}  // namespace

Env* Env::Posix() {
  static Env* posix = new Env();
  return posix;
}

Env* Env::Default() {
  Env* e = g_default.load(std::memory_order_acquire);
  return e ? e : Posix();
}

void Env::SetDefault(Env* env) { g_default.store(env, std::memory_order_release); }

absl::StatusOr<Fd> Env::Open(const std::string& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(path, "open", errno);
  return Fd(fd);
}

absl::StatusOr<size_t> Env::PWriteV(int fd, const struct iovec* iov, int count, uint64_t offset,
                                    const std::string& path) {
  for (;;) {
    ssize_t n = ::pwritev(fd, iov, count, static_cast<off_t>(offset));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoStatus(path, "write", errno);
  }
}

absl::StatusOr<size_t> Env::Write(int fd, const void* data, size_t size, const std::string& path) {
  for (;;) {
    ssize_t n = ::write(fd, data, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoStatus(path, "write", errno);
  }
}

absl::Status Env::Fsync(int fd, const std::string& path) {
  if (::fsync(fd) != 0) return ErrnoStatus(path, "fsync", errno);
  return absl::OkStatus();
}

absl::Status Env::FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(dir, "open", errno);
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(dir, "fsync", e);
  return absl::OkStatus();
}

absl::Status Env::Truncate(int fd, uint64_t size, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return ErrnoStatus(path, "truncate", errno);
  return absl::OkStatus();
}

absl::Status Env::Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus(to, "rename", errno);
  return absl::OkStatus();
}

absl::Status Env::Unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return ErrnoStatus(path, "unlink", errno);
  return absl::OkStatus();
}

absl::Status Env::LibraryIo(IoOp, const std::string&) { return absl::OkStatus(); }

}  // namespace hart

#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/env.h"

namespace hart {
namespace {
Env* Or(Env* env) { return env ? env : Env::Default(); }
}  // namespace

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

absl::StatusOr<Fd> OpenFile(const std::string& path, int flags, int mode, Env* env) {
  return Or(env)->Open(path, flags, mode);
}

absl::Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::string& path, Env* env) {
  env = Or(env);
  while (!bytes.empty()) {
    auto n = env->Write(fd, bytes.data(), std::min<size_t>(bytes.size(), 1u << 30), path);
    if (!n.ok()) return n.status();
    if (*n == 0) return ErrnoStatus(path, "write", ENOSPC);
    bytes = bytes.subspan(*n);
  }
  return absl::OkStatus();
}

absl::Status PWriteAll(int fd, std::span<const uint8_t> bytes, uint64_t offset,
                       const std::string& path, Env* env) {
  std::span<const uint8_t> one[1] = {bytes};
  return PWriteVAll(fd, one, offset, path, env);
}

absl::Status PWriteVAll(int fd, std::span<const std::span<const uint8_t>> parts, uint64_t offset,
                        const std::string& path, Env* env) {
  env = Or(env);
  std::vector<iovec> iov;
  for (auto p : parts)
    if (!p.empty()) iov.push_back({const_cast<uint8_t*>(p.data()), p.size()});
  size_t first = 0;
  while (first < iov.size()) {
    int cnt = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    auto n = env->PWriteV(fd, iov.data() + first, cnt, offset, path);
    if (!n.ok()) return n.status();
    if (*n == 0) return ErrnoStatus(path, "write", ENOSPC);
    offset += *n;
    // Skip what went out; a short write leaves the rest of one part.
    for (size_t left = *n; left > 0;) {
      size_t take = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + take;
      iov[first].iov_len -= take;
      left -= take;
      if (iov[first].iov_len == 0) ++first;
    }
  }
  return absl::OkStatus();
}

absl::Status PReadAll(int fd, std::span<uint8_t> out, uint64_t offset, const std::string& path) {
  while (!out.empty()) {
    ssize_t n = ::pread(fd, out.data(), std::min<size_t>(out.size(), 1u << 30),
                        static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(path, "read", errno);
    }
    if (n == 0)
      return absl::DataLossError(absl::StrCat(path, ": offset ", offset, ": unexpected end of file"));
    out = out.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FsyncFd(int fd, const std::string& path, Env* env) { return Or(env)->Fsync(fd, path); }

absl::Status FsyncDir(const std::string& dir, Env* env) { return Or(env)->FsyncDir(dir); }

absl::Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> bytes, Env* env) {
  env = Or(env);
  std::string tmp = path + ".tmp";
  {
    auto fd = env->Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!fd.ok()) return fd.status();
    if (auto s = WriteAll(fd->get(), bytes, tmp, env); !s.ok()) return s;
    if (auto s = env->Fsync(fd->get(), tmp); !s.ok()) return s;
  }
  if (auto s = env->Rename(tmp, path); !s.ok()) return s;
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  return env->FsyncDir(dir.empty() ? "." : dir);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO (a config.json that is a named pipe) must
  // not wait for a writer; anything but a regular file is refused.
  auto fd = OpenFile(path, O_RDONLY | O_NONBLOCK);
  if (!fd.ok()) return fd.status();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return ErrnoStatus(path, "fstat", errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(path, "read", errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace hart

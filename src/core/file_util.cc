#include "core/file_util.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <vector>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hart {
namespace {
absl::Status Errno(const std::string& path, const char* op, int e) {
  std::string msg = absl::StrCat(path, ": ", op, ": ", std::strerror(e));
  switch (e) {
    case ENOENT: return absl::NotFoundError(msg);
    case EACCES: case EPERM: return absl::PermissionDeniedError(msg);
    case ENOSPC: case EDQUOT: return absl::ResourceExhaustedError(msg);
    default: return absl::InternalError(msg);
  }
}
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

absl::StatusOr<Fd> OpenFile(const std::string& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Errno(path, "open", errno);
  return Fd(fd);
}

absl::Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), std::min<size_t>(bytes.size(), 1u << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(path, "write", errno);
    }
    if (n == 0) return Errno(path, "write", ENOSPC);
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status PWriteAll(int fd, std::span<const uint8_t> bytes, uint64_t offset,
                       const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), std::min<size_t>(bytes.size(), 1u << 30),
                         static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(path, "write", errno);
    }
    if (n == 0) return Errno(path, "write", ENOSPC);
    bytes = bytes.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PWriteVAll(int fd, std::span<const std::span<const uint8_t>> parts, uint64_t offset,
                        const std::string& path) {
  std::vector<iovec> iov;
  for (auto p : parts)
    if (!p.empty()) iov.push_back({const_cast<uint8_t*>(p.data()), p.size()});
  size_t first = 0;
  while (first < iov.size()) {
    int cnt = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = ::pwritev(fd, iov.data() + first, cnt, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(path, "write", errno);
    }
    if (n == 0) return Errno(path, "write", ENOSPC);
    offset += static_cast<uint64_t>(n);
    // Skip what went out; a short write leaves the rest of one part.
    for (size_t left = static_cast<size_t>(n); left > 0;) {
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
      return Errno(path, "read", errno);
    }
    if (n == 0)
      return absl::DataLossError(absl::StrCat(path, ": offset ", offset, ": unexpected end of file"));
    out = out.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FsyncFd(int fd, const std::string& path) {
  if (::fsync(fd) != 0) return Errno(path, "fsync", errno);
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(dir, "open", errno);
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) return Errno(dir, "fsync", e);
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> bytes) {
  std::string tmp = path + ".tmp";
  {
    auto fd = OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC);
    if (!fd.ok()) return fd.status();
    if (auto s = WriteAll(fd->get(), bytes, tmp); !s.ok()) return s;
    if (auto s = FsyncFd(fd->get(), tmp); !s.ok()) return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno(path, "rename", errno);
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  return FsyncDir(dir.empty() ? "." : dir);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(path, "read", errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace hart

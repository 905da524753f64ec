// Small POSIX file helpers with Status errors that name the path. The writes
// go through an Env (core/env.h; nullptr: Env::Default()), so tests can make
// them fail.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hart {

class Env;

// Full write at the current position / at `offset`, retrying short writes
// and EINTR. ENOSPC and other errors come back with the path in the message.
absl::Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::string& path,
                      Env* env = nullptr);
absl::Status PWriteAll(int fd, std::span<const uint8_t> bytes, uint64_t offset,
                       const std::string& path, Env* env = nullptr);
// The parts written back to back from `offset` (pwritev, IOV_MAX at a time).
absl::Status PWriteVAll(int fd, std::span<const std::span<const uint8_t>> parts, uint64_t offset,
                        const std::string& path, Env* env = nullptr);
absl::Status PReadAll(int fd, std::span<uint8_t> out, uint64_t offset, const std::string& path);
absl::Status FsyncFd(int fd, const std::string& path, Env* env = nullptr);
// fsync of a directory, so that a rename or create inside it is durable.
absl::Status FsyncDir(const std::string& dir, Env* env = nullptr);
// Writes a whole file through a temporary and rename, fsynced.
absl::Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> bytes,
                             Env* env = nullptr);
absl::StatusOr<std::string> ReadFile(const std::string& path);

// RAII file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

absl::StatusOr<Fd> OpenFile(const std::string& path, int flags, int mode = 0644, Env* env = nullptr);

}  // namespace hart

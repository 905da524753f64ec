// Env: the file-system calls NinaDB writes through (open, pwrite, fsync,
// ftruncate, rename, unlink, directory fsync), one virtual call per system
// call, so a test can make any one of them fail (LevelDB's Env, SQLite's
// fault-injecting VFS). Reads stay plain mmap/pread: a failed read puts no
// stored byte at risk.
//
// Env::Posix() is the real thing. A Store takes its Env from StoreOptions,
// else Env::Default(), which is Posix() unless a test installed another.
// SQLite's own writes of the catalog reach the Env through LibraryIo (the
// store's VFS shim), so catalog commits fail where the Env says.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/file_util.h"

namespace hart {

class Env {
 public:
  virtual ~Env() = default;
  // The real system calls; never fails by itself.
  static Env* Posix();
  // The process-wide default: Posix() unless SetDefault installed another.
  static Env* Default();
  // Installs `env` as the default (tests); nullptr restores Posix(). The
  // caller keeps `env` alive while it is installed.
  static void SetDefault(Env* env);

  // open(2) with O_CLOEXEC added. EEXIST comes back as AlreadyExists.
  virtual absl::StatusOr<Fd> Open(const std::string& path, int flags, int mode = 0644);
  // One pwritev(2): how many bytes went out (maybe fewer than asked), or an
  // error naming the path.
  virtual absl::StatusOr<size_t> PWriteV(int fd, const struct iovec* iov, int count, uint64_t offset,
                                         const std::string& path);
  // One write(2) at the file's position.
  virtual absl::StatusOr<size_t> Write(int fd, const void* data, size_t size, const std::string& path);
  virtual absl::Status Fsync(int fd, const std::string& path);
  // fsync of a directory, so that a create, rename or unlink in it is durable.
  virtual absl::Status FsyncDir(const std::string& dir);
  virtual absl::Status Truncate(int fd, uint64_t size, const std::string& path);
  virtual absl::Status Rename(const std::string& from, const std::string& to);
  virtual absl::Status Unlink(const std::string& path);

  // A library about to write through its own I/O (SQLite writing, syncing,
  // truncating or deleting a catalog file): an error fails that call.
  enum class IoOp { kWrite, kSync, kTruncate, kDelete };
  virtual absl::Status LibraryIo(IoOp op, const std::string& path);
  // True when LibraryIo can fail, so a library must route its I/O here
  // (Posix(): false, and SQLite keeps its own VFS untouched).
  virtual bool InterceptsLibraryIo() const { return false; }
};

// An errno turned into a Status naming the path and the operation
// (ENOSPC/EDQUOT: ResourceExhausted, ENOENT: NotFound, EACCES/EPERM:
// PermissionDenied, EEXIST: AlreadyExists, else Internal).
absl::Status ErrnoStatus(const std::string& path, const char* op, int e);

}  // namespace hart

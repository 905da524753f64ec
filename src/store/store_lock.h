// StoreLock: the flock on <dir>/LOCK that keeps Gc() apart from everything
// else. Every Store operation holds it shared for its duration (counted
// across the Store's threads, since flock belongs to the open file, not the
// thread); Gc() holds it exclusive, so it never moves a chunk under a reader
// or writer of another process.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "core/env.h"
#include "core/file_util.h"

namespace hart::store {

class StoreLock {
 public:
  static absl::StatusOr<std::unique_ptr<StoreLock>> Open(const std::string& path, Env* env = nullptr);

  // Blocks while a gc runs.
  absl::Status LockShared();
  void UnlockShared();
  // Waits up to `timeout` for every other user of the store to finish.
  absl::Status LockExclusive(std::chrono::milliseconds timeout);
  void UnlockExclusive();

 private:
  StoreLock(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  Fd fd_;
  std::mutex mu_;
  int shared_ = 0;
  bool exclusive_ = false;
};

// Holds the store lock shared for a scope.
class SharedHold {
 public:
  explicit SharedHold(StoreLock* l) : l_(l) { status_ = l_->LockShared(); }
  ~SharedHold() {
    if (status_.ok()) l_->UnlockShared();
  }
  const absl::Status& status() const { return status_; }

 private:
  StoreLock* l_;
  absl::Status status_;
};

}  // namespace hart::store

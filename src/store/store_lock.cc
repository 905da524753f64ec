#include "store/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "core/status.h"
#include "fmt/format.h"

namespace hart::store {

absl::StatusOr<std::unique_ptr<StoreLock>> StoreLock::Open(const std::string& path, Env* env) {
  ASSIGN_OR_RETURN(Fd fd, OpenFile(path, O_RDWR | O_CREAT, 0644, env));
  return std::unique_ptr<StoreLock>(new StoreLock(path, std::move(fd)));
}

absl::Status StoreLock::LockShared() {
  std::lock_guard<std::mutex> l(mu_);
  if (exclusive_) {  // this Store's own gc; it cannot deadlock with itself
    ++shared_;
    return absl::OkStatus();
  }
  if (shared_ == 0) {
    while (::flock(fd_.get(), LOCK_SH) != 0) {
      if (errno != EINTR)
        return absl::InternalError(fmt::format("{}: flock: {}", path_, std::strerror(errno)));
    }
  }
  ++shared_;
  return absl::OkStatus();
}

void StoreLock::UnlockShared() {
  std::lock_guard<std::mutex> l(mu_);
  if (--shared_ == 0 && !exclusive_) ::flock(fd_.get(), LOCK_UN);
}

absl::Status StoreLock::LockExclusive(std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> l(mu_);
  if (shared_ > 0)
    return absl::FailedPreconditionError("store is busy in this process; gc needs it alone");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK && errno != EINTR)
      return absl::InternalError(fmt::format("{}: flock: {}", path_, std::strerror(errno)));
    if (std::chrono::steady_clock::now() >= deadline)
      return absl::UnavailableError(
          "the store is in use by another hart process (ingest, export, serve...); gc needs it "
          "alone: try again when they finish");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  exclusive_ = true;
  return absl::OkStatus();
}

void StoreLock::UnlockExclusive() {
  std::lock_guard<std::mutex> l(mu_);
  exclusive_ = false;
  ::flock(fd_.get(), shared_ > 0 ? LOCK_SH : LOCK_UN);
}

}  // namespace hart::store

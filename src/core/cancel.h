// CancelToken: how a caller asks long work to stop (the CLI on SIGINT, the
// server when its client goes away). The work checks it in its loops (per
// chunk, per piece, per poll, before every forward pass) and returns
// absl::CancelledError. Cancel() is sticky and safe from any thread;
// checking is one acquire load, cheap enough for every decode step.
#pragma once

#include <atomic>
#include <string_view>

#include "absl/status/status.h"
#include "fmt/format.h"

namespace hart {

class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Cancelled "<what>: cancelled" once Cancel() was called, else ok.
  absl::Status Check(std::string_view what) const {
    if (!cancelled()) return absl::OkStatus();
    return absl::CancelledError(fmt::format("{}: cancelled", what));
  }

 private:
  std::atomic<bool> cancelled_{false};
};

// Null-safe check: no token means never cancelled.
inline absl::Status CheckCancel(const CancelToken* t, std::string_view what) {
  return t ? t->Check(what) : absl::OkStatus();
}
// True when `t` is set and cancelled (nullptr: never cancelled).
inline bool Cancelled(const CancelToken* t) { return t != nullptr && t->cancelled(); }

}  // namespace hart

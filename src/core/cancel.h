// CancelToken: a flag one thread sets and long loops check (a generation
// checks it before every forward pass; the server cancels when the client
// goes away). Cancel() is sticky and safe from any thread; checking is one
// relaxed-acquire atomic load, cheap enough for every decode step.
#pragma once

#include <atomic>

namespace hart {

class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> cancelled_{false};
};

// True when `t` is set and cancelled (nullptr: never cancelled).
inline bool Cancelled(const CancelToken* t) { return t != nullptr && t->cancelled(); }

}  // namespace hart

// ThreadPool: a fixed set of workers for data-parallel loops (hashing chunks,
// verify, kernels). ParallelFor splits [0, n) among the workers and the
// calling thread and returns when all are done. An idle worker, and a caller
// waiting for its helpers, spin for up to kSpinMicros before blocking: a
// decode step is ~150 ParallelFors microseconds apart, and a futex wake-up
// costs tens of microseconds (more under a hypervisor).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hart {

class ThreadPool {
 public:
  // threads == 0 means one per hardware thread.
  explicit ThreadPool(size_t threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size() + 1; }
  // Calls fn(i) for every i in [0, n); items are claimed dynamically, so
  // uneven items balance. fn must not throw.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);
  // Runs fn on a worker; fire and forget.
  void Submit(std::function<void()> fn);

  static ThreadPool& Default();
  static constexpr int kSpinMicros = 200;

 private:
  void Loop();
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  // Jobs queued (read without the lock by spinning workers) and workers
  // blocked on cv_ (Submit skips the wake-up system call when none is).
  std::atomic<size_t> queued_{0};
  size_t sleeping_ = 0;  // guarded by mu_
};

}  // namespace hart

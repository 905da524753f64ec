#include "core/thread_pool.h"

#include <atomic>
#include <chrono>
#include <memory>

namespace hart {

ThreadPool::ThreadPool(size_t threads) {
  if (threads == 0) threads = std::max<size_t>(1, std::thread::hardware_concurrency());
  for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {

// Spins until pred() or kSpinMicros pass; true when pred() held.
template <typename Pred>
bool SpinFor(Pred pred) {
  auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(ThreadPool::kSpinMicros);
  for (int i = 0;; ++i) {
    if (pred()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return false;
  }
}

}  // namespace

void ThreadPool::Loop() {
  for (;;) {
    SpinFor([&] { return queued_.load(std::memory_order_relaxed) > 0; });
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (queue_.empty() && !stop_) {
        ++sleeping_;
        cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
        --sleeping_;
      }
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_.fetch_sub(1, std::memory_order_relaxed);
    }
    job();
  }
}

void ThreadPool::Submit(std::function<void()> fn) {
  bool wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(fn));
    queued_.fetch_add(1, std::memory_order_relaxed);
    wake = sleeping_ > 0;
  }
  if (wake) cv_.notify_one();
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (n == 1 || workers_.empty()) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  struct State {
    std::atomic<size_t> next{0};
    std::atomic<size_t> helpers_left{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto st = std::make_shared<State>();
  size_t helpers = std::min(workers_.size(), n - 1);
  st->helpers_left = helpers;
  auto run = [st, n, &fn] {
    for (size_t i; (i = st->next.fetch_add(1)) < n;) fn(i);
  };
  for (size_t h = 0; h < helpers; ++h)
    Submit([st, run] {
      run();
      if (st->helpers_left.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> l(st->mu);
        st->cv.notify_all();
      }
    });
  run();
  if (SpinFor([&] { return st->helpers_left.load(std::memory_order_acquire) == 0; })) return;
  std::unique_lock<std::mutex> l(st->mu);
  st->cv.wait(l, [&] { return st->helpers_left.load() == 0; });
}

ThreadPool& ThreadPool::Default() {
  static ThreadPool* pool = new ThreadPool(0);
  return *pool;
}

}  // namespace hart

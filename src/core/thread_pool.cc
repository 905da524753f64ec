#include "core/thread_pool.h"

#include <atomic>
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

void ThreadPool::Loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

void ThreadPool::Submit(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
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
  std::unique_lock<std::mutex> l(st->mu);
  st->cv.wait(l, [&] { return st->helpers_left.load() == 0; });
}

ThreadPool& ThreadPool::Default() {
  static ThreadPool* pool = new ThreadPool(0);
  return *pool;
}

}  // namespace hart

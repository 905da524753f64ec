#include "mcp/stdio.h"

#include <limits.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <algorithm>
#include <atomic>
#include <list>
#include <mutex>
#include <thread>

#include "fmt/format.h"

namespace hart::mcp {

using nlohmann::json;

namespace {

constexpr size_t kMaxQueued = size_t{64} << 20;
constexpr int kMaxInFlight = 32;

// One writer thread drains a bounded queue of lines to out_fd.
class Writer {
 public:
  Writer(int fd, std::chrono::milliseconds stall) : fd_(fd), stall_(stall), thread_([this] { Loop(); }) {}
  ~Writer() { Close(std::chrono::milliseconds(0)); }

  // Queues one line; waits while the queue is full. False once closed.
  bool Push(std::string line) {
    line += '\n';
    std::unique_lock l(mu_);
    // A client that reads nothing for this long is treated as gone.
    if (!space_.wait_for(l, stall_,
                         [&] { return closing_ || broken_ || queued_ + line.size() <= kMaxQueued || queue_.empty(); })) {
      broken_ = true;
    }
    if (closing_ || broken_) return false;
    queued_ += line.size();
    queue_.push_back(std::move(line));
    ready_.notify_one();
    return true;
  }

  // Flushes what is queued for at most `grace`, then stops.
  void Close(std::chrono::milliseconds grace) {
    {
      std::unique_lock l(mu_);
      if (!thread_.joinable()) return;
      deadline_ = std::chrono::steady_clock::now() + grace;
      closing_ = true;
      ready_.notify_all();
      space_.notify_all();
    }
    thread_.join();
  }

 private:
  void Loop() {
    for (;;) {
      std::string line;
      {
        std::unique_lock l(mu_);
        ready_.wait(l, [&] { return closing_ || !queue_.empty(); });
        if (queue_.empty() || broken_) return;
        line = std::move(queue_.front());
        queue_.pop_front();
      }
      size_t off = 0;
      while (off < line.size()) {
        pollfd p{fd_, POLLOUT, 0};
        int r = ::poll(&p, 1, 200);
        if (r == 0 || (r < 0 && errno == EINTR)) {
          std::lock_guard l(mu_);
          if (closing_ && std::chrono::steady_clock::now() > deadline_) {
            broken_ = true;
            return;
          }
          continue;
        }
        // At most PIPE_BUF after POLLOUT: such a write does not block on a
        // pipe, so a reader that stops cannot wedge this thread.
        size_t len = std::min<size_t>(line.size() - off, PIPE_BUF);
        ssize_t n = r > 0 ? ::write(fd_, line.data() + off, len) : -1;
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
          std::lock_guard l(mu_);
          broken_ = true;
          space_.notify_all();
          return;
        }
        off += static_cast<size_t>(n);
      }
      std::lock_guard l(mu_);
      queued_ -= line.size();
      space_.notify_all();
    }
  }

  int fd_;
  std::chrono::milliseconds stall_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<std::string> queue_;
  size_t queued_ = 0;
  bool closing_ = false, broken_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

}  // namespace

absl::Status RunStdio(Server& server, int in_fd, int out_fd, const app::Caller& caller, StdioOptions opts) {
  auto session = std::make_shared<Session>("stdio", caller);
  Writer writer(out_fd, opts.write_stall);
  Emit emit = [&writer](const json& m) { return writer.Push(Serialize(m)); };
  session->SetNotify(emit);
  server.Attach(session);

  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  struct Worker {
    std::thread t;
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
  };
  std::list<Worker> workers;

  auto handle = [&](std::string line) {
    Parsed p = ParseMessage(line, server.options().max_message);
    if (!p.ok) {
      emit(ErrorResponse(nullptr, p.error));
      return;
    }
    // initialize and notifications in order; requests on their own thread.
    bool inline_ = !p.value.is_object() || !p.value.contains("id") || !p.value.contains("method") ||
                   p.value["method"] == "initialize";
    if (inline_) {
      json r = server.HandleValue(session, p.value, caller, emit);
      if (!r.is_null()) emit(r);
      return;
    }
    std::unique_lock l(mu);
    cv.wait(l, [&] { return in_flight < kMaxInFlight; });
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->done->load()) {
        it->t.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
    ++in_flight;
    Worker& w = workers.emplace_back();
    w.t = std::thread([&, done = w.done, v = std::move(p.value)] {
      json r = server.HandleValue(session, v, caller, emit);
      if (!r.is_null()) emit(r);
      std::lock_guard g(mu);
      --in_flight;
      done->store(true);
      cv.notify_all();
    });
  };

  std::string buf;
  bool skipping = false;  // inside a line that is too long
  char chunk[65536];
  absl::Status result;
  for (;;) {
    ssize_t n = ::read(in_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = absl::InternalError(fmt::format("mcp: reading stdin: errno {}", errno));
      break;
    }
    if (n == 0) break;
    size_t start = 0;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      if (chunk[i] != '\n') continue;
      if (!skipping) {
        buf.append(chunk + start, i - start);
        if (!buf.empty() && buf.back() == '\r') buf.pop_back();
        if (!buf.empty()) handle(std::move(buf));
      }
      buf.clear();
      skipping = false;
      start = i + 1;
    }
    if (!skipping) buf.append(chunk + start, static_cast<size_t>(n) - start);
    if (!skipping && buf.size() > server.options().max_message) {
      emit(ErrorResponse(nullptr, {kInvalidRequest, fmt::format("message longer than the limit of {} bytes",
                                                                 server.options().max_message)}));
      buf.clear();
      skipping = true;
    }
  }
  // stdin closed: let requests in flight answer (a piped script reads them),
  // then flush for at most a few seconds.
  for (auto& w : workers) w.t.join();
  server.Detach(session.get());
  session->SetNotify(nullptr);
  writer.Close(opts.close_grace);
  return result;
}

}  // namespace hart::mcp

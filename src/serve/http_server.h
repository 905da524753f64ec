// HttpServer: HTTP/1.1 on Boost.Beast/Asio. A few I/O threads run every
// connection asynchronously (an idle keep-alive connection costs a socket and
// a few KiB, no thread); each request, once its header and body are in, runs
// on a worker pool, never on an I/O thread, so generation never stalls I/O.
// Limits: header size, body size (413 before the body is read when
// Content-Length says so), a header deadline (slow-header clients), an idle
// keep-alive deadline, a minimum body rate (slow-body clients), a write
// deadline (clients that stop reading). While a handler runs the socket is
// watched, so Exchange::Cancelled() turns true as soon as the peer closes.
// Drain() stops accepting, closes idle connections, lets in-flight requests
// finish, then Run() returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "serve/http.h"

namespace hart::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (see HttpServer::port())
  uint64_t max_header = 16 * 1024;
  std::chrono::milliseconds header_timeout{10000};  // first byte to end of header
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30000};   // each write to a client
  uint64_t min_body_rate = 64 * 1024;               // bytes/s a body must keep up
  int io_threads = 1;
  int workers = 16;
  size_t max_connections = 10000;
  std::chrono::milliseconds drain_timeout{30000};
  std::string upload_dir;  // where upload bodies are streamed (a temp file each)
};

// What the server needs from the application for each request.
struct ServerHooks {
  struct BodyPlan {
    uint64_t limit = 0;
    bool to_file = false;
    // Set: answer this at once, read no body, close (an upload the caller
    // may not make is refused before its bytes arrive).
    std::optional<Response> reject;
  };
  // On the I/O thread, after the header: match the route (may set the
  // request's route fields) and say how to read the body.
  std::function<BodyPlan(Request&)> body_plan;
  // On a worker: answer the request.
  Handler dispatch;
  // On the I/O thread, once the last byte is written (or the peer left):
  // logs and metrics.
  std::function<void(const Request&, int status, uint64_t bytes, double seconds, bool cancelled)> done;
};

class HttpServer {
 public:
  HttpServer(ServerOptions opts, ServerHooks hooks);
  ~HttpServer();
  // Binds and listens; port() is the bound port afterwards.
  absl::Status Listen();
  uint16_t port() const;
  // Client connections open now.
  size_t connections() const;
  // Runs the I/O threads and the workers; returns once drained. SIGTERM and
  // SIGINT start a drain when handle_signals.
  void Run(bool handle_signals);
  // Thread-safe: stop accepting, finish in-flight requests, then Run() returns.
  void Drain();

 public:
  struct Impl;  // in http_server.cc

 private:
  std::unique_ptr<Impl> impl_;
};

// Percent-decodes s; false on a malformed escape or a decoded NUL.
bool PercentDecode(std::string_view s, std::string* out, bool plus_is_space = false);

}  // namespace hart::serve

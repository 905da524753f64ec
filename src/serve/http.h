// The server's thin HTTP interface: what a route handler sees (Request) and
// how it answers (Exchange). Nothing here names the HTTP library; the only
// implementation lives in http_server.cc (Boost.Beast), so routes, tests and
// the MCP transport to come never depend on it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/cancel.h"

namespace hart::serve {

// Header names are stored lower-case.
using Headers = std::map<std::string, std::string>;

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: "/v1/models?limit=3"
  std::string path;    // percent-decoded path without the query
  std::map<std::string, std::string> query;   // percent-decoded
  std::map<std::string, std::string> params;  // from the route's {name} segments
  Headers headers;
  std::string body;       // the body, unless it was streamed to body_file
  std::string body_file;  // set for routes that take uploads: a temp file the handler owns
  uint64_t body_size = 0;
  std::string remote;  // "127.0.0.1:54321"

  // Set by the server before the handler runs.
  std::string request_id;
  std::string trace_id;    // W3C trace-id (32 hex)
  std::string span_id;     // this server's span (16 hex), returned in traceparent
  std::string route;       // the route template that matched, e.g. "/v1/models/{model}"
  const void* route_ptr = nullptr;  // the matched route (serve/router.h), set with route
  int route_status = 0;    // 404/405 when no route matched (set with route)

  std::string Header(std::string_view name) const;  // "" when absent
};

struct Response {
  int status = 200;
  Headers headers;  // content-type etc.; names lower-case
  std::string body;
  // Convenience constructors.
  static Response Json(int status, std::string body);
  static Response Text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
};

// One request's answer channel. A handler either calls Respond() once, or
// Begin() then Write()* then End(). Every call is safe from any thread (the
// handler runs on a worker, never on an I/O thread); Write() blocks until the
// bytes are handed to the socket (back-pressure from slow readers) and
// returns false once the client has gone away.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const Request& request() const = 0;
  virtual void Respond(Response r) = 0;
  // content_length < 0: chunked transfer (server-sent events); else exactly
  // that many body bytes follow.
  virtual bool Begin(int status, Headers headers, int64_t content_length = -1) = 0;
  virtual bool Write(std::string_view data) = 0;
  virtual void End() = 0;
  // True once the peer closed its side or a write failed; long work polls it
  // (the server watches the socket while a handler runs).
  virtual bool Cancelled() const = 0;
  // The same as a token, for long work that takes one (app::Context, generation).
  virtual const CancelToken& cancel_token() const = 0;
  virtual bool Responded() const = 0;
};

using Handler = std::function<void(Exchange&)>;

}  // namespace hart::serve

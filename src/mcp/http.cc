#include "mcp/http.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "fmt/format.h"
#include "serve/service_state.h"

namespace hart::mcp {

using nlohmann::json;
using serve::Exchange;
using serve::Response;

namespace {

constexpr size_t kMaxPending = 1000;  // unsolicited messages waiting for a GET stream

std::string NewSessionId() {
  static std::mutex mu;
  static std::random_device rd;
  std::lock_guard l(mu);
  std::string id;
  for (int i = 0; i < 4; ++i) id += fmt::format("{:08x}", rd());
  return id;
}

// One HTTP session: the MCP session plus its GET stream's mailbox.
struct HttpSession {
  std::shared_ptr<Session> session;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<json> pending;
  uint64_t stream_gen = 0;  // a newer GET stream replaces an older one
  bool closed = false;
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();

  bool Push(const json& m) {
    std::lock_guard l(mu);
    if (closed) return false;
    if (pending.size() >= kMaxPending) pending.pop_front();  // the oldest goes first
    pending.push_back(m);
    cv.notify_all();
    return true;
  }
};

class Transport {
 public:
  Transport(serve::Service& svc, HttpOptions o) : svc_(svc), opts_(o) {
    ServerOptions so;
    so.enable_writes = o.enable_writes;
    so.remote = true;
    so.sql_max_rows = svc.options().sql_max_rows;
    so.sql_timeout_seconds = svc.options().sql_timeout_seconds;
    so.max_message = std::min<size_t>(kDefaultMaxMessage, svc.options().max_body);
    so.registry = serve::State(svc).registry.get();
    so.engines = serve::State(svc).engines.get();
    serve::Service* s = &svc;
    so.generation_slot = [s](const CancelToken& c) -> absl::StatusOr<std::shared_ptr<void>> {
      auto slot = s->slots().Acquire(c);
      if (!slot.ok()) return slot.status();
      return std::shared_ptr<void>(std::make_shared<serve::GenerationSlots::Slot>(std::move(*slot)));
    };
    server_ = std::make_unique<Server>(so, svc.store());
  }

  ~Transport() {
    std::lock_guard l(mu_);
    for (auto& [id, hs] : sessions_) Close(*hs);
  }

  void Post(Exchange& ex, const app::Caller& caller);
  void Get(Exchange& ex, const app::Caller& caller);
  void Delete(Exchange& ex, const app::Caller& caller);

 private:
  // Common checks; false when an error was answered.
  bool Check(Exchange& ex, const app::Caller& caller);
  // The request's session: answers 400/404 and returns null when there is none.
  std::shared_ptr<HttpSession> Find(Exchange& ex, const app::Caller& caller);
  void Close(HttpSession& hs) {
    {
      std::lock_guard l(hs.mu);
      hs.closed = true;
      hs.cv.notify_all();
    }
    hs.session->CancelAll();
    hs.session->SetNotify(nullptr);
    server_->Detach(hs.session.get());
  }

  serve::Service& svc_;
  HttpOptions opts_;
  std::unique_ptr<Server> server_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<HttpSession>> sessions_;
  std::atomic<int> streams_{0};  // GET streams open now
};

void RespondRpcError(Exchange& ex, int http, const RpcError& e, const json& id = nullptr) {
  ex.Respond(Response::Json(http, Serialize(ErrorResponse(id, e))));
}

bool Accepts(const serve::Request& r, std::string_view type) {
  std::string a = absl::AsciiStrToLower(r.Header("accept"));
  return a.empty() || a.find(type) != std::string::npos || a.find("*/*") != std::string::npos;
}

bool Transport::Check(Exchange& ex, const app::Caller& caller) {
  const serve::Request& r = ex.request();
  std::string origin = r.Header("origin");
  if (!origin.empty() && !OriginAllowed(origin, r.Header("host"), caller.authenticated)) {
    RespondRpcError(ex, 403, {kInvalidRequest, fmt::format("Origin \"{}\" may not call /mcp", origin)});
    return false;
  }
  std::string pv = r.Header("mcp-protocol-version");
  if (!pv.empty() && !IsSupportedVersion(pv)) {
    RespondRpcError(ex, 400, {kInvalidRequest, fmt::format("MCP-Protocol-Version \"{}\" is not supported (2025-11-25, "
                                                           "2025-06-18, 2025-03-26)", pv)});
    return false;
  }
  return true;
}

std::shared_ptr<HttpSession> Transport::Find(Exchange& ex, const app::Caller& caller) {
  std::string id = ex.request().Header("mcp-session-id");
  if (id.empty()) {
    RespondRpcError(ex, 400, {kInvalidRequest, "the Mcp-Session-Id header is required after initialize"});
    return nullptr;
  }
  std::shared_ptr<HttpSession> hs;
  {
    std::lock_guard l(mu_);
    auto it = sessions_.find(id);
    if (it != sessions_.end()) hs = it->second;
  }
  // A session belongs to whoever began it (once sign-in is on).
  if (hs && caller.authenticated && hs->session->owner().owner != caller.owner) hs = nullptr;
  if (!hs) {
    RespondRpcError(ex, 404, {kInvalidRequest, "unknown or ended MCP session; initialize a new one"});
    return nullptr;
  }
  std::lock_guard l(hs->mu);
  hs->last_used = std::chrono::steady_clock::now();
  return hs;
}

void Transport::Post(Exchange& ex, const app::Caller& caller) {
  if (!Check(ex, caller)) return;
  const serve::Request& r = ex.request();
  Parsed p = ParseMessage(r.body, server_->options().max_message);
  if (!p.ok) {
    int status = absl::StartsWith(p.error.message, "message of") ? 413 : 400;
    return RespondRpcError(ex, status, p.error);
  }
  const json& msg = p.value;
  bool is_init = msg.is_object() && msg.contains("method") && msg["method"] == "initialize" && msg.contains("id");
  std::shared_ptr<HttpSession> hs;
  if (is_init) {
    hs = std::make_shared<HttpSession>();
    std::string id = NewSessionId();
    hs->session = std::make_shared<Session>(id, caller);
    std::lock_guard l(mu_);
    // Drop sessions idle too long; refuse when still full.
    auto now = std::chrono::steady_clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      bool idle;
      {
        std::lock_guard g(it->second->mu);
        idle = now - it->second->last_used > opts_.session_idle;
      }
      if (idle) {
        Close(*it->second);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
    if (sessions_.size() >= opts_.max_sessions) {
      return RespondRpcError(ex, 503, {kInternalError, "too many MCP sessions; end one (DELETE /mcp) or retry later"},
                             msg["id"]);
    }
  } else {
    hs = Find(ex, caller);
    if (!hs) return;
  }
  std::shared_ptr<Session> session = hs->session;
  auto push = [hs](const json& m) { return hs->Push(m); };

  bool has_request = false, long_call = false;
  json first_id = nullptr;
  if (msg.is_object()) {
    has_request = msg.contains("id") && msg.contains("method");
    long_call = has_request && msg["method"] == "tools/call";
    if (has_request) first_id = msg["id"];
  } else if (msg.is_array()) {
    for (const auto& m : msg) {
      if (m.is_object() && m.contains("id") && m.contains("method")) has_request = true;
    }
  }

  if (!has_request) {
    json out = server_->HandleValue(session, msg, caller, push);
    if (!out.is_null()) return ex.Respond(Response::Json(400, Serialize(out)));
    return ex.Respond(Response{.status = 202, .headers = {}, .body = ""});
  }

  if (long_call && Accepts(r, "text/event-stream") && absl::StrContains(absl::AsciiStrToLower(r.Header("accept")), "text/event-stream")) {
    // SSE: this call's progress and logs as they happen, then its result.
    serve::Headers h = {{"content-type", "text/event-stream"}, {"cache-control", "no-cache"},
                        {"mcp-session-id", session->id()}};
    if (!ex.Begin(200, h, -1)) return;
    std::mutex wmu;
    bool alive = true;
    auto write = [&](const json& m) {
      std::lock_guard l(wmu);
      if (alive) alive = ex.Write("event: message\ndata: " + Serialize(m) + "\n\n");
      return alive;
    };
    // The client going away cancels the call.
    std::atomic<bool> done{false};
    std::thread watch([&] {
      while (!done.load()) {
        if (ex.Cancelled()) {
          json cancel = Notification("notifications/cancelled", {{"requestId", first_id}, {"reason", "client went away"}});
          server_->HandleValue(session, cancel, caller, nullptr);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    json out = server_->HandleValue(session, msg, caller, write);
    done.store(true);
    watch.join();
    if (!out.is_null()) write(out);
    return ex.End();
  }

  json out = server_->HandleValue(session, msg, caller, push);
  Response resp = Response::Json(200, Serialize(out));
  resp.headers["mcp-session-id"] = session->id();
  if (is_init) {
    bool ok = out.is_object() && out.contains("result");
    if (ok) {
      session->SetNotify(push);
      server_->Attach(session);
      std::lock_guard l(mu_);
      sessions_[session->id()] = hs;
    } else {
      resp.headers.erase("mcp-session-id");
      resp.status = 400;
    }
  }
  ex.Respond(std::move(resp));
}

void Transport::Get(Exchange& ex, const app::Caller& caller) {
  if (!Check(ex, caller)) return;
  if (!absl::StrContains(absl::AsciiStrToLower(ex.request().Header("accept")), "text/event-stream")) {
    Response resp = Response::Json(405, Serialize(ErrorResponse(nullptr, {kInvalidRequest,
                                                                          "GET /mcp opens a text/event-stream; "
                                                                          "send Accept: text/event-stream"})));
    resp.headers["allow"] = "POST, DELETE";
    return ex.Respond(std::move(resp));
  }
  auto hs = Find(ex, caller);
  if (!hs) return;
  // Each open stream holds a worker: at most a quarter of them.
  int cap = std::max(1, svc_.options().http.workers / 4);
  if (streams_.fetch_add(1) >= cap) {
    streams_.fetch_sub(1);
    Response resp = Response::Json(429, Serialize(ErrorResponse(nullptr, {kInternalError, fmt::format(
        "{} MCP event streams are open, the most this server allows; POST responses still work", cap)})));
    resp.headers["retry-after"] = "5";
    return ex.Respond(std::move(resp));
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{streams_};
  uint64_t gen;
  {
    std::lock_guard l(hs->mu);
    gen = ++hs->stream_gen;
    hs->cv.notify_all();
  }
  if (!ex.Begin(200, {{"content-type", "text/event-stream"}, {"cache-control", "no-cache"},
                      {"mcp-session-id", hs->session->id()}}, -1)) {
    return;
  }
  if (!ex.Write(": hartonomous mcp\n\n")) return ex.End();
  auto last_write = std::chrono::steady_clock::now();
  for (;;) {
    std::deque<json> batch;
    {
      // Short waits: a client that left is noticed within half a second,
      // so its stream gives its worker back.
      std::unique_lock l(hs->mu);
      hs->cv.wait_for(l, std::chrono::milliseconds(500),
                      [&] { return hs->closed || hs->stream_gen != gen || !hs->pending.empty(); });
      if (hs->closed || hs->stream_gen != gen) break;
      batch.swap(hs->pending);
    }
    if (ex.Cancelled() || svc_.draining()) break;
    bool ok = true;
    auto now = std::chrono::steady_clock::now();
    if (batch.empty() && now - last_write >= std::chrono::seconds(15)) {
      ok = ex.Write(": keep-alive\n\n");
      last_write = now;
    }
    for (const auto& m : batch) {
      if (!(ok = ex.Write("event: message\ndata: " + Serialize(m) + "\n\n"))) break;
      last_write = now;
    }
    if (!ok) break;
  }
  ex.End();
}

void Transport::Delete(Exchange& ex, const app::Caller& caller) {
  if (!Check(ex, caller)) return;
  auto hs = Find(ex, caller);
  if (!hs) return;
  {
    std::lock_guard l(mu_);
    sessions_.erase(hs->session->id());
  }
  Close(*hs);
  ex.Respond(Response{.status = 204, .headers = {}, .body = ""});
}

bool LoopbackHost(const std::string& h) {
  return h == "localhost" || h == "::1" || h == "[::1]" || h.rfind("127.", 0) == 0;
}

// "host" of "host:port" or "[v6]:port".
std::string_view HostOf(std::string_view hp) {
  if (!hp.empty() && hp[0] == '[') {
    size_t c = hp.find(']');
    return c == std::string_view::npos ? hp : hp.substr(0, c + 1);
  }
  size_t c = hp.rfind(':');
  return c == std::string_view::npos ? hp : hp.substr(0, c);
}

}  // namespace

bool OriginAllowed(std::string_view origin, std::string_view host, bool authenticated) {
  size_t scheme = origin.find("://");
  if (scheme == std::string_view::npos) return false;  // "null" and junk
  std::string_view rest = origin.substr(scheme + 3);
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
  std::string oh = absl::AsciiStrToLower(std::string(HostOf(rest)));
  if (LoopbackHost(oh)) return true;
  // The page's own host only for a signed-in caller: a rebinding page has a
  // matching Host too, but no bearer token.
  return authenticated && !host.empty() &&
         absl::AsciiStrToLower(std::string(rest)) == absl::AsciiStrToLower(std::string(host));
}

// /mcp is a protocol endpoint (JSON-RPC in and out, errors as JSON-RPC
// error objects), not a REST operation: it stays out of /openapi.json.
void AddMcpRoutes(serve::Service& svc, HttpOptions opts) {
  auto t = std::make_shared<Transport>(svc, opts);
  json schema = {{"type", "object"}, {"description", "one JSON-RPC 2.0 message (MCP)"}};
  serve::Router& r = svc.router();
  r.Add({.method = "POST",
         .path = "/mcp",
         .operation_id = "mcpPost",
         .summary = "Model Context Protocol (Streamable HTTP): send one JSON-RPC message.",
         .tag = "mcp",
         .handler = [t](Exchange& ex, const app::Caller& c) { t->Post(ex, c); },
         .request_schema = schema,
         .response_types = {"application/json", "text/event-stream"},
         .hidden = true});
  r.Add({.method = "GET",
         .path = "/mcp",
         .operation_id = "mcpStream",
         .summary = "Model Context Protocol: the session's server-sent events (resource updates).",
         .tag = "mcp",
         .handler = [t](Exchange& ex, const app::Caller& c) { t->Get(ex, c); },
         .response_types = {"text/event-stream"},
         .hidden = true});
  r.Add({.method = "DELETE",
         .path = "/mcp",
         .operation_id = "mcpEnd",
         .summary = "Model Context Protocol: end the session.",
         .tag = "mcp",
         .handler = [t](Exchange& ex, const app::Caller& c) { t->Delete(ex, c); },
         .hidden = true});
}

}  // namespace hart::mcp

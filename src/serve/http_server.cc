#include "serve/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <limits>
#include <random>
#include <deque>
#include <filesystem>
#include <cctype>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "serve/errors.h"

namespace hart::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string Request::Header(std::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(std::string(name)));
  return it == headers.end() ? "" : it->second;
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers["content-type"] = "application/json";
  r.body = std::move(body);
  return r;
}

Response Response::Text(int status, std::string body, std::string content_type) {
  Response r;
  r.status = status;
  r.headers["content-type"] = std::move(content_type);
  r.body = std::move(body);
  return r;
}

bool PercentDecode(std::string_view s, std::string* out, bool plus_is_space) {
  auto hex = [](char h) -> int {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      int a = hex(s[i + 1]), b = hex(s[i + 2]);
      if (a < 0 || b < 0) return false;
      char d = static_cast<char>(a * 16 + b);
      if (d == '\0') return false;
      out->push_back(d);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

namespace {

std::string StatusLine(int status) {
  auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
  if (reason.empty() || reason == "<unknown-status>") {
    reason = status == 499 ? "Client Closed Request" : "Unknown";
  }
  return absl::StrFormat("HTTP/1.1 %d %s\r\n", status, std::string(reason));
}

// Header values must not carry CR/LF (response splitting).
std::string CleanHeader(const std::string& v) {
  std::string o;
  for (char c : v) o.push_back(c == '\r' || c == '\n' ? ' ' : c);
  return o;
}

}  // namespace

// Random hex of n bytes.
std::string RandomHex(size_t n) {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  static const char* kHex = "0123456789abcdef";
  std::string o;
  while (o.size() < 2 * n) {
    uint64_t v = rng();
    for (int i = 0; i < 16 && o.size() < 2 * n; ++i, v >>= 4) o.push_back(kHex[v & 15]);
  }
  return o;
}

bool IsHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// The request id (a client's X-Request-Id when it is sane, else a new one)
// and the W3C trace context: a valid `traceparent` keeps its trace-id, this
// server's span gets a new id; otherwise a new trace starts.
void AssignIds(Request* r) {
  std::string rid = r->Header("x-request-id");
  bool ok = !rid.empty() && rid.size() <= 64;
  for (char c : rid)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) ok = false;
  r->request_id = ok ? rid : RandomHex(8);
  std::string tp = r->Header("traceparent");
  // version "00": 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>
  if (tp.size() == 55 && tp[2] == '-' && tp[35] == '-' && tp[52] == '-' && IsHex(tp.substr(0, 2)) &&
      tp.substr(0, 2) != "ff" && IsHex(tp.substr(3, 32)) && IsHex(tp.substr(36, 16)) && IsHex(tp.substr(53, 2)) &&
      tp.substr(3, 32) != std::string(32, '0') && tp.substr(36, 16) != std::string(16, '0')) {
    r->trace_id = tp.substr(3, 32);
  } else {
    r->trace_id = RandomHex(16);
  }
  r->span_id = RandomHex(8);
}

class Session;

struct HttpServer::Impl {
  ServerOptions opts;
  ServerHooks hooks;
  net::io_context ioc;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::thread_pool> workers;
  std::optional<net::signal_set> signals;
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  uint16_t port = 0;

  std::mutex mu;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
  uint64_t next_id = 1;
  std::optional<net::steady_timer> drain_timer;

  void DoAccept();
  void Remove(uint64_t id);
  void StartDrain();
  void MaybeFinishDrain();
};

// One in-flight request's answer channel (see Exchange in http.h).
class ExchangeImpl : public Exchange {
 public:
  ExchangeImpl(std::shared_ptr<Session> s, Request req, bool keep_alive, bool head)
      : s_(std::move(s)), req_(std::move(req)), keep_alive_(keep_alive), head_(head), start_(Clock::now()) {}
  const Request& request() const override { return req_; }
  void Respond(Response r) override;
  bool Begin(int status, Headers headers, int64_t content_length) override;
  bool Write(std::string_view data) override;
  void End() override;
  bool Cancelled() const override { return cancel_.cancelled(); }
  const CancelToken& cancel_token() const override { return cancel_; }
  void MarkCancelled() { cancel_.Cancel(); }
  bool Responded() const override { return state_.load() != kNone; }
  void Finish();  // after the handler returned

  CancelToken cancel_;

 private:
  friend class Session;
  enum State { kNone, kStreaming, kDone };
  std::string HeadBlock(int status, Headers& headers, int64_t content_length, bool chunked);
  // Queues bytes on the session; blocks until written when wait.
  bool Send(std::string bytes, bool last, bool wait);

  std::shared_ptr<Session> s_;
  Request req_;
  bool keep_alive_;
  bool head_;
  Clock::time_point start_;
  std::atomic<int> state_{kNone};
  bool chunked_ = false;
  int status_ = 0;
  std::atomic<uint64_t> bytes_{0};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl* srv, tcp::socket sock, uint64_t id)
      : srv_(srv), stream_(std::move(sock)), id_(id) {}
  ~Session() {
    if (!upload_path_.empty()) ::unlink(upload_path_.c_str());
  }

  void Start() { net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->DoWaitRequest(); }); }

  // From any thread: close now if waiting between requests (drain).
  void CloseIfIdle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->idle_) self->Close();
    });
  }

  // From a worker: write bytes; `done` runs on the I/O thread afterwards.
  void PostWrite(std::shared_ptr<std::string> bytes, std::function<void(bool ok)> done) {
    net::post(stream_.get_executor(), [self = shared_from_this(), bytes, done = std::move(done)]() mutable {
      self->writes_.push_back({std::move(bytes), std::move(done)});
      if (self->writes_.size() == 1) self->DoWrite();
    });
  }

  // On the I/O thread once the exchange's last byte is out (or failed).
  void ResponseDone(ExchangeImpl* ex, bool ok) {
    double secs = std::chrono::duration<double>(Clock::now() - ex->start_).count();
    if (srv_->hooks.done) srv_->hooks.done(ex->req_, ex->status_, ex->bytes_.load(), secs, ex->Cancelled());
    bool keep = ok && ex->keep_alive_ && !peer_closed_ && !srv_->draining.load();
    cur_.reset();
    if (!keep) {
      Shutdown();
      return;
    }
    if (monitoring_) {
      next_pending_ = true;
      beast::error_code ec;
      stream_.socket().cancel(ec);
    } else {
      DoWaitRequest();
    }
  }

 private:
  struct PendingWrite {
    std::shared_ptr<std::string> bytes;
    std::function<void(bool)> done;
  };

  void DoWrite() {
    auto& w = writes_.front();
    stream_.expires_after(srv_->opts.write_timeout);
    net::async_write(stream_, net::buffer(*w.bytes),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       auto w = std::move(self->writes_.front());
                       self->writes_.pop_front();
                       if (ec) {
                         self->peer_closed_ = true;
                         if (self->cur_) self->cur_->MarkCancelled();
                       }
                       w.done(!ec);
                       if (!self->writes_.empty()) self->DoWrite();
                     });
  }

  // Waits for the first byte of the next request (idle deadline), then reads
  // its header (header deadline).
  void DoWaitRequest() {
    next_pending_ = false;
    if (srv_->draining.load()) {
      Close();
      return;
    }
    if (buffer_.size() > 0) {
      DoReadHeader();
      return;
    }
    idle_ = true;
    stream_.expires_after(srv_->opts.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->idle_ = false;
      if (ec) {
        self->Close();
        return;
      }
      self->buffer_.commit(n);
      self->DoReadHeader();
    });
  }

  void DoReadHeader() {
    header_parser_.emplace();
    header_parser_->header_limit(static_cast<uint32_t>(srv_->opts.max_header));
    header_parser_->eager(false);
    // The route decides the body limit once the header is in (ReadBody).
    header_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    stream_.expires_after(srv_->opts.header_timeout);
    http::async_read_header(stream_, buffer_, *header_parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      Close();
      return;
    }
    if (ec == http::error::header_limit) {
      ReplyAndClose(431, "request header larger than " + std::to_string(srv_->opts.max_header) + " bytes");
      return;
    }
    if (ec) {
      ReplyAndClose(400, "malformed HTTP request: " + ec.message());
      return;
    }
    auto& h = header_parser_->get();
    req_ = Request();
    req_.method = std::string(h.method_string());
    req_.target = std::string(h.target());
    for (auto& f : h) req_.headers[absl::AsciiStrToLower(std::string(f.name_string()))] = std::string(f.value());
    beast::error_code rec;
    auto ep = stream_.socket().remote_endpoint(rec);
    if (!rec) req_.remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    AssignIds(&req_);
    keep_alive_ = h.keep_alive();
    head_ = h.method() == http::verb::head;
    // Target: path and query.
    std::string_view t = req_.target;
    size_t q = t.find('?');
    req_.path = std::string(t.substr(0, q));
    if (req_.path.empty() || req_.path[0] != '/') {
      ReplyAndClose(400, "request target must be an absolute path, got \"" + req_.target.substr(0, 200) + "\"");
      return;
    }
    if (q != std::string_view::npos) {
      std::string_view qs = t.substr(q + 1);
      while (!qs.empty()) {
        size_t amp = qs.find('&');
        std::string_view kv = qs.substr(0, amp);
        size_t eq = kv.find('=');
        std::string k, v;
        if (!PercentDecode(kv.substr(0, eq), &k, true) ||
            !PercentDecode(eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1), &v, true)) {
          ReplyAndClose(400, "malformed percent-escape in the query string");
          return;
        }
        if (!k.empty()) req_.query[k] = v;
        if (amp == std::string_view::npos) break;
        qs = qs.substr(amp + 1);
      }
    }
    ServerHooks::BodyPlan plan = srv_->hooks.body_plan ? srv_->hooks.body_plan(req_) : ServerHooks::BodyPlan{};
    if (plan.reject) {
      ReplyAndClose(std::move(*plan.reject));
      return;
    }
    auto len = header_parser_->content_length();
    if (len && *len > plan.limit) {
      ReplyAndClose(413, absl::StrFormat("request body of %d bytes is larger than the limit of %d bytes for %s %s",
                                         *len, plan.limit, req_.method, req_.path));
      return;
    }
    if (absl::EqualsIgnoreCase(req_.Header("expect"), "100-continue") && (!len || *len > 0)) {
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      stream_.expires_after(srv_->opts.write_timeout);
      net::async_write(stream_, net::buffer(*cont), [self = shared_from_this(), cont, plan](beast::error_code ec, size_t) {
        if (ec) {
          self->Close();
          return;
        }
        self->ReadBody(plan);
      });
      return;
    }
    ReadBody(plan);
  }

  void ReadBody(ServerHooks::BodyPlan plan) {
    auto len = header_parser_->content_length();
    // The body must keep up min_body_rate: a deadline from its length (or
    // the limit, when chunked), never under the header deadline.
    uint64_t expect = len ? *len : plan.limit;
    auto deadline = srv_->opts.header_timeout +
                    std::chrono::milliseconds(expect * 1000 / std::max<uint64_t>(1, srv_->opts.min_body_rate));
    if (!len && !header_parser_->chunked()) {
      // No body at all.
      Dispatch();
      return;
    }
    stream_.expires_after(deadline);
    if (plan.to_file) {
      std::string tmpl = (srv_->opts.upload_dir.empty() ? std::string("/tmp") : srv_->opts.upload_dir) +
                         "/upload-XXXXXX";
      std::vector<char> buf(tmpl.begin(), tmpl.end());
      buf.push_back('\0');
      int fd = ::mkstemp(buf.data());
      if (fd < 0) {
        ReplyAndClose(500, "cannot create an upload file in " + srv_->opts.upload_dir);
        return;
      }
      ::close(fd);
      upload_path_ = buf.data();
      file_parser_.emplace(std::move(*header_parser_));
      file_parser_->body_limit(plan.limit);
      beast::error_code ec;
      file_parser_->get().body().open(upload_path_.c_str(), beast::file_mode::write, ec);
      if (ec) {
        ReplyAndClose(500, "cannot open the upload file: " + ec.message());
        return;
      }
      http::async_read(stream_, buffer_, *file_parser_, [self = shared_from_this(), plan](beast::error_code ec, size_t) {
        self->file_parser_->get().body().close();
        self->OnBody(ec, plan);
      });
    } else {
      string_parser_.emplace(std::move(*header_parser_));
      string_parser_->body_limit(plan.limit);
      http::async_read(stream_, buffer_, *string_parser_, [self = shared_from_this(), plan](beast::error_code ec, size_t) {
        self->OnBody(ec, plan);
      });
    }
  }

  void OnBody(beast::error_code ec, ServerHooks::BodyPlan plan) {
    if (ec == http::error::body_limit) {
      DropUpload();
      ReplyAndClose(413, absl::StrFormat("request body is larger than the limit of %d bytes for %s %s", plan.limit,
                                         req_.method, req_.path));
      return;
    }
    if (ec) {
      DropUpload();
      if (ec == beast::error::timeout) {
        ReplyAndClose(408, "request body arrived slower than " + std::to_string(srv_->opts.min_body_rate) +
                               " bytes/s; closing");
      } else if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
                 ec == http::error::partial_message) {
        Close();
      } else {
        ReplyAndClose(400, "malformed HTTP request body: " + ec.message());
      }
      return;
    }
    if (string_parser_) {
      req_.body = std::move(string_parser_->get().body());
      req_.body_size = req_.body.size();
      string_parser_.reset();
    }
    if (file_parser_) {
      req_.body_file = upload_path_;
      beast::error_code fec;
      req_.body_size = std::filesystem::file_size(upload_path_);
      upload_path_.clear();  // the handler owns it now
      file_parser_.reset();
    }
    Dispatch();
  }

  void DropUpload() {
    if (!upload_path_.empty()) {
      ::unlink(upload_path_.c_str());
      upload_path_.clear();
    }
  }

  void Dispatch() {
    header_parser_.reset();
    auto ex = std::make_shared<ExchangeImpl>(shared_from_this(), std::move(req_), keep_alive_, head_);
    cur_ = ex;
    // Watch the socket while the handler runs: readable with nothing to
    // read means the peer closed.
    StartMonitor();
    net::post(*srv_->workers, [ex, hooks = &srv_->hooks] {
      try {
        hooks->dispatch(*ex);
      } catch (const std::exception& e) {
        if (!ex->Responded()) ex->Respond(ErrorResponse(500, std::string("internal error: ") + e.what()));
      } catch (...) {
        if (!ex->Responded()) ex->Respond(ErrorResponse(500, "internal error"));
      }
      ex->Finish();
      // The handler owns an uploaded body file; remove what it left.
      if (!ex->request().body_file.empty()) ::unlink(ex->request().body_file.c_str());
    });
  }

  void StartMonitor() {
    if (buffer_.size() > 0) return;  // pipelined bytes already here
    monitoring_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      self->monitoring_ = false;
      if (!ec) {
        char c;
        ssize_t n = ::recv(self->stream_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          self->peer_closed_ = true;
          if (self->cur_) self->cur_->MarkCancelled();
        }
      } else if (ec != net::error::operation_aborted) {
        self->peer_closed_ = true;
        if (self->cur_) self->cur_->MarkCancelled();
      }
      if (self->next_pending_) {
        if (self->peer_closed_) {
          self->Close();
        } else {
          self->DoWaitRequest();
        }
      }
    });
  }

  void ReplyAndClose(int status, const std::string& message) { ReplyAndClose(ErrorResponse(status, message)); }
  void ReplyAndClose(Response r) {
    keep_alive_ = false;
    const int status = r.status;
    auto bytes = std::make_shared<std::string>(StatusLine(status));
    for (const auto& [k, v] : r.headers)
      if (k != "content-length" && k != "connection" && k != "content-type") *bytes += k + ": " + v + "\r\n";
    auto ct = r.headers.find("content-type");
    *bytes += "content-type: " + (ct == r.headers.end() ? std::string("application/json") : ct->second) +
              "\r\nconnection: close\r\n";
    *bytes += "content-length: " + std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
    stream_.expires_after(srv_->opts.write_timeout);
    if (srv_->hooks.done) srv_->hooks.done(req_, status, bytes->size(), 0, false);
    net::async_write(stream_, net::buffer(*bytes),
                     [self = shared_from_this(), bytes](beast::error_code, size_t) { self->Shutdown(); });
  }

  void Shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    // Let the peer read the answer; then close on its EOF or after a moment.
    stream_.expires_after(std::chrono::seconds(2));
    auto sink = std::make_shared<std::array<char, 1024>>();
    DrainRead(sink);
  }
  void DrainRead(std::shared_ptr<std::array<char, 1024>> sink) {
    stream_.async_read_some(net::buffer(*sink), [self = shared_from_this(), sink](beast::error_code ec, size_t) {
      if (ec) {
        self->Close();
        return;
      }
      self->DrainRead(sink);
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().close(ec);
    srv_->Remove(id_);
  }

  friend class ExchangeImpl;
  HttpServer::Impl* srv_;
  beast::tcp_stream stream_;
  uint64_t id_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> string_parser_;
  std::optional<http::request_parser<http::file_body>> file_parser_;
  std::string upload_path_;
  Request req_;
  bool keep_alive_ = true;
  bool head_ = false;
  bool idle_ = false;
  bool monitoring_ = false;
  bool next_pending_ = false;
  bool peer_closed_ = false;
  bool closed_ = false;
  std::shared_ptr<ExchangeImpl> cur_;
  std::deque<PendingWrite> writes_;
};

std::string ExchangeImpl::HeadBlock(int status, Headers& headers, int64_t content_length, bool chunked) {
  status_ = status;
  bool keep = keep_alive_ && !s_->srv_->draining.load();
  std::string o = StatusLine(status);
  headers.emplace("x-request-id", req_.request_id);
  if (!req_.trace_id.empty()) headers.emplace("traceparent", "00-" + req_.trace_id + "-" + req_.span_id + "-01");
  headers.emplace("server", "hartonomous");
  for (auto& [k, v] : headers) {
    if (k == "content-length" || k == "transfer-encoding" || k == "connection") continue;
    absl::StrAppend(&o, k, ": ", CleanHeader(v), "\r\n");
  }
  if (chunked) {
    o += "transfer-encoding: chunked\r\n";
  } else {
    absl::StrAppend(&o, "content-length: ", content_length, "\r\n");
  }
  o += keep ? "connection: keep-alive\r\n" : "connection: close\r\n";
  if (!keep) keep_alive_ = false;
  o += "\r\n";
  return o;
}

bool ExchangeImpl::Send(std::string bytes, bool last, bool wait) {
  bytes_ += bytes.size();
  auto buf = std::make_shared<std::string>(std::move(bytes));
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false, ok = false;
  };
  auto waiter = wait ? std::make_shared<Waiter>() : nullptr;
  Session* s = s_.get();
  s_->PostWrite(buf, [this, last, waiter, s](bool ok) {
    if (!ok) MarkCancelled();
    // Copy what ResponseDone needs before waking the worker: the worker may
    // return and the exchange die only after this runs, since the session's
    // cur_ holds it until ResponseDone.
    if (last) s->ResponseDone(this, ok);
    if (waiter) {
      std::lock_guard<std::mutex> lock(waiter->mu);
      waiter->done = true;
      waiter->ok = ok;
      waiter->cv.notify_all();
    }
  });
  if (!waiter) return true;
  std::unique_lock<std::mutex> lock(waiter->mu);
  waiter->cv.wait(lock, [&] { return waiter->done; });
  return waiter->ok;
}

void ExchangeImpl::Respond(Response r) {
  int expected = kNone;
  if (!state_.compare_exchange_strong(expected, kDone)) return;
  std::string o = HeadBlock(r.status, r.headers, static_cast<int64_t>(r.body.size()), false);
  if (!head_) o += r.body;
  // Wait for the write, so the exchange outlives its completion.
  Send(std::move(o), true, true);
}

bool ExchangeImpl::Begin(int status, Headers headers, int64_t content_length) {
  int expected = kNone;
  if (!state_.compare_exchange_strong(expected, kStreaming)) return false;
  chunked_ = content_length < 0;
  std::string o = HeadBlock(status, headers, content_length, chunked_);
  return Send(std::move(o), false, true) && !Cancelled();
}

bool ExchangeImpl::Write(std::string_view data) {
  if (state_.load() != kStreaming || Cancelled()) return false;
  if (data.empty() || head_) return true;
  std::string o;
  if (chunked_) {
    o = absl::StrFormat("%x\r\n", data.size());
    o.append(data);
    o += "\r\n";
  } else {
    o.assign(data);
  }
  return Send(std::move(o), false, true);
}

void ExchangeImpl::End() {
  int expected = kStreaming;
  if (!state_.compare_exchange_strong(expected, kDone)) return;
  if (Cancelled()) {
    // The peer is gone: no more bytes, just account for the exchange.
    keep_alive_ = false;
    Session* s = s_.get();
    net::post(s->stream_.get_executor(), [self = s_, this] { self->ResponseDone(this, false); });
    // Keep this object alive until that runs: the session's cur_ holds it.
    return;
  }
  Send(chunked_ && !head_ ? std::string("0\r\n\r\n") : std::string(), true, true);
}

void ExchangeImpl::Finish() {
  if (state_.load() == kStreaming) End();
  if (state_.load() == kNone) Respond(ErrorResponse(500, "internal error: the handler gave no answer"));
}

HttpServer::HttpServer(ServerOptions opts, ServerHooks hooks) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(opts);
  impl_->hooks = std::move(hooks);
}

HttpServer::~HttpServer() {
  if (impl_->workers) impl_->workers->join();
}

absl::Status HttpServer::Listen() {
  beast::error_code ec;
  auto addr = net::ip::make_address(impl_->opts.host, ec);
  if (ec) return absl::InvalidArgumentError("not an IP address: \"" + impl_->opts.host + "\"");
  tcp::endpoint ep(addr, impl_->opts.port);
  impl_->acceptor.emplace(impl_->ioc);
  impl_->acceptor->open(ep.protocol(), ec);
  if (!ec) impl_->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor->bind(ep, ec);
  if (!ec) impl_->acceptor->listen(1024, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("cannot listen on %s:%d: %s", impl_->opts.host, impl_->opts.port, ec.message()));
  }
  impl_->port = impl_->acceptor->local_endpoint().port();
  return absl::OkStatus();
}

uint16_t HttpServer::port() const { return impl_->port; }

size_t HttpServer::connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sessions.size();
}

void HttpServer::Impl::DoAccept() {
  acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
    if (ec) {
      if (ec == net::error::operation_aborted || draining.load()) return;
      // Out of file descriptors and the like: try again shortly.
      auto t = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(50));
      t->async_wait([this, t](beast::error_code) {
        if (!draining.load()) DoAccept();
      });
      return;
    }
    std::shared_ptr<Session> s;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (sessions.size() < opts.max_connections) {
        uint64_t id = next_id++;
        s = std::make_shared<Session>(this, std::move(sock), id);
        sessions[id] = s;
      }
    }
    if (s) {
      beast::error_code nec;
      s->Start();
    }
    DoAccept();
  });
}

void HttpServer::Impl::Remove(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(id);
  }
  if (draining.load()) MaybeFinishDrain();
}

void HttpServer::Impl::StartDrain() {
  if (draining.exchange(true)) return;
  net::post(ioc, [this] {
    beast::error_code ec;
    if (acceptor) acceptor->close(ec);
    if (signals) signals->cancel(ec);
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [id, w] : sessions)
        if (auto s = w.lock()) live.push_back(s);
    }
    for (auto& s : live) s->CloseIfIdle();
    drain_timer.emplace(ioc, opts.drain_timeout);
    drain_timer->async_wait([this](beast::error_code ec) {
      if (!ec) {
        stopped = true;
        ioc.stop();
      }
    });
    MaybeFinishDrain();
  });
}

void HttpServer::Impl::MaybeFinishDrain() {
  std::lock_guard<std::mutex> lock(mu);
  if (sessions.empty() && !stopped.exchange(true)) {
    net::post(ioc, [this] {
      beast::error_code ec;
      if (drain_timer) drain_timer->cancel(ec);
      ioc.stop();
    });
  }
}

void HttpServer::Drain() { impl_->StartDrain(); }

void HttpServer::Run(bool handle_signals) {
  impl_->workers.emplace(static_cast<size_t>(std::max(1, impl_->opts.workers)));
  if (handle_signals) {
    impl_->signals.emplace(impl_->ioc, SIGTERM, SIGINT);
    impl_->signals->async_wait([this](beast::error_code ec, int) {
      if (!ec) impl_->StartDrain();
    });
  }
  impl_->DoAccept();
  std::vector<std::thread> threads;
  for (int i = 1; i < std::max(1, impl_->opts.io_threads); ++i) threads.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
  for (auto& t : threads) t.join();
  impl_->workers->join();
}

}  // namespace hart::serve

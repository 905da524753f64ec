// A small blocking HTTP/1.1 client for the server's tests: real sockets on
// 127.0.0.1, Content-Length and chunked bodies, one request per connection
// unless the caller keeps the Conn.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "nlohmann/json.hpp"

namespace hart::serve_test {

struct HttpResponse {
  int status = 0;  // 0: no answer (connection closed or timed out)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json Json() const {
    auto j = nlohmann::json::parse(body, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  }
  std::string Header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

class Conn {
 public:
  explicit Conn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Conn() { Close(); }
  bool ok() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads more bytes into buf_; false on EOF, error or timeout.
  bool Fill(int timeout_ms = 20000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char b[65536];
    ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }
  // True when the peer closed (EOF) within timeout_ms.
  bool WaitClosed(int timeout_ms) {
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return false;
      char b[4096];
      ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n <= 0) return true;
    }
  }
  bool ReadLine(std::string* line) {
    size_t pos;
    while ((pos = buf_.find("\r\n")) == std::string::npos)
      if (!Fill()) return false;
    *line = buf_.substr(0, pos);
    buf_.erase(0, pos + 2);
    return true;
  }
  bool ReadN(size_t n, std::string* out) {
    while (buf_.size() < n)
      if (!Fill()) return false;
    out->append(buf_, 0, n);
    buf_.erase(0, n);
    return true;
  }
  // Reads a response's status line and headers.
  bool ReadHead(HttpResponse* r) {
    std::string line;
    if (!ReadLine(&line)) return false;
    if (line.size() < 12) return false;
    r->status = std::stoi(line.substr(9, 3));
    while (ReadLine(&line) && !line.empty()) {
      size_t c = line.find(':');
      if (c == std::string::npos) continue;
      std::string v = line.substr(c + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r->headers[absl::AsciiStrToLower(line.substr(0, c))] = v;
    }
    return true;
  }
  // Reads one chunk of a chunked body; false at the last (empty) chunk.
  bool ReadChunk(std::string* out) {
    std::string line;
    if (!ReadLine(&line)) return false;
    size_t n = std::stoul(line, nullptr, 16);
    if (n == 0) {
      ReadLine(&line);
      return false;
    }
    std::string data;
    if (!ReadN(n, &data)) return false;
    out->append(data);
    ReadLine(&line);
    return true;
  }
  HttpResponse ReadResponse(bool head = false) {
    HttpResponse r;
    if (!ReadHead(&r)) return HttpResponse{};
    if (head) return r;
    if (r.Header("transfer-encoding") == "chunked") {
      while (ReadChunk(&r.body)) {
      }
    } else if (!r.Header("content-length").empty()) {
      ReadN(std::stoull(r.Header("content-length")), &r.body);
    }
    return r;
  }
  HttpResponse Request(const std::string& method, const std::string& target, const std::string& body = "",
                       std::map<std::string, std::string> headers = {}) {
    std::string req = method + " " + target + " HTTP/1.1\r\nhost: 127.0.0.1\r\n";
    if (!body.empty() || method == "POST") {
      if (!headers.count("content-type")) headers["content-type"] = "application/json";
      if (!headers.count("content-length")) headers["content-length"] = std::to_string(body.size());
    }
    for (auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n" + body;
    if (!Send(req)) return HttpResponse{};
    return ReadResponse(method == "HEAD");
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buf_;
};

inline HttpResponse Http(uint16_t port, const std::string& method, const std::string& target,
                         const std::string& body = "", std::map<std::string, std::string> headers = {}) {
  Conn c(port);
  if (!c.ok()) return HttpResponse{};
  return c.Request(method, target, body, std::move(headers));
}

}  // namespace hart::serve_test

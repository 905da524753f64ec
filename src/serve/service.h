// Service: `hart serve` minus the command line. It owns the HTTP server, the
// route table, the metrics and the generation slots, and wires every route
// family (ops, REST over app/, OpenAI over app/generate) into one Router.
// Dispatch per request: route match (I/O thread) -> auth hook -> handler
// (worker) -> access log + metrics when the last byte is out.
// Seams for what comes next: SetAuth() (issue 14: bearer tokens), router()
// (issue 15: /mcp registers here like any route). GenerationSlots bound how
// many generations run (and wait); those running on one model are decoded
// together by its app::Engine (continuous batching, prompt cache).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/router.h"
#include "store/store.h"

namespace hart::serve {

struct ServiceOptions {
  ServerOptions http;
  uint64_t max_body = 8ull << 20;     // JSON bodies
  uint64_t max_upload = 16ull << 30;  // POST /api/ingest
  int max_generations = 4;            // running at once: decoded together, one batch per model
  uint64_t prompt_cache_bytes = 256ull << 20;  // K/V of earlier prompts kept per model (0: none)
  int max_queue = 8;                  // waiting for a slot; then 429
  uint64_t mem_budget = 0;            // resident weights of all loaded models together (0: no limit)
  int64_t sql_max_rows = 10000;
  double sql_timeout_seconds = 10;
  std::string web_dir;  // swagger-ui-dist files for /docs ("" : next to the binary)
  std::string ui_dir;   // the built web UI served at / ("" : <binary dir>/web/ui)
  // Origins the UI may fetch besides its own (CSP connect-src): the sign-in
  // provider's discovery and token endpoints when auth is on.
  std::vector<std::string> ui_connect_src;
  bool access_log = true;
  // Sign-in (issue 14): set with SetAuth(). The public values the
  // protected-resource metadata (RFC 9728) and GET /auth/config publish.
  struct AuthInfo {
    std::string issuer;     // "" : sign-in off (the local caller on loopback)
    std::string client_id;  // the web UI's OIDC client (PKCE), may be ""
    std::vector<std::string> scopes;
    std::string discovery;
    // `hart serve --auth keys`: sign-in on with `hart keys` API keys only,
    // no identity provider (issuer "").
    bool api_keys_only = false;
  };
  AuthInfo auth;
  // The server's own base URL as clients reach it ("https://hart.example");
  // "" : http://<Host header>.
  std::string public_url;
};

// Bounded concurrency for generation: max running, max waiting, then 429.
class GenerationSlots {
 public:
  GenerationSlots(int running, int queue, Metrics* m) : max_running_(running), max_queue_(queue), m_(m) {}
  class Slot {
   public:
    explicit Slot(GenerationSlots* s) : s_(s) {}
    Slot(Slot&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (s_) s_->Release();
    }

   private:
    GenerationSlots* s_;
  };
  // Waits for a slot; ResourceExhausted (429, Retry-After) when the queue is
  // full; Cancelled when `cancel` fires while waiting.
  absl::StatusOr<Slot> Acquire(const CancelToken& cancel);

 private:
  void Release();
  int max_running_, max_queue_;
  Metrics* m_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0, waiting_ = 0;
};

using AuthHook = std::function<absl::StatusOr<Caller>(const Request&)>;

class Service {
 public:
  Service(ServiceOptions opts, std::shared_ptr<store::Store> store);
  ~Service();

  // Binds the listener (port 0: any free port).
  absl::Status Listen();
  uint16_t port() const;
  // Serves until SIGTERM/SIGINT (when handle_signals) or Drain(); returns once drained.
  void Run(bool handle_signals = true);
  void Drain();

  // Replaces the default caller (the local user) with a real check; an error
  // answers the request with its status (401 for Unauthenticated).
  void SetAuth(AuthHook hook) { auth_ = std::move(hook); }
  // The base URL clients use, for links in answers (public_url or the Host).
  std::string BaseUrl(const Request& r) const;

  Router& router() { return router_; }
  Metrics& metrics() { return metrics_; }
  GenerationSlots& slots() { return slots_; }
  const ServiceOptions& options() const { return opts_; }
  const std::shared_ptr<store::Store>& store() const { return store_; }
  bool draining() const { return draining_.load(); }
  size_t connections() const;

  // The app context for one request: the shared store, the caller as the
  // audit actor, the request id, and the request's cancel token.
  app::Context ContextFor(const Exchange& ex, const Caller& caller) const;

  // The OpenAPI 3.1 document of the route table.
  nlohmann::json OpenApi() const;

 private:
  ServerHooks Hooks();
  void Dispatch(Exchange& ex);
  std::string BearerChallenge(const Request& r, const absl::Status& s) const;
  void Log(const Request& r, int status, uint64_t bytes, double seconds, bool cancelled);

  ServiceOptions opts_;
  std::shared_ptr<store::Store> store_;
  Router router_;
  Metrics metrics_;
  GenerationSlots slots_;
  AuthHook auth_;
  std::unique_ptr<HttpServer> http_;
  std::atomic<bool> draining_{false};
  std::mutex log_mu_;

 public:
  // State shared by the route families (the model registry of app/models.h
  // lives here once generation lands); opaque to this header.
  struct Extra;
  std::unique_ptr<Extra> extra;
};

// Route families, each in its own routes_*.cc.
void AddOpsRoutes(Service& svc);
void AddRestRoutes(Service& svc);
void AddOpenAiRoutes(Service& svc);
void AddUiRoutes(Service& svc);
void AddAuthRoutes(Service& svc);

// Answers `s` as the OpenAI error object (serve/errors.h).
void RespondError(Exchange& ex, const absl::Status& s, const std::string& param = "");
// Answers JSON with status 200 (or `status`).
void RespondJson(Exchange& ex, const nlohmann::json& j, int status = 200);
// Parses the request body as a JSON object: InvalidArgument naming the
// offset of a syntax error, or "expected a JSON object".
absl::StatusOr<nlohmann::json> ParseJsonBody(const Request& r);

}  // namespace hart::serve

#include "serve/service.h"

#include <sys/time.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "app/errors.h"
#include "serve/errors.h"
#include "serve/service_state.h"

namespace hart::serve {

uint64_t ResidentWeightBytes(Service& s) { return State(s).registry->Stats().resident_bytes; }

absl::StatusOr<GenerationSlots::Slot> GenerationSlots::Acquire(const CancelToken& cancel) {
  std::unique_lock<std::mutex> lock(mu_);
  if (running_ < max_running_ && waiting_ == 0) {
    running_++;
    m_->sessions_in_flight()++;
    return Slot(this);
  }
  if (waiting_ >= max_queue_) {
    m_->AddRejected();
    return app::TooManyRequests(absl::StrFormat("%d generations are running and %d waiting; try again shortly",
                                                running_, waiting_),
                                1);
  }
  waiting_++;
  m_->queue_depth()++;
  while (running_ >= max_running_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (cancel.cancelled()) {
      waiting_--;
      m_->queue_depth()--;
      return absl::CancelledError("the client went away while waiting for a generation slot");
    }
  }
  waiting_--;
  m_->queue_depth()--;
  running_++;
  m_->sessions_in_flight()++;
  return Slot(this);
}

void GenerationSlots::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_--;
    m_->sessions_in_flight()--;
  }
  cv_.notify_one();
}

Service::Service(ServiceOptions opts, std::shared_ptr<store::Store> store)
    : opts_(std::move(opts)),
      store_(std::move(store)),
      slots_(opts_.max_generations, opts_.max_queue, &metrics_) {
  // Workers: every running and queued generation holds one, plus room for
  // the REST routes beside them.
  opts_.http.workers = std::max(opts_.http.workers, opts_.max_generations + opts_.max_queue + 8);
  extra = std::make_unique<Extra>();
  app::RegistryOptions ro;
  ro.budget = opts_.mem_budget;  // all loaded models together
  ro.allow_paths = false;  // a client never names files on the server
  extra->registry = std::make_unique<app::ModelRegistry>(store_, ro);
  // The slots bound admission; each model's engine batches what runs on it.
  app::EngineOptions eo;
  eo.max_batch = opts_.max_generations;
  eo.max_queue = opts_.max_generations + opts_.max_queue;
  eo.prefix_cache_bytes = opts_.prompt_cache_bytes;
  extra->engines = std::make_unique<app::EngineSet>(eo);
  metrics_.SetPromptCacheFn([this] {
    app::PrefixCacheStats s = extra->engines->cache_stats();
    return PromptCacheCounts{s.hits, s.misses, s.evicted, s.hit_tokens, s.bytes, s.entries};
  });
  metrics_.SetResidentBytesFn([this] { return ResidentWeightBytes(*this); });
  metrics_.SetModelsFn([this] {
    const app::RegistryStats st = State(*this).registry->Stats();
    Metrics::ModelGauges g;
    g.budget = st.budget;
    g.saved = st.saved_bytes;
    g.loads = st.loads;
    g.evictions = st.evictions;
    g.streamed_loads = st.streamed_loads;
    g.loaded = st.models.size();
    g.tokenizer_bytes = st.tokenizer_bytes;
    g.tokenizer_saved = st.tokenizer_saved_bytes;
    for (const auto& m : st.models)
      g.per_model.push_back({m.ref, m.residency.resident_bytes, m.residency.shared_bytes, m.residency.tokenizer_bytes});
    return g;
  });
  auth_ = [](const Request&) -> absl::StatusOr<Caller> { return Caller{}; };
  AddOpsRoutes(*this);
  AddRestRoutes(*this);
  AddOpenAiRoutes(*this);
  AddAuthRoutes(*this);
  AddUiRoutes(*this);
}

Service::~Service() = default;

ServerHooks Service::Hooks() {
  ServerHooks h;
  h.body_plan = [this](Request& r) {
    RouteMatch m = router_.Match(r.method, r.path);
    ServerHooks::BodyPlan plan{opts_.max_body, false};
    if (m.route) {
      r.route = m.route->path;
      r.route_ptr = m.route;
      r.params.clear();
      for (auto& [k, v] : m.params) {
        std::string d;
        if (!PercentDecode(v, &d)) {
          r.route_status = 400;
          break;
        }
        r.params[k] = std::move(d);
      }
      if (m.route->upload) plan = {opts_.max_upload, true};
      // An upload is judged before its body is read: sign-in, then the
      // route's own check (may the caller write there?), so a refused
      // caller's bytes are never taken in (issue 14).
      if (m.route->upload && r.route_status == 0 && !m.route->anonymous) {
        absl::StatusOr<Caller> caller = auth_(r);
        if (!caller.ok()) {
          Response resp = ErrorResponse(caller.status());
          if (resp.status == 401) resp.headers["www-authenticate"] = BearerChallenge(r, caller.status());
          plan.reject = std::move(resp);
        } else if (m.route->before_body) {
          absl::Status s = m.route->before_body(r, *caller);
          if (!s.ok()) plan.reject = ErrorResponse(s);
        }
      }
    } else {
      r.route = "unmatched";
      r.route_status = m.path_known ? 405 : 404;
      if (m.path_known) r.params["allow"] = absl::StrJoin(m.allowed, ", ");
      plan.limit = 64 * 1024;
    }
    return plan;
  };
  h.dispatch = [this](Exchange& ex) { Dispatch(ex); };
  h.done = [this](const Request& r, int status, uint64_t bytes, double secs, bool cancelled) {
    metrics_.ObserveRequest(r.route.empty() ? "unmatched" : r.route, r.method.empty() ? "NONE" : r.method, status,
                            secs);
    if (opts_.access_log) Log(r, status, bytes, secs, cancelled);
  };
  return h;
}

void Service::Dispatch(Exchange& ex) {
  const Request& r = ex.request();
  if (!r.route_ptr) {
    if (r.route_status == 405) {
      Response resp = ErrorResponse(405, absl::StrFormat("method %s is not allowed on %s; allowed: %s", r.method,
                                                         r.path, r.params.at("allow")),
                                    "", "method_not_allowed");
      resp.headers["allow"] = r.params.at("allow");
      ex.Respond(std::move(resp));
    } else {
      ex.Respond(ErrorResponse(404, absl::StrFormat("no route for %s %s; see /openapi.json", r.method, r.path), "",
                               "unknown_route"));
    }
    return;
  }
  if (r.route_status == 400) {
    ex.Respond(ErrorResponse(400, "malformed percent-escape in the path \"" + r.path.substr(0, 200) + "\""));
    return;
  }
  const Route& route = *static_cast<const Route*>(r.route_ptr);
  absl::StatusOr<Caller> caller;
  // Probes and the API description answer without sign-in; so do the routes
  // marked anonymous (the sign-in metadata itself).
  static const std::set<std::string> kOpenPaths = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/{file}",
                                                  "/", "/assets/{file}", "/favicon.svg"};  // the web UI signs in itself
  if (route.anonymous || kOpenPaths.count(route.path)) {
    caller = Caller{.actor = "anonymous", .owner = "", .role = app::AccessRole::kReader};
  } else {
    caller = auth_(r);
  }
  if (!caller.ok()) {
    Response resp = ErrorResponse(caller.status());
    if (resp.status == 401) resp.headers["www-authenticate"] = BearerChallenge(r, caller.status());
    ex.Respond(std::move(resp));
    return;
  }
  try {
    route.handler(ex, *caller);
  } catch (const nlohmann::json::exception& e) {
    // A JSON type error that slipped past a reader is the client's input.
    if (!ex.Responded()) RespondError(ex, absl::InvalidArgumentError(std::string("bad JSON value: ") + e.what()));
  }
}

std::string Service::BaseUrl(const Request& r) const {
  if (!opts_.public_url.empty()) {
    std::string u = opts_.public_url;
    while (!u.empty() && u.back() == '/') u.pop_back();
    return u;
  }
  std::string host = r.Header("host");
  // Only what a Host header may hold; anything else falls back to our address.
  bool ok = !host.empty() && host.size() < 256;
  for (char c : host) ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']');
  if (!ok) host = opts_.http.host + ":" + std::to_string(port());
  return "http://" + host;
}

// RFC 6750 section 3 + RFC 9728 section 5.1: the scheme, the error when a
// credential was sent and failed (none when it was missing), and where the
// protected-resource metadata lives, so an MCP client or an SPA can find
// the authorization server from a bare 401.
std::string Service::BearerChallenge(const Request& r, const absl::Status& s) const {
  std::string c = "Bearer realm=\"hart\"";
  if (!r.Header("authorization").empty()) {
    std::string desc;
    for (char ch : std::string(s.message().substr(0, 200)))
      if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') desc.push_back(ch);
    c += ", error=\"invalid_token\", error_description=\"" + desc + "\"";
  }
  c += ", resource_metadata=\"" + BaseUrl(r) + "/.well-known/oauth-protected-resource\"";
  return c;
}

void Service::Log(const Request& r, int status, uint64_t bytes, double secs, bool cancelled) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[40];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  nlohmann::json j = {{"ts", absl::StrFormat("%s.%03dZ", ts, static_cast<int>(tv.tv_usec / 1000))},
                      {"level", status >= 500 ? "error" : "info"},
                      {"msg", "request"},
                      {"request_id", r.request_id},
                      {"trace_id", r.trace_id},
                      {"span_id", r.span_id},
                      {"method", r.method},
                      {"path", r.path},
                      {"route", r.route},
                      {"status", status},
                      {"bytes", bytes},
                      {"duration_ms", secs * 1000},
                      {"remote", r.remote}};
  if (cancelled) j["client_gone"] = true;
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(log_mu_);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

absl::Status Service::Listen() {
  http_ = std::make_unique<HttpServer>(opts_.http, Hooks());
  return http_->Listen();
}

size_t Service::connections() const { return http_ ? http_->connections() : 0; }

uint16_t Service::port() const { return http_ ? http_->port() : 0; }

void Service::Run(bool handle_signals) {
  metrics_.connections_open() = 0;
  http_->Run(handle_signals);
}

void Service::Drain() {
  draining_ = true;
  if (http_) http_->Drain();
}

app::Context Service::ContextFor(const Exchange& ex, const Caller& caller) const {
  app::Context c;
  c.store = store_;
  c.actor = caller.actor;
  c.caller = caller;
  c.request_id = ex.request().request_id;
  c.tty_progress = false;
  c.cancel = &ex.cancel_token();
  return c;
}

void RespondError(Exchange& ex, const absl::Status& s, const std::string& param) {
  ex.Respond(ErrorResponse(s, param));
}

void RespondJson(Exchange& ex, const nlohmann::json& j, int status) {
  ex.Respond(Response::Json(status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

absl::StatusOr<nlohmann::json> ParseJsonBody(const Request& r) {
  if (r.body.empty()) return absl::InvalidArgumentError("request body is empty; expected a JSON object");
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) {
    // Find where: parse again with exceptions for the byte offset.
    try {
      (void)nlohmann::json::parse(r.body);
    } catch (const nlohmann::json::parse_error& e) {
      return absl::InvalidArgumentError(absl::StrFormat("request body is not valid JSON at byte %d", e.byte));
    }
    return absl::InvalidArgumentError("request body is not valid JSON");
  }
  if (!j.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  return j;
}

}  // namespace hart::serve

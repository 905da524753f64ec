#include "mcp/server.h"

#include <algorithm>

#include "app/errors.h"
#include "app/events.h"
#include "fmt/format.h"
#include "mcp/internal.h"

namespace hart::mcp {

using nlohmann::json;

namespace {

constexpr const char* kLevels[] = {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};

constexpr const char* kInstructions =
    "Hartonomous is a database of AI models (weights, tensors, versions, lineage). Start with list_models, "
    "then describe_model; search_components finds tensors and layers by name or role; diff_versions and "
    "similar_models compare versions; sql_query runs one read-only SQL statement over the catalog views "
    "(models, versions, tensors, components, edges); plan_load prices a partial load; generate runs a "
    "completion from a stored model. Resources hart://models/{name}/{version} hold model cards.";

std::string IdKey(const json& id) { return id.dump(); }

}  // namespace

const std::vector<std::string>& SupportedVersions() {
  static const std::vector<std::string> v = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return v;
}

bool IsSupportedVersion(std::string_view v) {
  const auto& s = SupportedVersions();
  return std::find(s.begin(), s.end(), v) != s.end();
}

int LogLevelIndex(std::string_view name) {
  for (int i = 0; i < 8; ++i) {
    if (name == kLevels[i]) return i;
  }
  return -1;
}

RpcError RpcErrorFor(const absl::Status& s, int not_found_code) {
  RpcError e;
  e.message = std::string(s.message());
  e.data = {{"type", std::string(app::ErrorType(s))}};
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      e.code = kInvalidParams;
      break;
    case absl::StatusCode::kNotFound:
      e.code = not_found_code;
      break;
    default:
      e.code = kInternalError;
  }
  return e;
}

// --- Session ---------------------------------------------------------------

std::string Session::protocol_version() const {
  std::lock_guard l(mu_);
  return version_;
}

bool Session::initialized() const {
  std::lock_guard l(mu_);
  return initialized_;
}

void Session::SetNotify(Emit e) {
  std::lock_guard l(mu_);
  notify_ = std::move(e);
}

bool Session::Notify(const json& msg) {
  Emit e;
  {
    std::lock_guard l(mu_);
    e = notify_;
  }
  return e ? e(msg) : false;
}

void Session::CancelAll() {
  std::lock_guard l(mu_);
  for (auto& [k, t] : in_flight_) t->Cancel();
}

// --- Call ------------------------------------------------------------------

bool Server::Call::Progress(double progress, std::optional<double> total, const std::string& message) const {
  if (progress_token.is_null() || !emit) return true;
  json p = {{"progressToken", progress_token}, {"progress", progress}};
  if (total) p["total"] = *total;
  if (!message.empty() && version != "2025-03-26") p["message"] = message;
  return emit(Notification("notifications/progress", std::move(p)));
}

void Server::Call::Log(std::string_view level, const json& data) const {
  int idx = LogLevelIndex(level);
  int min;
  {
    std::lock_guard l(session->mu_);
    min = session->log_level_;
  }
  if (idx < 0 || idx < min || !emit) return;
  emit(Notification("notifications/message", {{"level", level}, {"logger", "hartonomous"}, {"data", data}}));
}

// --- Server ----------------------------------------------------------------

Server::Server(ServerOptions opts, std::shared_ptr<store::Store> store)
    : opts_(std::move(opts)), store_(std::move(store)) {
  registry_ = opts_.registry;
  if (!registry_) {
    own_registry_ = std::make_unique<app::ModelRegistry>(store_, app::RegistryOptions{});
    registry_ = own_registry_.get();
  }
}

Server::~Server() {
  stop_.store(true);
  stop_token_.Cancel();
  if (watcher_.joinable()) watcher_.join();
}

void Server::Attach(const std::shared_ptr<Session>& s) {
  std::lock_guard l(sessions_mu_);
  sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(), [](auto& w) { return w.expired(); }),
                  sessions_.end());
  sessions_.push_back(s);
  if (!watcher_.joinable()) watcher_ = std::thread([this] { WatchOutbox(); });
}

void Server::Detach(const Session* s) {
  std::lock_guard l(sessions_mu_);
  sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                 [s](auto& w) {
                                   auto p = w.lock();
                                   return !p || p.get() == s;
                                 }),
                  sessions_.end());
}

void Server::WatchOutbox() {
  app::Context ctx;
  ctx.store = store_;
  ctx.cancel = &stop_token_;
  // Start after the newest event: only what lands from now on is news.
  int64_t last = 0;
  for (;;) {
    auto r = app::Events(ctx, app::EventsRequest{.after = last, .limit = 10000});
    if (!r.ok() || r->events.empty()) break;
    last = r->last_id;
  }
  (void)app::FollowEvents(
      ctx, last,
      [this](const store::Event& e) {
        OnEvent(e);
        return !stop_.load();
      },
      opts_.outbox_poll);
}

void Server::OnEvent(const store::Event& e) {
  std::string model;
  bool versions_changed = e.kind == "version.created" || e.kind == "version.deleted";
  if (versions_changed && e.payload.is_object() && e.payload.contains("model") && e.payload["model"].is_string()) {
    model = e.payload["model"].get<std::string>();
  }
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard l(sessions_mu_);
    for (auto& w : sessions_) {
      if (auto p = w.lock()) live.push_back(std::move(p));
    }
  }
  for (auto& s : live) {
    std::vector<std::string> uris;
    {
      std::lock_guard l(s->mu_);
      if (s->version_.empty()) continue;
      for (const auto& u : s->subscriptions) {
        if (u == "hart://store/stats" || (!model.empty() && ModelOfUri(u) == model)) uris.push_back(u);
      }
    }
    if (versions_changed) s->Notify(Notification("notifications/resources/list_changed", json::object()));
    for (const auto& u : uris) s->Notify(Notification("notifications/resources/updated", {{"uri", u}}));
  }
}

std::string Server::HandleText(const std::shared_ptr<Session>& session, std::string_view text,
                               const app::Caller& caller, const Emit& emit) {
  Parsed p = ParseMessage(text, opts_.max_message);
  if (!p.ok) return Serialize(ErrorResponse(nullptr, p.error));
  json out = HandleValue(session, p.value, caller, emit);
  return out.is_null() ? std::string() : Serialize(out);
}

json Server::HandleValue(const std::shared_ptr<Session>& session, const json& msg, const app::Caller& caller,
                         const Emit& emit) {
  if (msg.is_array()) {
    std::string v = session->protocol_version();
    if (v != "2025-03-26") {
      return ErrorResponse(nullptr, {kInvalidRequest, fmt::format("JSON-RPC batches are not supported in MCP revision "
                                                                  "{}; send one message at a time",
                                                                  v.empty() ? kLatestVersion : v)});
    }
    if (msg.empty()) return ErrorResponse(nullptr, {kInvalidRequest, "an empty batch"});
    json out = json::array();
    for (const auto& m : msg) {
      if (m.is_array()) {
        out.push_back(ErrorResponse(nullptr, {kInvalidRequest, "a batch inside a batch"}));
        continue;
      }
      Message c = Classify(m);
      if (c.kind == Kind::kRequest && c.method == "initialize") {
        out.push_back(ErrorResponse(c.id, {kInvalidRequest, "initialize must not be part of a batch"}));
        continue;
      }
      json r = HandleValue(session, m, caller, emit);
      if (!r.is_null()) out.push_back(std::move(r));
    }
    return out.empty() ? json(nullptr) : out;
  }
  Message m = Classify(msg);
  switch (m.kind) {
    case Kind::kInvalid:
      // A notification with bad params gets no answer (it has no id to answer).
      if (m.error.code == kInvalidParams && !msg.contains("id")) return nullptr;
      return ErrorResponse(m.id, m.error);
    case Kind::kResponse:
      return nullptr;  // this server sends no requests
    case Kind::kNotification: {
      if (m.method == "notifications/initialized") {
        std::lock_guard l(session->mu_);
        if (!session->version_.empty()) session->initialized_ = true;
      } else if (m.method == "notifications/cancelled") {
        auto rid = m.params.find("requestId");
        if (rid != m.params.end()) {
          std::lock_guard l(session->mu_);
          auto it = session->in_flight_.find(IdKey(*rid));
          if (it != session->in_flight_.end()) it->second->Cancel();
        }
      }
      return nullptr;  // unknown notifications are ignored, as JSON-RPC says
    }
    case Kind::kRequest:
      return Dispatch(session, m, caller, emit);
  }
  return nullptr;
}

json Server::Dispatch(const std::shared_ptr<Session>& s, const Message& m, const app::Caller& caller,
                      const Emit& emit) {
  const json& params = m.params;
  if (m.method == "ping") return ResultResponse(m.id, json::object());
  if (m.method == "initialize") {
    auto pv = params.find("protocolVersion");
    if (pv == params.end() || !pv->is_string()) {
      return ErrorResponse(m.id, {kInvalidParams, "initialize: field 'protocolVersion' must be a string"});
    }
    if (params.contains("capabilities") && !params["capabilities"].is_object()) {
      return ErrorResponse(m.id, {kInvalidParams, "initialize: field 'capabilities' must be an object"});
    }
    std::string asked = pv->get<std::string>();
    std::string version = IsSupportedVersion(asked) ? asked : kLatestVersion;
    {
      std::lock_guard l(s->mu_);
      if (!s->version_.empty()) {
        return ErrorResponse(m.id, {kInvalidRequest, "the session is already initialized"});
      }
      s->version_ = version;
    }
    json info = {{"name", "hartonomous"}, {"version", "0.1.0"}};
    if (version != "2025-03-26") info["title"] = "Hartonomous model database";
    json caps = {{"tools", {{"listChanged", false}}},
                 {"resources", {{"subscribe", true}, {"listChanged", true}}},
                 {"prompts", {{"listChanged", false}}},
                 {"completions", json::object()},
                 {"logging", json::object()}};
    return ResultResponse(m.id, {{"protocolVersion", version},
                                 {"capabilities", caps},
                                 {"serverInfo", info},
                                 {"instructions", kInstructions}});
  }
  std::string version = s->protocol_version();
  if (version.empty()) {
    return ErrorResponse(m.id, {kInvalidRequest, fmt::format("'{}' before initialize: send initialize first", m.method)});
  }

  // Requests that may run long register a token notifications/cancelled fires.
  auto token = std::make_shared<CancelToken>();
  std::string key = IdKey(m.id);
  {
    std::lock_guard l(s->mu_);
    if (!s->in_flight_.emplace(key, token).second) {
      return ErrorResponse(m.id, {kInvalidRequest, fmt::format("request id {} is already in flight", key)});
    }
  }
  struct Done {
    Session* s;
    std::string key;
    ~Done() {
      std::lock_guard l(s->mu_);
      s->in_flight_.erase(key);
    }
  } done{s.get(), key};

  Call call{.server = *this, .session = s, .ctx = {}, .progress_token = nullptr, .emit = emit, .version = version};
  call.ctx.store = store_;
  call.ctx.actor = caller.actor;
  call.ctx.caller = caller;
  call.ctx.request_id = fmt::format("mcp:{}:{}", s->id(), key);
  call.ctx.cancel = token.get();
  if (auto meta = params.find("_meta"); meta != params.end() && meta->is_object()) {
    auto pt = meta->find("progressToken");
    if (pt != meta->end() && (pt->is_string() || pt->is_number_integer())) call.progress_token = *pt;
  }

  auto answer = [&](const absl::StatusOr<json>& r, int not_found = kInvalidParams) {
    if (!r.ok()) return ErrorResponse(m.id, RpcErrorFor(r.status(), not_found));
    return ResultResponse(m.id, *r);
  };
  if (m.method == "tools/list") return ResultResponse(m.id, ListTools(*this, caller, version));
  if (m.method == "tools/call") return answer(CallTool(call, params));
  if (m.method == "resources/list") return answer(ListResources(call, params));
  if (m.method == "resources/templates/list") return ResultResponse(m.id, ListResourceTemplates());
  if (m.method == "resources/read") return answer(ReadResource(call, params), kResourceNotFound);
  if (m.method == "resources/subscribe" || m.method == "resources/unsubscribe") {
    auto uri = params.find("uri");
    if (uri == params.end() || !uri->is_string()) {
      return ErrorResponse(m.id, {kInvalidParams, m.method + ": field 'uri' must be a string"});
    }
    std::string u = uri->get<std::string>();
    absl::Status st = CheckResourceUri(u);
    if (!st.ok()) return ErrorResponse(m.id, RpcErrorFor(st, kResourceNotFound));
    std::lock_guard l(s->mu_);
    if (m.method == "resources/subscribe") {
      if (s->subscriptions.size() >= 1000) {
        return ErrorResponse(m.id, {kInvalidParams, "at most 1000 subscriptions per session"});
      }
      s->subscriptions.insert(u);
    } else {
      s->subscriptions.erase(u);
    }
    return ResultResponse(m.id, json::object());
  }
  if (m.method == "prompts/list") return ResultResponse(m.id, ListPrompts());
  if (m.method == "prompts/get") return answer(GetPrompt(call, params));
  if (m.method == "completion/complete") return answer(CompleteArgument(call, params));
  if (m.method == "logging/setLevel") {
    auto lv = params.find("level");
    int idx = (lv != params.end() && lv->is_string()) ? LogLevelIndex(lv->get<std::string>()) : -1;
    if (idx < 0) {
      return ErrorResponse(m.id, {kInvalidParams, "logging/setLevel: field 'level' must be one of debug, info, notice, "
                                                  "warning, error, critical, alert, emergency"});
    }
    std::lock_guard l(s->mu_);
    s->log_level_ = idx;
    return ResultResponse(m.id, json::object());
  }
  return ErrorResponse(m.id, {kMethodNotFound, fmt::format("method '{}' not found", m.method)});
}

}  // namespace hart::mcp

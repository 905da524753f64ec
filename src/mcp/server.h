// mcp::Server: Hartonomous as a Model Context Protocol server, independent of
// the transport. A transport (stdio.h: newline-delimited JSON on stdin and
// stdout; http.h: Streamable HTTP at /mcp on `hart serve`) hands it each
// message it reads with the Session it belongs to and the Caller who sent
// it, and writes back what it returns and what it emits.
//
// Revisions: 2025-11-25 (newest), negotiated down to 2025-06-18 and
// 2025-03-26 when the client asks (2025-03-26: batches accepted, no
// structured tool output or titles). Every tool, resource and prompt runs
// the use cases of src/app/ with an app::Context carrying the caller, so the
// access rule of src/app/ applies unchanged; nothing here touches the store.
//
// Threads: HandleText() may run concurrently for one session (a long
// tools/call and the notifications/cancelled that stops it); the session's
// state is guarded by its own mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "app/caller.h"
#include "app/context.h"
#include "app/models.h"
#include "core/cancel.h"
#include "mcp/jsonrpc.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::app {
class EngineSet;
}

namespace hart::mcp {

inline constexpr const char* kLatestVersion = "2025-11-25";
// Newest first.
const std::vector<std::string>& SupportedVersions();
bool IsSupportedVersion(std::string_view v);

// Takes one generation slot (the server's bounded queue); the slot is
// released when the returned handle dies.
using SlotFn = std::function<absl::StatusOr<std::shared_ptr<void>>(const CancelToken&)>;

struct ServerOptions {
  bool enable_writes = false;  // offer ingest and delete_version (to callers whose role allows)
  // Remote transport (HTTP): no tool takes a path on the server's disk.
  bool remote = false;
  int64_t sql_max_rows = 1000;        // cap on sql_query rows (a request may ask for fewer)
  double sql_timeout_seconds = 10;    // cap on sql_query time
  int64_t max_generate_tokens = 1024; // cap on generate's max_tokens
  size_t max_message = kDefaultMaxMessage;
  std::chrono::milliseconds outbox_poll{250};
  // generate: the models (shared with the server's OpenAI routes over HTTP).
  // Null: Server makes one of its own.
  app::ModelRegistry* registry = nullptr;
  SlotFn generation_slot;  // null: no limit
  // The server's batching engines (and prompt cache), so generate batches
  // with the OpenAI routes; null: each generation runs alone.
  app::EngineSet* engines = nullptr;
};

// Where a message goes: returns false once the peer is gone.
using Emit = std::function<bool(const nlohmann::json&)>;

// One client's connection state: negotiated revision, log level,
// subscriptions, and the requests in flight (for cancellation).
class Session {
 public:
  Session(std::string id, app::Caller owner) : id_(std::move(id)), owner_(std::move(owner)) {}
  const std::string& id() const { return id_; }
  const app::Caller& owner() const { return owner_; }
  std::string protocol_version() const;
  bool initialized() const;
  // Unsolicited messages (resource updates, list changes, logs outside a
  // request). Unset: they are dropped.
  void SetNotify(Emit e);
  bool Notify(const nlohmann::json& msg);
  // Cancels every request in flight (the session ends).
  void CancelAll();

 private:
  friend class Server;
  const std::string id_;
  const app::Caller owner_;
  mutable std::mutex mu_;
  std::string version_;      // "" until initialize
  bool initialized_ = false; // notifications/initialized seen
  int log_level_ = 8;        // index into the syslog levels; 8: nothing sent until setLevel
  std::set<std::string> subscriptions;
  std::map<std::string, std::shared_ptr<CancelToken>> in_flight_;  // by the request id's dump
  Emit notify_;
};

class Server {
 public:
  Server(ServerOptions opts, std::shared_ptr<store::Store> store);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Handles one message text (a request, a notification, a response, or a
  // 2025-03-26 batch) and returns the text to send back: "" when nothing
  // answers (notifications and responses only). `emit` carries the messages
  // tied to a request while it runs (progress, logs).
  std::string HandleText(const std::shared_ptr<Session>& session, std::string_view text, const app::Caller& caller,
                         const Emit& emit);
  // The same for one parsed value; null when nothing answers.
  nlohmann::json HandleValue(const std::shared_ptr<Session>& session, const nlohmann::json& msg,
                             const app::Caller& caller, const Emit& emit);

  // Sessions that hear outbox notifications (resources/list_changed and
  // resources/updated for their subscriptions). Detach before a session dies.
  void Attach(const std::shared_ptr<Session>& s);
  void Detach(const Session* s);

  const ServerOptions& options() const { return opts_; }
  const std::shared_ptr<store::Store>& store() const { return store_; }
  app::ModelRegistry& registry() { return *registry_; }

  // Tool, resource and prompt tables (tools.cc, resources.cc).
  struct Call;
  struct Tool;
  struct Prompt;

 private:
  nlohmann::json Dispatch(const std::shared_ptr<Session>& s, const Message& m, const app::Caller& caller,
                          const Emit& emit);
  void WatchOutbox();
  void OnEvent(const store::Event& e);

  ServerOptions opts_;
  std::shared_ptr<store::Store> store_;
  std::unique_ptr<app::ModelRegistry> own_registry_;
  app::ModelRegistry* registry_ = nullptr;
  std::mutex sessions_mu_;
  std::vector<std::weak_ptr<Session>> sessions_;
  std::atomic<bool> stop_{false};
  CancelToken stop_token_;
  std::thread watcher_;
};

// The syslog level names of logging/setLevel, most verbose first.
int LogLevelIndex(std::string_view name);  // -1: unknown

}  // namespace hart::mcp

// What server.cc shares with the tool, resource and prompt tables
// (tools.cc, resources.cc): the per-request context and the tables' entry
// points. Internal to src/mcp/.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "mcp/server.h"
#include "nlohmann/json.hpp"

namespace hart::mcp {

// One request as a table entry sees it.
struct Server::Call {
  Server& server;
  std::shared_ptr<Session> session;
  app::Context ctx;                   // store, caller, cancel token
  nlohmann::json progress_token;      // params._meta.progressToken, null when none
  Emit emit;                          // messages tied to this request
  std::string version;                // the session's revision
  // A notifications/progress for this request; false when the client is gone.
  bool Progress(double progress, std::optional<double> total, const std::string& message) const;
  // A notifications/message when the session's level lets `level` through.
  void Log(std::string_view level, const nlohmann::json& data) const;
};

// Errors of the tables: InvalidArgument -> -32602, NotFound -> -32602
// (-32002 for resources/read), else -32603 with data.type.
RpcError RpcErrorFor(const absl::Status& s, int not_found_code = kInvalidParams);

// tools.cc
nlohmann::json ListTools(const Server& srv, const app::Caller& caller, const std::string& version);
absl::StatusOr<nlohmann::json> CallTool(Server::Call& call, const nlohmann::json& params);

// resources.cc
absl::StatusOr<nlohmann::json> ListResources(Server::Call& call, const nlohmann::json& params);
nlohmann::json ListResourceTemplates();
absl::StatusOr<nlohmann::json> ReadResource(Server::Call& call, const nlohmann::json& params);
// Whether a resources/subscribe URI is one this server serves (form only).
absl::Status CheckResourceUri(std::string_view uri);
// The model a resource URI names ("" for the store's statistics).
std::string ModelOfUri(std::string_view uri);
nlohmann::json ListPrompts();
absl::StatusOr<nlohmann::json> GetPrompt(Server::Call& call, const nlohmann::json& params);
absl::StatusOr<nlohmann::json> CompleteArgument(Server::Call& call, const nlohmann::json& params);

}  // namespace hart::mcp

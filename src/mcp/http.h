// MCP's Streamable HTTP transport at /mcp on `hart serve`, registered in
// the service's route table like any route (so the server's auth hook gives
// every message its caller):
//   POST   one JSON-RPC message (a 2025-03-26 batch too). Answered as JSON,
//          or, for tools/call when the client accepts it, as an SSE stream
//          carrying the call's progress and logs and then its result.
//          Notifications and responses only: 202.
//   GET    an SSE stream of the session's unsolicited messages (resource
//          updates, list changes), with a keep-alive comment every 15 s;
//          at most a quarter of the server's workers hold one (then 429).
//   DELETE ends the session.
// initialize creates a session (Mcp-Session-Id in the answer); every later
// request must carry it (400 without, 404 for an unknown or ended one, or
// one begun by another signed-in owner). An unsupported MCP-Protocol-Version
// is 400; an Origin that OriginAllowed refuses is 403 (DNS rebinding).
#pragma once

#include <memory>

#include "mcp/server.h"
#include "serve/service.h"

namespace hart::mcp {

struct HttpOptions {
  bool enable_writes = false;
  size_t max_sessions = 1000;
  std::chrono::seconds session_idle{3600};  // an unused session is dropped after this
};

// Adds POST/GET/DELETE /mcp to svc's router. The MCP server shares the
// service's store, model registry, generation slots and SQL caps.
void AddMcpRoutes(serve::Service& svc, HttpOptions opts = {});

// Whether an Origin header value may call /mcp: a loopback origin
// (localhost, 127.0.0.0/8, [::1]) always; the request's own Host only for a
// signed-in caller (a DNS-rebinding page also has a matching Host, but no
// token); anything else, "null" included, never.
bool OriginAllowed(std::string_view origin, std::string_view host, bool authenticated);

}  // namespace hart::mcp

// app::Caller: who is asking. The CLI is the local owner with every right
// over its own store; the server fills one per request from a verified
// bearer token or API key (issue 14). Every use case of src/app/ that reads
// or writes models decides what the caller may see and change from this one
// value, so the REST API, the OpenAI API, MCP and the web UI share one rule.
#pragma once

#include <cstdint>
#include <string>

namespace hart::app {

// App roles (the token's `roles` claim, or an API key's role).
enum class AccessRole : uint8_t {
  kReader,       // reads what is visible to it
  kContributor,  // also creates and changes its own models
  kAdmin,        // everything
};

struct Caller {
  std::string actor = "local";   // the audit name (user, API key name)
  std::string owner = "local";   // the owner identity: "local", or "<iss>|<oid or sub>"
  std::string tenant;            // the token's tenant (`tid`), "" when none
  AccessRole role = AccessRole::kAdmin;  // the local user owns its store
  bool authenticated = false;    // from a verified token or key (false: local/loopback default)
};

}  // namespace hart::app

// The `hart serve --auth FILE` settings: which OpenID Connect provider the
// server trusts and how a token's claims become an app::Caller. See
// docs/AUTH.md for each field.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hart::auth {

struct AuthConfig {
  std::string issuer;                  // required: the `iss` tokens must carry
  std::vector<std::string> audience;   // required: one of these must be in `aud`
  std::string discovery;               // default {issuer}/.well-known/openid-configuration
  std::vector<std::string> tenants;    // allowed `tid`s; empty: any (or none)
  std::vector<std::string> owner_claim = {"oid", "sub"};  // first present one names the caller
  std::string roles_claim = "roles";   // dotted path to the roles array (Keycloak: realm_access.roles)
  int64_t clock_skew_seconds = 60;
  double http_timeout_seconds = 5;     // each discovery/JWKS fetch, connect + read, total
  double jwks_min_refresh_seconds = 30;  // at most one refetch per this, on an unknown kid
  double jwks_max_age_seconds = 3600;    // refetch in the background of a request after this
  bool allow_http = false;             // plain http to a non-loopback provider (never in production)
  // For the web UI's own PKCE sign-in (GET /auth/config): public values only.
  std::string client_id;
  std::vector<std::string> scopes = {"openid", "profile"};
};

// Reads the JSON settings; InvalidArgument naming `source` and the field for
// a missing or mistyped field or an unknown one.
absl::StatusOr<AuthConfig> ParseAuthConfig(std::string_view json, std::string_view source);
absl::StatusOr<AuthConfig> LoadAuthConfig(const std::string& path);

}  // namespace hart::auth

// Authenticator: an `Authorization` header in, an app::Caller out. A bearer
// JWT is parsed (jwt.h), its key fetched by kid (key_source.h), its
// signature verified (jwks.h) and its claims checked against the settings
// (config.h): iss exact, aud containing one of ours, exp/nbf/iat within the
// clock skew, tid in the allow-list when there is one. The caller is
// "<iss>|<oid>" (Entra's stable object id) else "<iss>|<sub>"; the tenant is
// `tid`; the role the highest of Reader/Contributor/Admin in the roles claim
// (none: Reader). A bearer "hart_..." is an API key, looked up by its hash.
//
// Errors: Unauthenticated (401) for every bad credential, with a message
// that names what was wrong and never echoes the token; Unavailable (503)
// when the provider cannot be read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "app/caller.h"
#include "auth/config.h"
#include "auth/key_source.h"
#include "nlohmann/json.hpp"

namespace hart::auth {

// API keys: "hart_" + 43 base64url characters (32 random bytes). Only the
// SHA-256 (hex) of the whole string is stored.
inline constexpr std::string_view kApiKeyPrefix = "hart_";
std::string NewApiKeySecret();
std::string ApiKeyHash(std::string_view secret);

// Looks up an API key by its hash: the caller it stands for, or
// Unauthenticated for an unknown or revoked key.
using ApiKeyLookup = std::function<absl::StatusOr<app::Caller>(const std::string& hash)>;

// Parses a role name as in tokens and `hart keys create --role`:
// Reader, Contributor, Admin, case-insensitive, optionally with a prefix
// ("Hart.Admin"). InvalidArgument otherwise.
absl::StatusOr<app::AccessRole> ParseRole(std::string_view name);
std::string_view RoleName(app::AccessRole r);

class Authenticator {
 public:
  using WallClock = std::function<int64_t()>;  // seconds since the epoch
  // `keys` may be null (API keys only); `api_keys` may be empty (tokens only).
  Authenticator(AuthConfig config, std::shared_ptr<KeySource> keys, ApiKeyLookup api_keys = nullptr,
                WallClock now = nullptr);

  // The full check of one `Authorization` header value.
  absl::StatusOr<app::Caller> Authenticate(std::string_view authorization) const;
  // The claims check alone (after the signature): exposed for tests.
  absl::StatusOr<app::Caller> CallerFromClaims(const nlohmann::json& claims) const;

  const AuthConfig& config() const { return config_; }

 private:
  int64_t Now() const;
  AuthConfig config_;
  std::shared_ptr<KeySource> keys_;
  ApiKeyLookup api_keys_;
  WallClock now_;
};

}  // namespace hart::auth

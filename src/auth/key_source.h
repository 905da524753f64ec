// Where the signing keys come from. OidcKeySource reads the provider's
// discovery document (its `jwks_uri`, checking its `issuer`), then the JWKS,
// and caches the keys by kid. An unknown kid (key rotation) triggers a
// refetch at most once per jwks_min_refresh_seconds; keys older than
// jwks_max_age_seconds are refetched on the next request, and kept when the
// refetch fails. Every fetch has one total deadline (http_timeout_seconds)
// and a size cap, so a slow, down or garbage-serving provider costs a request
// at most that long and answers Unavailable (503), never a hang.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "auth/config.h"
#include "auth/jwks.h"

namespace hart::auth {

class KeySource {
 public:
  virtual ~KeySource() = default;
  // The key for `kid`: Unauthenticated when the provider has no such key,
  // Unavailable when the provider cannot be reached or answers garbage.
  virtual absl::StatusOr<std::shared_ptr<const PublicKey>> Get(const std::string& kid) = 0;
};

// GET `url` (http or https) with a total deadline and a size cap: the body
// of a 200, Unavailable otherwise (naming the URL and what went wrong).
absl::StatusOr<std::string> HttpGet(const std::string& url, double timeout_seconds, size_t max_bytes,
                                    bool allow_http);

struct ProviderMetadata {
  std::string issuer, jwks_uri, authorization_endpoint, token_endpoint;
};

class OidcKeySource : public KeySource {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit OidcKeySource(AuthConfig config, Clock clock = nullptr);
  absl::StatusOr<std::shared_ptr<const PublicKey>> Get(const std::string& kid) override;
  // The discovery document's endpoints (fetching it when not yet known).
  absl::StatusOr<ProviderMetadata> Metadata();
  int fetches() const;  // JWKS fetches so far (tests check the rate limit)

 private:
  absl::Status RefreshLocked();  // discovery (once) + JWKS
  std::chrono::steady_clock::time_point Now() const;

  AuthConfig config_;
  Clock clock_;
  mutable std::mutex mu_;
  ProviderMetadata meta_;
  bool have_meta_ = false;
  KeySet keys_;
  bool have_keys_ = false;
  bool tried_ = false;
  absl::Status last_error_;
  std::chrono::steady_clock::time_point last_fetch_{};
  std::chrono::steady_clock::time_point keys_at_{};
  int fetches_ = 0;
};

}  // namespace hart::auth

#include "auth/key_source.h"

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace hart::auth {
namespace {

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  return true;
}

}  // namespace

absl::StatusOr<std::string> HttpGet(const std::string& url, double timeout_seconds, size_t max_bytes,
                                    bool allow_http) {
  std::string_view rest = url;
  bool https = false;
  if (ConsumePrefix(&rest, "https://")) {
    https = true;
  } else if (!ConsumePrefix(&rest, "http://")) {
    return absl::UnavailableError(absl::StrCat("auth provider URL \"", url, "\" is not http(s)"));
  }
  size_t slash = rest.find('/');
  std::string hostport(rest.substr(0, slash));
  std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string host = hostport;
  if (size_t c = hostport.rfind(':'); c != std::string::npos && hostport.find(']') == std::string::npos) host = hostport.substr(0, c);
  if (!https && !allow_http && !IsLoopbackHost(host))
    return absl::UnavailableError(absl::StrCat("auth provider URL \"", url,
                                               "\": plain http is allowed to loopback only (set allow_http to override)"));
  httplib::Client cli(absl::StrCat(https ? "https://" : "http://", hostport));
  auto secs = static_cast<time_t>(timeout_seconds);
  auto usecs = static_cast<time_t>((timeout_seconds - static_cast<double>(secs)) * 1e6);
  cli.set_connection_timeout(secs, usecs);
  cli.set_read_timeout(secs, usecs);
  cli.set_write_timeout(secs, usecs);
  cli.set_follow_location(false);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeout_seconds * 1e6));
  std::string body;
  bool too_big = false, too_slow = false;
  auto res = cli.Get(path, [&](const char* data, size_t len) {
    if (std::chrono::steady_clock::now() > deadline) {
      too_slow = true;
      return false;
    }
    if (body.size() + len > max_bytes) {
      too_big = true;
      return false;
    }
    body.append(data, len);
    return true;
  });
  if (too_big) return absl::UnavailableError(absl::StrCat("auth provider: ", url, " answered more than ", max_bytes, " bytes"));
  if (too_slow) return absl::UnavailableError(absl::StrCat("auth provider: ", url, " did not answer within ", timeout_seconds, " s"));
  if (!res) return absl::UnavailableError(absl::StrCat("auth provider: ", url, ": ", httplib::to_string(res.error())));
  if (res->status != 200) return absl::UnavailableError(absl::StrCat("auth provider: ", url, " answered HTTP ", res->status));
  return body;
}

OidcKeySource::OidcKeySource(AuthConfig config, Clock clock) : config_(std::move(config)), clock_(std::move(clock)) {}

std::chrono::steady_clock::time_point OidcKeySource::Now() const {
  return clock_ ? clock_() : std::chrono::steady_clock::now();
}

int OidcKeySource::fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetches_;
}

absl::Status OidcKeySource::RefreshLocked() {
  tried_ = true;
  last_fetch_ = Now();
  fetches_++;
  if (!have_meta_) {
    auto doc = HttpGet(config_.discovery, config_.http_timeout_seconds, 256 * 1024, config_.allow_http);
    if (!doc.ok()) return doc.status();
    nlohmann::json j = nlohmann::json::parse(*doc, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return absl::UnavailableError(absl::StrCat("auth provider: ", config_.discovery, " is not a JSON object"));
    auto s = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    ProviderMetadata m{s("issuer"), s("jwks_uri"), s("authorization_endpoint"), s("token_endpoint")};
    if (m.issuer != config_.issuer)
      return absl::UnavailableError(absl::StrCat("auth provider: discovery document's issuer \"", m.issuer.substr(0, 200),
                                                 "\" is not the configured \"", config_.issuer, "\""));
    if (m.jwks_uri.empty()) return absl::UnavailableError("auth provider: discovery document has no jwks_uri");
    meta_ = m;
    have_meta_ = true;
  }
  auto jwks = HttpGet(meta_.jwks_uri, config_.http_timeout_seconds, kMaxJwksBytes, config_.allow_http);
  if (!jwks.ok()) return jwks.status();
  auto keys = ParseJwks(*jwks);
  if (!keys.ok()) return absl::UnavailableError(absl::StrCat("auth provider: ", meta_.jwks_uri, ": ", keys.status().message()));
  keys_ = std::move(*keys);
  have_keys_ = true;
  keys_at_ = last_fetch_;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const PublicKey>> OidcKeySource::Get(const std::string& kid) {
  std::lock_guard<std::mutex> lock(mu_);
  using secs = std::chrono::duration<double>;
  const auto now = Now();
  const bool may_fetch = !tried_ || secs(now - last_fetch_).count() >= config_.jwks_min_refresh_seconds;
  const bool stale = have_keys_ && secs(now - keys_at_).count() >= config_.jwks_max_age_seconds;
  auto it = keys_.find(kid);
  if ((it == keys_.end() || stale) && may_fetch) {
    last_error_ = RefreshLocked();
    it = keys_.find(kid);
  }
  if (it != keys_.end()) return it->second;
  // No key: a provider we could not read is Unavailable; one that has
  // answered and does not know the kid makes the token invalid.
  if (!have_keys_) {
    return last_error_.ok() ? absl::UnavailableError("auth provider: no signing keys yet") : last_error_;
  }
  if (!last_error_.ok()) return last_error_;  // the provider is down: we cannot tell
  return absl::UnauthenticatedError("bearer token: signed with a key (kid) the provider does not publish");
}

absl::StatusOr<ProviderMetadata> OidcKeySource::Metadata() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!have_meta_) {
    using secs = std::chrono::duration<double>;
    if (tried_ && secs(Now() - last_fetch_).count() < config_.jwks_min_refresh_seconds) {
      return last_error_.ok() ? absl::UnavailableError("auth provider: discovery not read yet") : last_error_;
    }
    last_error_ = RefreshLocked();
    if (!have_meta_) return last_error_;
  }
  return meta_;
}

}  // namespace hart::auth

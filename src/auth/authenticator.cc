#include "auth/authenticator.h"

#include <openssl/rand.h>

#include <ctime>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "auth/jwt.h"
#include "core/sha256.h"

namespace hart::auth {
namespace {

absl::Status Bad(std::string_view what) { return absl::UnauthenticatedError("bearer token: " + std::string(what)); }

// A NumericDate claim: absent is ok unless required; present must be a number.
absl::StatusOr<std::optional<int64_t>> Date(const nlohmann::json& c, const char* name, bool required) {
  auto it = c.find(name);
  if (it == c.end()) {
    if (required) return Bad(absl::StrCat("no \"", name, "\" claim"));
    return std::optional<int64_t>();
  }
  if (!it->is_number()) return Bad(absl::StrCat("\"", name, "\" is not a number"));
  double d = it->get<double>();
  if (!(d > -1e15 && d < 1e15)) return Bad(absl::StrCat("\"", name, "\" is out of range"));
  return std::optional<int64_t>(static_cast<int64_t>(d));
}

}  // namespace

std::string NewApiKeySecret() {
  unsigned char buf[32];
  if (RAND_bytes(buf, sizeof buf) != 1) std::abort();  // no randomness: never mint a weak key
  return absl::StrCat(std::string(kApiKeyPrefix), Base64UrlEncode(std::string_view(reinterpret_cast<char*>(buf), sizeof buf)));
}

std::string ApiKeyHash(std::string_view secret) {
  return ToHex(Sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(secret.data()), secret.size())));
}

absl::StatusOr<app::AccessRole> ParseRole(std::string_view name) {
  std::string n = absl::AsciiStrToLower(std::string(name));
  if (size_t dot = n.rfind('.'); dot != std::string::npos) n = n.substr(dot + 1);
  if (n == "reader") return app::AccessRole::kReader;
  if (n == "contributor") return app::AccessRole::kContributor;
  if (n == "admin") return app::AccessRole::kAdmin;
  return absl::InvalidArgumentError(absl::StrCat("role \"", std::string(name.substr(0, 64)), "\": expected Reader, Contributor or Admin"));
}

std::string_view RoleName(app::AccessRole r) {
  switch (r) {
    case app::AccessRole::kReader: return "Reader";
    case app::AccessRole::kContributor: return "Contributor";
    case app::AccessRole::kAdmin: return "Admin";
  }
  return "Reader";
}

Authenticator::Authenticator(AuthConfig config, std::shared_ptr<KeySource> keys, ApiKeyLookup api_keys, WallClock now)
    : config_(std::move(config)), keys_(std::move(keys)), api_keys_(std::move(api_keys)), now_(std::move(now)) {}

int64_t Authenticator::Now() const { return now_ ? now_() : static_cast<int64_t>(std::time(nullptr)); }

absl::StatusOr<app::Caller> Authenticator::CallerFromClaims(const nlohmann::json& c) const {
  const int64_t now = Now(), skew = config_.clock_skew_seconds;
  auto iss = c.find("iss");
  if (iss == c.end() || !iss->is_string()) return Bad("no \"iss\" claim");
  if (*iss != config_.issuer) return Bad("issued by another issuer");
  auto aud = c.find("aud");
  if (aud == c.end()) return Bad("no \"aud\" claim");
  bool aud_ok = false;
  auto ours = [&](const nlohmann::json& a) {
    if (!a.is_string()) return false;
    for (const auto& want : config_.audience)
      if (a.get_ref<const std::string&>() == want) return true;
    return false;
  };
  if (aud->is_string()) {
    aud_ok = ours(*aud);
  } else if (aud->is_array()) {
    for (const auto& a : *aud) aud_ok = aud_ok || ours(a);
  } else {
    return Bad("\"aud\" is neither a string nor an array");
  }
  if (!aud_ok) return Bad("issued for another audience");
  auto exp = Date(c, "exp", true);
  if (!exp.ok()) return exp.status();
  if (now >= **exp + skew) return Bad("expired");
  auto nbf = Date(c, "nbf", false);
  if (!nbf.ok()) return nbf.status();
  if (*nbf && now + skew < **nbf) return Bad("not valid yet (nbf)");
  auto iat = Date(c, "iat", false);
  if (!iat.ok()) return iat.status();
  if (*iat && **iat > now + skew) return Bad("issued in the future (iat)");

  app::Caller caller;
  caller.authenticated = true;
  if (auto tid = c.find("tid"); tid != c.end()) {
    if (!tid->is_string()) return Bad("\"tid\" is not a string");
    caller.tenant = tid->get<std::string>();
  }
  if (!config_.tenants.empty()) {
    bool allowed = false;
    for (const auto& t : config_.tenants) allowed = allowed || t == caller.tenant;
    if (!allowed) return Bad("issued for a tenant this server does not accept");
  }
  std::string subject;
  for (const auto& name : config_.owner_claim) {
    auto it = c.find(name);
    if (it != c.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      subject = it->get<std::string>();
      break;
    }
  }
  if (subject.empty()) return Bad(absl::StrCat("no \"", absl::StrJoin(config_.owner_claim, "\" or \""), "\" claim naming the caller"));
  if (subject.size() > 256) return Bad("subject claim longer than 256 bytes");
  caller.owner = absl::StrCat(config_.issuer, "|", subject);
  caller.actor = caller.owner;
  // Roles: the highest one recognised; none (or only unknown names): Reader.
  caller.role = app::AccessRole::kReader;
  const nlohmann::json* roles = &c;
  for (absl::string_view part : absl::StrSplit(config_.roles_claim, '.')) {
    if (!roles->is_object()) {
      roles = nullptr;
      break;
    }
    auto it = roles->find(std::string(part));
    if (it == roles->end()) {
      roles = nullptr;
      break;
    }
    roles = &*it;
  }
  if (roles && roles->is_array()) {
    for (const auto& r : *roles) {
      if (!r.is_string()) continue;
      auto role = ParseRole(r.get_ref<const std::string&>());
      if (role.ok() && static_cast<int>(*role) > static_cast<int>(caller.role)) caller.role = *role;
    }
  }
  return caller;
}

absl::StatusOr<app::Caller> Authenticator::Authenticate(std::string_view authorization) const {
  if (authorization.empty()) return absl::UnauthenticatedError("sign-in required: send Authorization: Bearer <token>");
  if (authorization.size() > kMaxTokenBytes + 64) return Bad("Authorization header too long");
  absl::string_view h = absl::StripAsciiWhitespace(absl::string_view(authorization.data(), authorization.size()));
  if (h.size() < 7 || !absl::EqualsIgnoreCase(h.substr(0, 7), "bearer ")) return Bad("Authorization scheme is not Bearer");
  absl::string_view t = absl::StripAsciiWhitespace(h.substr(7));
  std::string_view token(t.data(), t.size());
  if (token.substr(0, kApiKeyPrefix.size()) == kApiKeyPrefix) {
    if (!api_keys_) return Bad("API keys are not accepted by this server");
    if (token.size() != kApiKeyPrefix.size() + 43) return Bad("malformed API key");
    return api_keys_(ApiKeyHash(token));
  }
  if (!keys_) return Bad("this server accepts API keys only (hart serve --auth keys), not tokens");
  auto jwt = ParseJwt(token);
  if (!jwt.ok()) return jwt.status();
  auto key = keys_->Get(jwt->kid);
  if (!key.ok()) return key.status();
  absl::Status sig = VerifySignature(*jwt, **key);
  if (!sig.ok()) return sig;
  return CallerFromClaims(jwt->claims);
}

}  // namespace hart::auth

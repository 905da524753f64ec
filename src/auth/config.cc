#include "auth/config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace hart::auth {
namespace {

absl::Status Field(std::string_view source, std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(std::string(source) + ": field \"" + std::string(field) + "\": " + std::string(why));
}

absl::StatusOr<std::vector<std::string>> StringOrList(const nlohmann::json& v, std::string_view source,
                                                      std::string_view field) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_string()) return Field(source, field, "expected strings");
      out.push_back(e.get<std::string>());
    }
  } else {
    return Field(source, field, "expected a string or an array of strings");
  }
  for (const auto& s : out)
    if (s.empty()) return Field(source, field, "empty string");
  return out;
}

}  // namespace

absl::StatusOr<AuthConfig> ParseAuthConfig(std::string_view json, std::string_view source) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(std::string(source) + ": not a JSON object");
  AuthConfig c;
  for (const auto& [k, v] : j.items()) {
    auto str = [&](std::string* out) -> absl::Status {
      if (!v.is_string() || v.get_ref<const std::string&>().empty()) return Field(source, k, "expected a non-empty string");
      *out = v.get<std::string>();
      return absl::OkStatus();
    };
    auto num = [&](double* out, double lo, double hi) -> absl::Status {
      if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi)
        return Field(source, k, absl::StrCat("expected a number from ", lo, " to ", hi));
      *out = v.get<double>();
      return absl::OkStatus();
    };
    absl::Status s;
    if (k == "issuer") {
      s = str(&c.issuer);
    } else if (k == "audience") {
      auto l = StringOrList(v, source, k);
      if (!l.ok()) return l.status();
      c.audience = *l;
    } else if (k == "discovery") {
      s = str(&c.discovery);
    } else if (k == "tenants") {
      auto l = StringOrList(v, source, k);
      if (!l.ok()) return l.status();
      c.tenants = *l;
    } else if (k == "owner_claim") {
      auto l = StringOrList(v, source, k);
      if (!l.ok()) return l.status();
      c.owner_claim = *l;
    } else if (k == "roles_claim") {
      s = str(&c.roles_claim);
    } else if (k == "clock_skew_seconds") {
      double d = 0;
      s = num(&d, 0, 600);
      c.clock_skew_seconds = static_cast<int64_t>(d);
    } else if (k == "http_timeout_seconds") {
      s = num(&c.http_timeout_seconds, 0.05, 60);
    } else if (k == "jwks_min_refresh_seconds") {
      s = num(&c.jwks_min_refresh_seconds, 0, 86400);
    } else if (k == "jwks_max_age_seconds") {
      s = num(&c.jwks_max_age_seconds, 1, 7 * 86400);
    } else if (k == "allow_http") {
      if (!v.is_boolean()) return Field(source, k, "expected true or false");
      c.allow_http = v.get<bool>();
    } else if (k == "client_id") {
      s = str(&c.client_id);
    } else if (k == "scopes") {
      auto l = StringOrList(v, source, k);
      if (!l.ok()) return l.status();
      c.scopes = *l;
    } else {
      return Field(source, k, "unknown setting (see docs/AUTH.md)");
    }
    if (!s.ok()) return s;
  }
  if (c.issuer.empty()) return Field(source, "issuer", "required");
  if (c.audience.empty()) return Field(source, "audience", "required");
  if (c.discovery.empty()) {
    std::string base = c.issuer;
    if (!base.empty() && base.back() == '/') base.pop_back();
    c.discovery = base + "/.well-known/openid-configuration";
  }
  if (!absl::StartsWith(c.discovery, "https://") && !absl::StartsWith(c.discovery, "http://"))
    return Field(source, "discovery", "expected an http(s) URL");
  return c;
}

absl::StatusOr<AuthConfig> LoadAuthConfig(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open the auth settings"));
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().size() > (1 << 20)) return absl::InvalidArgumentError(absl::StrCat(path, ": larger than 1 MiB"));
  return ParseAuthConfig(ss.str(), path);
}

}  // namespace hart::auth

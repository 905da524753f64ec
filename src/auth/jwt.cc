#include "auth/jwt.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "fmt/format.h"

namespace hart::auth {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> MakeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; i++) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kTable = MakeTable();

absl::Status Bad(std::string_view what) { return absl::UnauthenticatedError(fmt::format("bearer token: {}", what)); }

absl::StatusOr<nlohmann::json> DecodeObject(std::string_view part, std::string_view what) {
  absl::StatusOr<std::string> raw = Base64UrlDecode(part);
  if (!raw.ok()) return Bad(fmt::format("{} is not base64url", what));
  nlohmann::json j = nlohmann::json::parse(*raw, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Bad(fmt::format("{} is not a JSON object", what));
  return j;
}

}  // namespace

std::string_view AlgName(Alg a) {
  switch (a) {
    case Alg::kRS256: return "RS256";
    case Alg::kPS256: return "PS256";
    case Alg::kES256: return "ES256";
  }
  return "?";
}

absl::StatusOr<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) return absl::InvalidArgumentError("base64url: impossible length");
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int8_t v = kTable[static_cast<uint8_t>(c)];
    if (v < 0) return absl::InvalidArgumentError("base64url: invalid character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (a canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return absl::InvalidArgumentError("base64url: non-zero padding bits");
  return out;
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

absl::StatusOr<Jwt> ParseJwt(std::string_view token) {
  if (token.empty()) return Bad("empty");
  if (token.size() > kMaxTokenBytes) return Bad(absl::StrCat("longer than ", kMaxTokenBytes, " bytes"));
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (parts.size() == 5) return Bad("an encrypted token (JWE) is not accepted; expected a signed JWT");
  if (parts.size() != 3) return Bad("expected three dot-separated parts (header.payload.signature)");
  Jwt t;
  auto header = DecodeObject(parts[0], "header");
  if (!header.ok()) return header.status();
  t.header = std::move(*header);
  const auto alg = t.header.find("alg");
  if (alg == t.header.end() || !alg->is_string()) return Bad("header has no \"alg\"");
  const std::string& a = alg->get_ref<const std::string&>();
  if (a == "RS256") {
    t.alg = Alg::kRS256;
  } else if (a == "PS256") {
    t.alg = Alg::kPS256;
  } else if (a == "ES256") {
    t.alg = Alg::kES256;
  } else {
    // `none`, HS*, RS384, ... : refused by name, never tried.
    return Bad(absl::StrCat("algorithm \"", a.substr(0, 16), "\" is not accepted (RS256, PS256, ES256 only)"));
  }
  if (t.header.contains("crit")) return Bad("header has \"crit\" extensions this server does not understand");
  if (auto typ = t.header.find("typ"); typ != t.header.end()) {
    if (!typ->is_string()) return Bad("header \"typ\" is not a string");
    std::string v = absl::AsciiStrToLower(typ->get<std::string>());
    if (v != "jwt" && v != "at+jwt" && v != "application/at+jwt" && v != "application/jwt")
      return Bad("header \"typ\" is not a JWT");
  }
  const auto kid = t.header.find("kid");
  if (kid == t.header.end() || !kid->is_string() || kid->get_ref<const std::string&>().empty())
    return Bad("header has no \"kid\"");
  t.kid = kid->get<std::string>();
  if (t.kid.size() > 256) return Bad("header \"kid\" is too long");
  auto claims = DecodeObject(parts[1], "payload");
  if (!claims.ok()) return claims.status();
  t.claims = std::move(*claims);
  auto sig = Base64UrlDecode(parts[2]);
  if (!sig.ok()) return Bad("signature is not base64url");
  if (sig->empty()) return Bad("signature is empty");
  t.signature = std::move(*sig);
  t.signing_input = std::string(token.substr(0, parts[0].size() + 1 + parts[1].size()));
  return t;
}

}  // namespace hart::auth

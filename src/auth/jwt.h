// JWT (RFC 7519) in its compact JWS form: parsing the three base64url parts
// and checking the signature with a public key from a JWKS (jwks.h). Only
// RS256, PS256 and ES256 are accepted; `none` and every HS* (a shared secret
// the server does not have, and the classic "HS256 signed with the public
// key" confusion) are refused before any key is looked at. Tokens are bytes
// from anyone: every size is capped and every field is type-checked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace hart::auth {

inline constexpr size_t kMaxTokenBytes = 16 * 1024;

enum class Alg : uint8_t { kRS256, kPS256, kES256 };
std::string_view AlgName(Alg a);

struct Jwt {
  Alg alg = Alg::kRS256;
  std::string kid;             // the JWKS key id from the header
  nlohmann::json header;       // the decoded JOSE header (an object)
  nlohmann::json claims;       // the decoded payload (an object)
  std::string signing_input;   // "<header b64>.<payload b64>"
  std::string signature;       // raw signature bytes
};

// Decodes unpadded base64url (RFC 4648 section 5). InvalidArgument on any
// other character, padding, or an impossible length.
absl::StatusOr<std::string> Base64UrlDecode(std::string_view in);
std::string Base64UrlEncode(std::string_view in);

// Splits and decodes a compact JWS. Unauthenticated (never echoing the
// token) for anything malformed: wrong number of parts, bad base64url, JSON
// that is not an object, a missing or refused `alg`, a missing `kid`, a
// `crit` header, a token over kMaxTokenBytes.
absl::StatusOr<Jwt> ParseJwt(std::string_view token);

}  // namespace hart::auth

// JSON Web Key Sets (RFC 7517): the provider's public signing keys, by
// `kid`. RSA keys (n, e; 2048 to 8192 bits) and EC P-256 keys (x, y) become
// OpenSSL EVP_PKEYs; other key types, encryption keys (`use` != "sig") and
// keys that fail to decode are skipped, so one odd key in a provider's set
// never makes the others unusable. VerifySignature() checks a JWT against
// one key: the key's type must fit the algorithm, and a key's `alg`, when
// given, must be the token's.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "auth/jwt.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace hart::auth {

inline constexpr size_t kMaxJwksBytes = 1 << 20;
inline constexpr size_t kMaxJwksKeys = 100;

struct PublicKey {
  enum class Type : uint8_t { kRsa, kEc };
  Type type = Type::kRsa;
  std::string kid;
  std::string alg;  // "" when the JWK does not say
  std::shared_ptr<EVP_PKEY> pkey;
};

using KeySet = std::map<std::string, std::shared_ptr<const PublicKey>>;

// Parses a JWKS document. InvalidArgument when it is not JSON, not an
// object with a "keys" array, too large, or has no usable key.
absl::StatusOr<KeySet> ParseJwks(std::string_view json);

// Builds keys from their parts (big-endian bytes), for JWKS parsing and tests.
absl::StatusOr<std::shared_ptr<EVP_PKEY>> RsaPublicKey(std::string_view n, std::string_view e);
absl::StatusOr<std::shared_ptr<EVP_PKEY>> EcP256PublicKey(std::string_view x, std::string_view y);

// Ok when `jwt`'s signature verifies under `key`; Unauthenticated otherwise.
absl::Status VerifySignature(const Jwt& jwt, const PublicKey& key);

}  // namespace hart::auth

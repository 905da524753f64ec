// libFuzzer target: arbitrary bytes as what a client or an identity provider
// sends the server's sign-in: a bearer token (even first byte), or a JWKS
// document (odd), or, for both, the claims check of a token whose payload is
// the bytes. Each must answer a value or an error; never crash, never take
// a token the fixed key did not sign.
#include <cstdint>
#include <cstring>
#include <string>

#include "auth/authenticator.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "nlohmann/json.hpp"

namespace {

// A key source with no keys: every token that parses asks for one and is refused.
class NoKeys : public hart::auth::KeySource {
 public:
  absl::StatusOr<std::shared_ptr<const hart::auth::PublicKey>> Get(const std::string&) override {
    return absl::UnauthenticatedError("no keys");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    static hart::auth::Authenticator* a = [] {
      hart::auth::AuthConfig c;
      c.issuer = "https://issuer.example";
      c.audience = {"api://hart"};
      return new hart::auth::Authenticator(c, std::make_shared<NoKeys>());
    }();
    auto r = a->Authenticate("Bearer " + in);
    if (r.ok()) __builtin_trap();  // nothing is signed by a key that does not exist
    auto jwt = hart::auth::ParseJwt(in);
    if (jwt.ok()) (void)a->CallerFromClaims(jwt->claims);
    nlohmann::json claims = nlohmann::json::parse(in, nullptr, false);
    if (claims.is_object()) (void)a->CallerFromClaims(claims);
  } else {
    auto keys = hart::auth::ParseJwks(in);
    if (keys.ok()) {
      hart::auth::Jwt t;
      t.signing_input = "a.b";
      t.signature = std::string(64, '\1');
      for (auto alg : {hart::auth::Alg::kRS256, hart::auth::Alg::kPS256, hart::auth::Alg::kES256}) {
        t.alg = alg;
        for (const auto& [kid, k] : *keys)
          if (hart::auth::VerifySignature(t, *k).ok()) __builtin_trap();
      }
    }
  }
  return 0;
}

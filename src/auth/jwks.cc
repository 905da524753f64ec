#include "auth/jwks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace hart::auth {
namespace {

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;

std::shared_ptr<EVP_PKEY> Wrap(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

Bn ToBn(std::string_view b) {
  return Bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(b.data()), static_cast<int>(b.size()), nullptr));
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> FromData(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  OSSL_PARAM_BLD_free(bld);
  if (!params) return absl::InternalError("OpenSSL: cannot build key parameters");
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* pkey = nullptr;
  bool ok = ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
  OSSL_PARAM_free(params);
  EVP_PKEY_CTX_free(ctx);
  if (!ok || !pkey) {
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    return absl::InvalidArgumentError(absl::StrCat("not a valid ", type, " public key"));
  }
  return Wrap(pkey);
}

absl::StatusOr<std::string> B64Field(const nlohmann::json& k, const char* name) {
  auto it = k.find(name);
  if (it == k.end() || !it->is_string()) return absl::InvalidArgumentError(absl::StrCat("no \"", name, "\""));
  auto v = Base64UrlDecode(it->get_ref<const std::string&>());
  if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is not base64url"));
  return v;
}

absl::StatusOr<PublicKey> ParseKey(const nlohmann::json& k) {
  if (!k.is_object()) return absl::InvalidArgumentError("not an object");
  PublicKey key;
  if (auto kid = k.find("kid"); kid != k.end() && kid->is_string()) key.kid = kid->get<std::string>();
  if (key.kid.empty() || key.kid.size() > 256) return absl::InvalidArgumentError("no usable \"kid\"");
  if (auto use = k.find("use"); use != k.end() && (!use->is_string() || *use != "sig"))
    return absl::InvalidArgumentError("not a signing key");
  if (auto alg = k.find("alg"); alg != k.end()) {
    if (!alg->is_string()) return absl::InvalidArgumentError("\"alg\" is not a string");
    key.alg = alg->get<std::string>();
  }
  auto kty = k.find("kty");
  if (kty == k.end() || !kty->is_string()) return absl::InvalidArgumentError("no \"kty\"");
  if (*kty == "RSA") {
    key.type = PublicKey::Type::kRsa;
    auto n = B64Field(k, "n");
    if (!n.ok()) return n.status();
    auto e = B64Field(k, "e");
    if (!e.ok()) return e.status();
    auto p = RsaPublicKey(*n, *e);
    if (!p.ok()) return p.status();
    key.pkey = *p;
  } else if (*kty == "EC") {
    key.type = PublicKey::Type::kEc;
    if (k.value("crv", std::string()) != "P-256") return absl::InvalidArgumentError("EC curve is not P-256");
    auto x = B64Field(k, "x");
    if (!x.ok()) return x.status();
    auto y = B64Field(k, "y");
    if (!y.ok()) return y.status();
    auto p = EcP256PublicKey(*x, *y);
    if (!p.ok()) return p.status();
    key.pkey = *p;
  } else {
    return absl::InvalidArgumentError("unsupported \"kty\"");
  }
  return key;
}

absl::Status Reject(std::string_view why) { return absl::UnauthenticatedError("bearer token: " + std::string(why)); }

}  // namespace

absl::StatusOr<std::shared_ptr<EVP_PKEY>> RsaPublicKey(std::string_view n, std::string_view e) {
  // Leading zero bytes do not count toward the modulus size.
  size_t lead = 0;
  while (lead < n.size() && n[lead] == 0) lead++;
  size_t bits = (n.size() - lead) * 8;
  if (bits < 2048 || bits > 8192) return absl::InvalidArgumentError("RSA modulus must be 2048 to 8192 bits");
  if (e.empty() || e.size() > 8) return absl::InvalidArgumentError("RSA exponent out of range");
  Bn bn_n = ToBn(n), bn_e = ToBn(e);
  if (!bn_n || !bn_e || BN_is_zero(bn_e.get()) || !BN_is_odd(bn_e.get()))
    return absl::InvalidArgumentError("RSA exponent out of range");
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (!bld || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    OSSL_PARAM_BLD_free(bld);
    return absl::InternalError("OpenSSL: cannot build RSA parameters");
  }
  return FromData("RSA", bld);
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> EcP256PublicKey(std::string_view x, std::string_view y) {
  if (x.size() != 32 || y.size() != 32) return absl::InvalidArgumentError("P-256 coordinates must be 32 bytes each");
  std::string point = "\x04" + std::string(x) + std::string(y);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    OSSL_PARAM_BLD_free(bld);
    return absl::InternalError("OpenSSL: cannot build EC parameters");
  }
  auto key = FromData("EC", bld);
  if (!key.ok()) return key.status();
  // The point must be on the curve (an off-curve point is an invalid-curve attack).
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, key->get(), nullptr);
  bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) {
    ERR_clear_error();
    return absl::InvalidArgumentError("EC point is not on P-256");
  }
  return key;
}

absl::StatusOr<KeySet> ParseJwks(std::string_view text) {
  if (text.size() > kMaxJwksBytes) return absl::InvalidArgumentError(absl::StrCat("JWKS larger than ", kMaxJwksBytes, " bytes"));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError("JWKS is not JSON");
  if (!j.is_object() || !j.contains("keys") || !j["keys"].is_array())
    return absl::InvalidArgumentError("JWKS is not an object with a \"keys\" array");
  const auto& keys = j["keys"];
  if (keys.size() > kMaxJwksKeys) return absl::InvalidArgumentError(absl::StrCat("JWKS has more than ", kMaxJwksKeys, " keys"));
  KeySet out;
  for (const auto& k : keys) {
    absl::StatusOr<PublicKey> key = ParseKey(k);
    if (!key.ok()) continue;  // skipped: another key may still be usable
    std::string kid = key->kid;
    out[kid] = std::make_shared<const PublicKey>(std::move(*key));
  }
  if (out.empty()) return absl::InvalidArgumentError("JWKS has no usable RSA or P-256 signing key");
  return out;
}

absl::Status VerifySignature(const Jwt& jwt, const PublicKey& key) {
  const bool want_rsa = jwt.alg != Alg::kES256;
  if (want_rsa != (key.type == PublicKey::Type::kRsa)) return Reject("key type does not fit the algorithm");
  if (!key.alg.empty() && key.alg != AlgName(jwt.alg)) return Reject("key is for another algorithm");
  std::string sig = jwt.signature;
  if (jwt.alg == Alg::kES256) {
    // JWS carries r||s, 32 bytes each; OpenSSL verifies DER.
    if (sig.size() != 64) return Reject("ES256 signature is not 64 bytes");
    ECDSA_SIG* es = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr);
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
      BN_free(r);
      BN_free(s);
      ECDSA_SIG_free(es);
      return absl::InternalError("OpenSSL: cannot build ECDSA signature");
    }
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (len <= 0) return absl::InternalError("OpenSSL: cannot encode ECDSA signature");
    sig.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = md && EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), nullptr, key.pkey.get()) == 1;
  if (ok && jwt.alg == Alg::kPS256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
  } else if (ok && jwt.alg == Alg::kRS256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
  }
  int v = ok ? EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                reinterpret_cast<const unsigned char*>(jwt.signing_input.data()),
                                jwt.signing_input.size())
             : -1;
  EVP_MD_CTX_free(md);
  ERR_clear_error();  // a failed verify leaves errors that would confuse the next TLS call
  if (v != 1) return Reject("signature does not verify");
  return absl::OkStatus();
}

}  // namespace hart::auth

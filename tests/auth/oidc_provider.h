// A small OpenID Connect provider for the tests: RSA and EC P-256 keys made
// with OpenSSL, a discovery document and a JWKS served over cpp-httplib on
// 127.0.0.1, and a token minter that can get every part wrong on purpose
// (algorithm, key, signature, claims). The JWKS can be switched to answer
// garbage, errors, or slowly.
#pragma once

#include <httplib.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "auth/jwt.h"
#include "nlohmann/json.hpp"

namespace hart::auth_test {

using nlohmann::json;

struct TestKey {
  std::string kid;
  bool ec = false;
  std::shared_ptr<EVP_PKEY> pkey;
};

inline std::string BnBytes(EVP_PKEY* k, const char* param) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(k, param, &bn);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

inline TestKey MakeRsaKey(const std::string& kid) {
  return {kid, false, std::shared_ptr<EVP_PKEY>(EVP_RSA_gen(2048), EVP_PKEY_free)};
}
inline TestKey MakeEcKey(const std::string& kid) {
  return {kid, true, std::shared_ptr<EVP_PKEY>(EVP_EC_gen("P-256"), EVP_PKEY_free)};
}

inline json Jwk(const TestKey& k) {
  if (!k.ec) {
    return {{"kty", "RSA"},
            {"kid", k.kid},
            {"use", "sig"},
            {"n", auth::Base64UrlEncode(BnBytes(k.pkey.get(), OSSL_PKEY_PARAM_RSA_N))},
            {"e", auth::Base64UrlEncode(BnBytes(k.pkey.get(), OSSL_PKEY_PARAM_RSA_E))}};
  }
  unsigned char pub[65];
  size_t len = 0;
  EVP_PKEY_get_octet_string_param(k.pkey.get(), OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len);
  std::string p(reinterpret_cast<char*>(pub), len);
  return {{"kty", "EC"},
          {"kid", k.kid},
          {"crv", "P-256"},
          {"use", "sig"},
          {"x", auth::Base64UrlEncode(p.substr(1, 32))},
          {"y", auth::Base64UrlEncode(p.substr(33, 32))}};
}

// Signs `input` as `alg` ("RS256", "PS256", "ES256") with `k`.
inline std::string SignWith(const std::string& alg, const TestKey& k, const std::string& input) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EVP_DigestSignInit(md, &pctx, EVP_sha256(), nullptr, k.pkey.get());
  if (alg == "PS256") {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  size_t len = 0;
  EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(len);
  EVP_MD_CTX_free(md);
  if (alg == "ES256") {  // DER -> r||s
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    return raw;
  }
  return sig;
}

inline std::string Compact(const json& header, const json& claims, const std::string& sig) {
  return auth::Base64UrlEncode(header.dump()) + "." + auth::Base64UrlEncode(claims.dump()) + "." +
         auth::Base64UrlEncode(sig);
}

inline std::string Mint(const std::string& alg, const TestKey& k, const json& claims) {
  json h = {{"alg", alg}, {"typ", "JWT"}, {"kid", k.kid}};
  std::string input = auth::Base64UrlEncode(h.dump()) + "." + auth::Base64UrlEncode(claims.dump());
  return input + "." + auth::Base64UrlEncode(SignWith(alg, k, input));
}

// HS256 "signed" with the RSA public key's JWK bytes: the key-confusion attack.
inline std::string MintHs256WithPublicKey(const TestKey& k, const json& claims) {
  json h = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", k.kid}};
  std::string input = auth::Base64UrlEncode(h.dump()) + "." + auth::Base64UrlEncode(claims.dump());
  std::string secret = Jwk(k).dump();
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &len);
  return input + "." + auth::Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), len));
}

class OidcProvider {
 public:
  enum class Mode { kOk, kGarbage, kError, kSlow };

  OidcProvider() {
    svr_.Get("/.well-known/openid-configuration", [this](const httplib::Request&, httplib::Response& res) {
      json d = {{"issuer", issuer()},
                {"jwks_uri", issuer() + "/jwks"},
                {"authorization_endpoint", issuer() + "/authorize"},
                {"token_endpoint", issuer() + "/token"}};
      res.set_content(d.dump(), "application/json");
    });
    svr_.Get("/jwks", [this](const httplib::Request&, httplib::Response& res) {
      jwks_hits_++;
      switch (mode_.load()) {
        case Mode::kGarbage:
          res.set_content("<html>this is not a key set", "text/html");
          return;
        case Mode::kError:
          res.status = 500;
          res.set_content("down", "text/plain");
          return;
        case Mode::kSlow:
          std::this_thread::sleep_for(std::chrono::seconds(2));
          break;
        case Mode::kOk:
          break;
      }
      json keys = json::array();
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& [kid, k] : published_) keys.push_back(Jwk(k));
      }
      res.set_content(json{{"keys", keys}}.dump(), "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ~OidcProvider() {
    svr_.stop();
    thread_.join();
  }
  std::string issuer() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void Publish(const TestKey& k) {
    std::lock_guard<std::mutex> l(mu_);
    published_[k.kid] = k;
  }
  void Unpublish(const std::string& kid) {
    std::lock_guard<std::mutex> l(mu_);
    published_.erase(kid);
  }
  void SetMode(Mode m) { mode_ = m; }
  int jwks_hits() const { return jwks_hits_; }

 private:
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, TestKey> published_;
  std::atomic<Mode> mode_{Mode::kOk};
  std::atomic<int> jwks_hits_{0};
};

}  // namespace hart::auth_test

// auth/: bearer JWTs against a real OIDC provider on loopback (discovery +
// JWKS over HTTP, keys made by OpenSSL in the test), tokens wrong in every
// way the issue lists, key rotation and its rate limit, a provider that is
// down, slow or answers garbage.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>

#include "auth/authenticator.h"
#include "auth/config.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/key_source.h"
#include "tests/auth/oidc_provider.h"

namespace hart::auth_test {
namespace {

using auth::AuthConfig;
using auth::Authenticator;
using auth::OidcKeySource;

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new TestKey(MakeRsaKey("rsa-1"));
    rsa2_ = new TestKey(MakeRsaKey("rsa-2"));
    ec_ = new TestKey(MakeEcKey("ec-1"));
  }
  void SetUp() override {
    provider_ = std::make_unique<OidcProvider>();
    provider_->Publish(*rsa_);
    provider_->Publish(*ec_);
    config_.issuer = provider_->issuer();
    config_.audience = {"api://hart"};
    config_.discovery = provider_->issuer() + "/.well-known/openid-configuration";
    config_.http_timeout_seconds = 0.3;
    config_.jwks_min_refresh_seconds = 30;
  }
  std::unique_ptr<Authenticator> Make(AuthConfig c) {
    keys_ = std::make_shared<OidcKeySource>(c);
    return std::make_unique<Authenticator>(c, keys_);
  }
  std::unique_ptr<Authenticator> Make() { return Make(config_); }
  json Claims() const {
    int64_t now = std::time(nullptr);
    return {{"iss", provider_->issuer()}, {"aud", "api://hart"}, {"exp", now + 600}, {"nbf", now - 10},
            {"iat", now - 10},           {"oid", "user-oid-1"},  {"sub", "pairwise-sub"}, {"tid", "tenant-a"}};
  }
  static std::string Bearer(const std::string& t) { return "Bearer " + t; }

  static TestKey* rsa_;
  static TestKey* rsa2_;
  static TestKey* ec_;
  std::unique_ptr<OidcProvider> provider_;
  AuthConfig config_;
  std::shared_ptr<OidcKeySource> keys_;
};
TestKey* AuthTest::rsa_ = nullptr;
TestKey* AuthTest::rsa2_ = nullptr;
TestKey* AuthTest::ec_ = nullptr;

TEST(Base64Url, RoundTripsAndRejectsNonCanonicalInput) {
  for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\xff\xfe\x00", 3)}) {
    auto d = auth::Base64UrlDecode(auth::Base64UrlEncode(s));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, s);
  }
  EXPECT_FALSE(auth::Base64UrlDecode("Zm9v=").ok());   // padding
  EXPECT_FALSE(auth::Base64UrlDecode("Zm+v").ok());    // base64, not base64url
  EXPECT_FALSE(auth::Base64UrlDecode("Z").ok());       // impossible length
  EXPECT_FALSE(auth::Base64UrlDecode("Zh").ok());      // non-zero trailing bits
}

TEST_F(AuthTest, ValidTokensOfEachAlgorithmGiveTheCaller) {
  auto a = Make();
  for (auto [alg, key] : {std::pair{"RS256", rsa_}, std::pair{"PS256", rsa_}, std::pair{"ES256", ec_}}) {
    auto c = a->Authenticate(Bearer(Mint(alg, *key, Claims())));
    ASSERT_TRUE(c.ok()) << alg << ": " << c.status();
    EXPECT_EQ(c->owner, provider_->issuer() + "|user-oid-1") << alg;  // oid wins over sub
    EXPECT_EQ(c->tenant, "tenant-a");
    EXPECT_EQ(c->role, app::AccessRole::kReader);  // no roles claim
    EXPECT_TRUE(c->authenticated);
  }
  EXPECT_EQ(keys_->fetches(), 1);  // one JWKS fetch served all three
}

TEST_F(AuthTest, SubjectWithoutOidAudienceArrayAndRoles) {
  auto a = Make();
  json c = Claims();
  c.erase("oid");
  c["aud"] = {"other", "api://hart"};
  c["roles"] = {"Hart.Contributor", "unknown"};
  auto r = a->Authenticate(Bearer(Mint("RS256", *rsa_, c)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->owner, provider_->issuer() + "|pairwise-sub");
  EXPECT_EQ(r->role, app::AccessRole::kContributor);
  c["roles"] = {"Reader", "Admin"};
  r = a->Authenticate(Bearer(Mint("RS256", *rsa_, c)));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->role, app::AccessRole::kAdmin);
}

TEST_F(AuthTest, KeycloakStyleRolesClaimPath) {
  AuthConfig cfg = config_;
  cfg.roles_claim = "realm_access.roles";
  auto a = Make(cfg);
  json c = Claims();
  c["realm_access"] = {{"roles", {"contributor"}}};
  auto r = a->Authenticate(Bearer(Mint("ES256", *ec_, c)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->role, app::AccessRole::kContributor);
}

TEST_F(AuthTest, EveryWrongTokenIsUnauthenticated) {
  AuthConfig cfg = config_;
  cfg.tenants = {"tenant-a"};
  auto a = Make(cfg);
  int64_t now = std::time(nullptr);
  auto with = [&](const char* k, json v) {
    json c = Claims();
    if (v.is_null()) c.erase(k); else c[k] = v;
    return Mint("RS256", *rsa_, c);
  };
  std::string good = Mint("RS256", *rsa_, Claims());
  std::string bad_sig = good;
  bad_sig[bad_sig.size() - 5] = bad_sig[bad_sig.size() - 5] == 'A' ? 'B' : 'A';
  TestKey stranger = MakeEcKey("ec-1");  // same kid, another key
  json none_header = {{"alg", "none"}, {"kid", "rsa-1"}};
  std::map<std::string, std::string> cases = {
      {"expired", with("exp", now - 120)},
      {"expired just past the skew", with("exp", now - 61)},
      {"not yet valid", with("nbf", now + 300)},
      {"issued in the future", with("iat", now + 300)},
      {"no exp", with("exp", nullptr)},
      {"exp not a number", with("exp", "tomorrow")},
      {"wrong issuer", with("iss", "https://evil.example")},
      {"wrong audience", with("aud", "api://other")},
      {"audience array without ours", with("aud", json::array({"a", "b"}))},
      {"other tenant", with("tid", "tenant-b")},
      {"no tenant when tenants are listed", with("tid", nullptr)},
      {"unknown kid", Mint("RS256", MakeRsaKey("nobody"), Claims())},
      {"alg none", Compact(none_header, Claims(), "")},
      {"alg none with a signature", Compact(none_header, Claims(), "x")},
      {"HS256 signed with the public key", MintHs256WithPublicKey(*rsa_, Claims())},
      {"bad signature", bad_sig},
      {"signed by another key with a published kid", Mint("ES256", stranger, Claims())},
      {"ES256 header over an RSA key", [&] {
         json h = {{"alg", "ES256"}, {"kid", "rsa-1"}};
         return Compact(h, Claims(), std::string(64, 'x'));
       }()},
      {"RS256 header over an EC key", [&] {
         json h = {{"alg", "RS256"}, {"kid", "ec-1"}};
         return Compact(h, Claims(), std::string(256, 'x'));
       }()},
  };
  json c = Claims();
  c.erase("oid");
  c.erase("sub");
  cases["no oid or sub"] = Mint("RS256", *rsa_, c);
  for (const auto& [name, token] : cases) {
    auto r = a->Authenticate(Bearer(token));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << name << ": " << r.status();
    // The message never echoes the token.
    EXPECT_EQ(std::string(r.status().message()).find(token.substr(0, 20)), std::string::npos) << name;
  }
  EXPECT_TRUE(a->Authenticate(Bearer(good)).ok());
}

TEST_F(AuthTest, GarbageHeadersAndHugeTokensAreUnauthenticated) {
  auto a = Make();
  for (std::string h : {std::string(""), std::string("Basic dXNlcjpwYXNz"), std::string("Bearer"),
                        std::string("Bearer "), std::string("Bearer a.b"), std::string("Bearer a.b.c.d.e"),
                        std::string("Bearer !!!.???.###"), std::string("Bearer e30.e30.e30"),
                        std::string("Bearer ") + std::string(100000, 'A'), std::string("Bearer hart_short"),
                        std::string("Bearer \x01\x02\xff")}) {
    auto r = a->Authenticate(h);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << h.substr(0, 40) << ": " << r.status();
  }
}

TEST_F(AuthTest, RotatedKeyIsFetchedOnceAndOldKeyStopsWorking) {
  AuthConfig cfg = config_;
  cfg.jwks_min_refresh_seconds = 0;  // every unknown kid may refetch
  auto a = Make(cfg);
  ASSERT_TRUE(a->Authenticate(Bearer(Mint("RS256", *rsa_, Claims()))).ok());
  EXPECT_EQ(keys_->fetches(), 1);
  // The provider rotates: rsa-2 in, rsa-1 out.
  provider_->Publish(*rsa2_);
  provider_->Unpublish("rsa-1");
  auto r = a->Authenticate(Bearer(Mint("RS256", *rsa2_, Claims())));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(keys_->fetches(), 2);
  // The refetch replaced the cache: a token signed with the rotated-out key fails.
  auto old = a->Authenticate(Bearer(Mint("RS256", *rsa_, Claims())));
  EXPECT_EQ(old.status().code(), absl::StatusCode::kUnauthenticated) << old.status();
}

TEST_F(AuthTest, UnknownKidsRefetchAtMostOncePerInterval) {
  // A clock the test moves: jwks_min_refresh_seconds = 30.
  auto now = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  keys_ = std::make_shared<OidcKeySource>(config_, [now] { return *now; });
  Authenticator a(config_, keys_);
  ASSERT_TRUE(a.Authenticate(Bearer(Mint("RS256", *rsa_, Claims()))).ok());
  auto unknown = [&](int i) {
    json h = {{"alg", "ES256"}, {"kid", "unknown-" + std::to_string(i)}};
    return a.Authenticate(Bearer(Compact(h, Claims(), std::string(64, 'x')))).status().code();
  };
  for (int i = 0; i < 20; i++) EXPECT_EQ(unknown(i), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys_->fetches(), 1);  // fetched 0 s ago: a flood of unknown kids fetches nothing
  *now += std::chrono::seconds(31);
  for (int i = 0; i < 20; i++) EXPECT_EQ(unknown(i), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys_->fetches(), 2);  // one refetch per interval
  EXPECT_EQ(provider_->jwks_hits(), 2);
  // A key published meanwhile is found at the next interval.
  provider_->Publish(*rsa2_);
  std::string t = Mint("RS256", *rsa2_, Claims());
  EXPECT_EQ(a.Authenticate(Bearer(t)).status().code(), absl::StatusCode::kUnauthenticated);
  *now += std::chrono::seconds(31);
  EXPECT_TRUE(a.Authenticate(Bearer(t)).ok());
}

TEST_F(AuthTest, ProviderDownSlowOrGarbageIsUnavailableQuickly) {
  using Mode = OidcProvider::Mode;
  for (Mode m : {Mode::kError, Mode::kGarbage, Mode::kSlow}) {
    provider_->SetMode(m);
    auto a = Make();
    auto t0 = std::chrono::steady_clock::now();
    auto r = a->Authenticate(Bearer(Mint("RS256", *rsa_, Claims())));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << static_cast<int>(m) << ": " << r.status();
    EXPECT_LT(secs, 1.5) << "a fetch is bounded by http_timeout_seconds (0.3 s)";
    // Within the refresh interval the next request does not wait on the provider again.
    t0 = std::chrono::steady_clock::now();
    r = a->Authenticate(Bearer(Mint("RS256", *rsa_, Claims())));
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_LT(secs, 0.2);
  }
  // A provider that is not there at all.
  AuthConfig cfg = config_;
  cfg.discovery = "http://127.0.0.1:1/.well-known/openid-configuration";
  auto a = Make(cfg);
  auto r = a->Authenticate(Bearer(Mint("RS256", *rsa_, Claims())));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // Garbage in the token is still 401 while the provider is down: parsing comes first.
  EXPECT_EQ(a->Authenticate("Bearer garbage").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, DiscoveryWithAnotherIssuerIsRefused) {
  AuthConfig cfg = config_;
  cfg.issuer = "https://login.example/tenant";  // the provider says otherwise
  auto a = Make(cfg);
  json c = Claims();
  c["iss"] = cfg.issuer;
  auto r = a->Authenticate(Bearer(Mint("RS256", *rsa_, c)));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(Jwks, SkipsUnusableKeysAndRefusesSetsWithoutAny) {
  TestKey rsa = MakeRsaKey("r"), ec = MakeEcKey("e");
  json set = {{"keys", {Jwk(rsa), Jwk(ec), {{"kty", "oct"}, {"kid", "s"}, {"k", "c2VjcmV0"}},
                        {{"kty", "RSA"}, {"kid", "enc"}, {"use", "enc"}, {"n", Jwk(rsa)["n"]}, {"e", "AQAB"}},
                        {{"kty", "RSA"}, {"kid", "small"}, {"n", "AQAB"}, {"e", "AQAB"}},
                        {{"kty", "EC"}, {"kid", "off"}, {"crv", "P-256"}, {"x", Jwk(ec)["x"]}, {"y", Jwk(ec)["x"]}},
                        "junk"}}};
  auto ks = auth::ParseJwks(set.dump());
  ASSERT_TRUE(ks.ok()) << ks.status();
  EXPECT_EQ(ks->size(), 2u);
  EXPECT_TRUE(ks->count("r") && ks->count("e"));
  for (std::string bad : {"", "[]", "{}", "{\"keys\": 1}", "{\"keys\": [{\"kty\": \"oct\"}]}", "not json"})
    EXPECT_FALSE(auth::ParseJwks(bad).ok()) << bad;
}

TEST(AuthConfigFile, ReadsDefaultsAndRejectsUnknownFields) {
  auto c = auth::ParseAuthConfig(R"({"issuer": "https://login.example/t/v2.0/", "audience": "api://hart"})", "auth.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->discovery, "https://login.example/t/v2.0/.well-known/openid-configuration");
  EXPECT_EQ(c->owner_claim, (std::vector<std::string>{"oid", "sub"}));
  auto bad = auth::ParseAuthConfig(R"({"issuer": "x", "audience": "y", "isuer": "z"})", "auth.json");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("isuer"), std::string::npos);
  EXPECT_FALSE(auth::ParseAuthConfig(R"({"audience": "y"})", "auth.json").ok());
  EXPECT_FALSE(auth::ParseAuthConfig(R"({"issuer": "x"})", "auth.json").ok());
}

}  // namespace
}  // namespace hart::auth_test

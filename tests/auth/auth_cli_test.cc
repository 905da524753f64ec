// `hart keys` and `hart visibility` as a user runs them (the real binary over
// a real store): the secret is printed once and stored only as its hash,
// revocation is final, every change is in the audit trail; `hart serve
// --auth` refuses a bad settings file naming the field.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "auth/authenticator.h"
#include "store/store.h"
#include "tests/cli/cli_runner.h"
#include "tests/serve/http_client.h"

namespace hart::auth_test {
namespace {

using cli_test::MakeTempDir;
using cli_test::RunHart;

TEST(AuthCli, KeysCreateListRevokeAndAudit) {
  std::string dir = MakeTempDir("hart_auth_cli_") + "/store";
  ASSERT_EQ(RunHart({"--store", dir, "init"}).exit_code, 0);
  auto c = RunHart({"--store", dir, "--json", "keys", "create", "ci", "--role", "contributor", "--owner", "team-a"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  std::string secret = c.Json()["secret"];
  EXPECT_EQ(secret.rfind("hart_", 0), 0u);
  EXPECT_EQ(c.Json()["role"], "Contributor");
  // A second live key of that name is refused.
  EXPECT_EQ(RunHart({"--store", dir, "keys", "create", "ci"}).exit_code, 1);
  auto l = RunHart({"--store", dir, "--json", "keys", "list"});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_EQ(l.out.find(secret), std::string::npos);
  EXPECT_EQ(l.Json()[0]["owner"], "team-a");
  {
    // The catalog holds the hash, never the secret; the server's lookup finds it.
    auto st = store::Store::Open(dir);
    ASSERT_TRUE(st.ok());
    auto k = (*st)->FindApiKey(auth::ApiKeyHash(secret));
    ASSERT_TRUE(k.ok()) << k.status();
    EXPECT_EQ(k->name, "ci");
    std::ifstream f(dir + "/catalog.sqlite", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), {});
    EXPECT_EQ(bytes.find(secret), std::string::npos);
  }
  ASSERT_EQ(RunHart({"--store", dir, "keys", "revoke", "ci"}).exit_code, 0);
  EXPECT_EQ(RunHart({"--store", dir, "keys", "revoke", "ci"}).exit_code, 1);
  {
    auto st = store::Store::Open(dir);
    ASSERT_TRUE(st.ok());
    EXPECT_TRUE(absl::IsNotFound((*st)->FindApiKey(auth::ApiKeyHash(secret)).status()));
  }
  auto a = RunHart({"--store", dir, "--json", "sql", "SELECT action FROM audit ORDER BY id"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.out.find("apikey.create"), std::string::npos);
  EXPECT_NE(a.out.find("apikey.revoke"), std::string::npos);
  EXPECT_EQ(RunHart({"--store", dir, "keys", "create", "x", "--role", "root"}).exit_code, 1);
  EXPECT_EQ(RunHart({"--store", dir, "visibility", "nope", "public"}).exit_code, 1);
}

TEST(AuthCli, ServeRefusesBadSettingsAndOpenAddressesWithoutSignIn) {
  std::string root = MakeTempDir("hart_auth_cli_");
  std::string dir = root + "/store";
  ASSERT_EQ(RunHart({"--store", dir, "init"}).exit_code, 0);
  std::ofstream(root + "/auth.json") << R"({"issuer": "https://login.example", "audiense": "api://hart"})";
  auto r = RunHart({"--store", dir, "serve", "--addr", "127.0.0.1:0", "--auth", root + "/auth.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("audiense"), std::string::npos) << r.err;
  auto open = RunHart({"--store", dir, "serve", "--addr", "0.0.0.0:0"});
  EXPECT_EQ(open.exit_code, 1);
  EXPECT_NE(open.err.find("loopback"), std::string::npos) << open.err;
}

// `hart serve --auth keys`: sign-in with `hart keys` API keys and no
// identity provider (CI scripts): a key acts as its owner and role, no
// credential or a JWT is 401 with a challenge, and a revoked key stops.
TEST(AuthCli, ServeWithApiKeysOnly) {
  std::string root = MakeTempDir("hart_auth_cli_");
  std::string dir = root + "/store";
  ASSERT_EQ(RunHart({"--store", dir, "init"}).exit_code, 0);
  auto c = RunHart({"--store", dir, "--json", "keys", "create", "ci", "--role", "Reader", "--owner", "team-a"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const std::string secret = c.Json()["secret"];
  cli_test::HartProcess p({"--store", dir, "serve", "--addr", "127.0.0.1:0", "--port-file", root + "/port", "--auth",
                           "keys", "--no-access-log"},
                          root + "/out", root + "/err");
  uint16_t port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    std::string s = cli_test::ReadAll(root + "/port");
    if (!s.empty()) port = static_cast<uint16_t>(std::stoi(s));
    if (port == 0) {
      ASSERT_FALSE(p.Poll()) << cli_test::ReadAll(root + "/err");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_NE(port, 0);
  using serve_test::Http;
  auto me = Http(port, "GET", "/auth/me", "", {{"authorization", "Bearer " + secret}});
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.Json()["actor"], "apikey:ci");
  EXPECT_EQ(me.Json()["owner"], "team-a");
  EXPECT_EQ(me.Json()["role"], "Reader");
  EXPECT_EQ(Http(port, "GET", "/api/models", "", {{"authorization", "Bearer " + secret}}).status, 200);
  auto none = Http(port, "GET", "/api/models");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.Header("www-authenticate").find("Bearer"), std::string::npos);
  auto jwt = Http(port, "GET", "/api/models", "", {{"authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}});
  EXPECT_EQ(jwt.status, 401);
  EXPECT_NE(jwt.body.find("API keys only"), std::string::npos) << jwt.body;
  // A Reader key creates nothing.
  EXPECT_EQ(Http(port, "POST", "/api/ingest?filename=x.safetensors&model=m", "x",
                 {{"authorization", "Bearer " + secret}, {"content-type", "application/octet-stream"}}).status, 403);
  auto cfg = Http(port, "GET", "/auth/config");
  ASSERT_EQ(cfg.status, 200);
  EXPECT_EQ(cfg.Json()["enabled"], true);
  EXPECT_EQ(cfg.Json()["api_keys_only"], true);
  ASSERT_EQ(RunHart({"--store", dir, "keys", "revoke", "ci"}).exit_code, 0);
  EXPECT_EQ(Http(port, "GET", "/auth/me", "", {{"authorization", "Bearer " + secret}}).status, 401);
  p.Kill(SIGTERM);
  p.Wait();
}

}  // namespace
}  // namespace hart::auth_test

// `hart keys` and `hart visibility` as a user runs them (the real binary over
// a real store): the secret is printed once and stored only as its hash,
// revocation is final, every change is in the audit trail; `hart serve
// --auth` refuses a bad settings file naming the field.
#include <gtest/gtest.h>

#include <fstream>

#include "auth/authenticator.h"
#include "store/store.h"
#include "tests/cli/cli_runner.h"

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

}  // namespace
}  // namespace hart::auth_test

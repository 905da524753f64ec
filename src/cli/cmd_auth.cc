#include "auth/authenticator.h"

#include <array>
#include <cstdio>

#include "app/access.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {

namespace {

struct KeyArgs {
  std::string name, role = "Reader", owner;
};

int RunKeysCreate(Cli& cli, const KeyArgs& a) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto role = auth::ParseRole(a.role);
  if (!role.ok()) return Fail(role.status());
  store::ApiKeyRow row;
  row.name = a.name;
  row.role = std::string(auth::RoleName(*role));
  row.owner = a.owner.empty() ? "apikey:" + a.name : a.owner;
  std::string secret = auth::NewApiKeySecret();
  absl::Status s = ctx->st().CreateApiKey(row, auth::ApiKeyHash(secret), ctx->actor);
  if (!s.ok()) return Fail(s);
  if (cli.json()) {
    PrintJson({{"name", row.name}, {"owner", row.owner}, {"role", row.role}, {"secret", secret}});
  } else {
    std::printf("%s\n", secret.c_str());
    std::fprintf(stderr, "API key '%s' (owner %s, role %s): the secret above is shown once; store it now\n",
                 row.name.c_str(), row.owner.c_str(), row.role.c_str());
  }
  return kExitOk;
}

int RunKeysList(Cli& cli) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto keys = ctx->st().ListApiKeys();
  if (!keys.ok()) return Fail(keys.status());
  nlohmann::json j = nlohmann::json::array();
  for (const auto& k : *keys) {
    j.push_back({{"name", k.name},
                 {"owner", k.owner},
                 {"role", k.role},
                 {"created_at", k.created_at},
                 {"created_by", k.created_by},
                 {"revoked_at", k.revoked_at ? nlohmann::json(*k.revoked_at) : nlohmann::json(nullptr)}});
  }
  if (cli.json()) {
    PrintJson(j);
  } else {
    for (const auto& k : *keys)
      std::printf("%-24s %-12s %-40s %s\n", k.name.c_str(), k.role.c_str(), k.owner.c_str(),
                  k.revoked_at ? "revoked" : "live");
  }
  return kExitOk;
}

int RunKeysRevoke(Cli& cli, const std::string& name) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  absl::Status s = ctx->st().RevokeApiKey(name, ctx->actor);
  if (!s.ok()) return Fail(s);
  if (cli.json()) PrintJson({{"revoked", name}});
  return kExitOk;
}

int RunVisibility(Cli& cli, const std::string& model, const std::string& vis) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto a = app::SetVisibility(*ctx, {model, vis});
  if (!a.ok()) return Fail(a.status());
  if (cli.json()) PrintJson({{"model", model}, {"owner", a->owner}, {"tenant", a->tenant}, {"visibility", a->visibility}});
  else std::printf("%s: %s (owner %s)\n", model.c_str(), a->visibility.c_str(), a->owner.c_str());
  return kExitOk;
}

}  // namespace

void RegisterAuth(Cli& cli) {
  auto a = std::make_shared<KeyArgs>();
  auto rname = std::make_shared<std::string>();
  auto subs = std::make_shared<std::array<CLI::App*, 3>>();
  CLI::App* keys = cli.AddCommand("keys", "API keys for scripts and CI (hart serve --auth accepts them)",
                                  [&cli, a, rname, subs] {
                                    if ((*subs)[0]->parsed()) return RunKeysCreate(cli, *a);
                                    if ((*subs)[1]->parsed()) return RunKeysList(cli);
                                    return RunKeysRevoke(cli, *rname);
                                  });
  keys->require_subcommand(1);
  CLI::App* create = keys->add_subcommand("create", "create a key; prints its secret once");
  create->add_option("name", a->name, "key name")->required();
  create->add_option("--role", a->role, "Reader, Contributor or Admin")->capture_default_str();
  create->add_option("--owner", a->owner, "owner identity the key acts as (default apikey:NAME)");
  CLI::App* list = keys->add_subcommand("list", "list keys (never their secrets)");
  CLI::App* revoke = keys->add_subcommand("revoke", "revoke a key by name");
  revoke->add_option("name", *rname, "key name")->required();
  *subs = {create, list, revoke};

  auto vm = std::make_shared<std::string>();
  auto vv = std::make_shared<std::string>();
  CLI::App* vis = cli.AddCommand("visibility", "who may read a model: private, tenant or public",
                                 [&cli, vm, vv] { return RunVisibility(cli, *vm, *vv); });
  vis->add_option("model", *vm, "model name")->required();
  vis->add_option("visibility", *vv, "private, tenant or public")->required();
}

}  // namespace hart::cli

#include "serve/auth_hook.h"

#include "core/status.h"
#include "fmt/format.h"

namespace hart::serve {

auth::ApiKeyLookup ApiKeyLookupFor(std::shared_ptr<store::Store> store) {
  return [store](const std::string& hash) -> absl::StatusOr<app::Caller> {
    auto k = store->FindApiKey(hash);
    if (!k.ok()) {
      if (absl::IsNotFound(k.status())) return absl::UnauthenticatedError("bearer token: unknown or revoked API key");
      return absl::UnavailableError(fmt::format("API key lookup: {}", Msg(k.status())));
    }
    auto role = auth::ParseRole(k->role);
    if (!role.ok()) return absl::UnauthenticatedError("bearer token: API key has no valid role");
    app::Caller c;
    c.actor = "apikey:" + k->name;
    c.owner = k->owner;
    c.role = *role;
    c.authenticated = true;
    return c;
  };
}

void EnableAuth(Service& svc, std::shared_ptr<auth::Authenticator> a) {
  svc.SetAuth([a](const Request& r) { return a->Authenticate(r.Header("authorization")); });
}

}  // namespace hart::serve

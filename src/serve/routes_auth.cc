// Sign-in routes (issue 14):
//   GET /.well-known/oauth-protected-resource  RFC 9728 metadata: this server
//       as an OAuth protected resource and the authorization server (the OIDC
//       issuer) that signs its tokens; what a 401's WWW-Authenticate points at.
//   GET /auth/config  what the web UI needs to run the authorization code
//       flow with PKCE itself (issuer, discovery URL, client id, scopes).
//   GET /auth/me      who the server thinks the caller is (owner, tenant, role).
//   PUT /api/models/{model}/visibility  {"visibility": "private"|"tenant"|"public"}:
//       the owner (Contributor) or an Admin decides who else reads a model.
// The first two answer without sign-in; with sign-in off they say so.
#include "app/access.h"
#include "auth/authenticator.h"
#include "serve/service.h"

namespace hart::serve {

void AddAuthRoutes(Service& svc) {
  Router& r = svc.router();
  r.Add({.method = "GET",
         .path = "/.well-known/oauth-protected-resource",
         .operation_id = "oauth_protected_resource",
         .summary = "OAuth 2.0 protected-resource metadata (RFC 9728): the issuer that signs this server's tokens.",
         .tag = "auth",
         .handler =
             [&svc](Exchange& ex, const Caller&) {
               const auto& a = svc.options().auth;
               if (a.issuer.empty()) {
                 RespondError(ex, absl::NotFoundError("sign-in is off on this server (hart serve --auth FILE turns it on)"));
                 return;
               }
               nlohmann::json j = {{"resource", svc.BaseUrl(ex.request())},
                                   {"authorization_servers", {a.issuer}},
                                   {"bearer_methods_supported", {"header"}},
                                   {"resource_signing_alg_values_supported", {"RS256", "PS256", "ES256"}},
                                   {"scopes_supported", a.scopes},
                                   {"resource_documentation", svc.BaseUrl(ex.request()) + "/docs"}};
               RespondJson(ex, j);
             },
         .anonymous = true});
  r.Add({.method = "GET",
         .path = "/auth/config",
         .operation_id = "auth_config",
         .summary = "Sign-in settings for browser clients (authorization code flow with PKCE run by the client).",
         .tag = "auth",
         .handler =
             [&svc](Exchange& ex, const Caller&) {
               const auto& a = svc.options().auth;
               if (a.api_keys_only) {
                 // Sign-in is on, with API keys only: there is no provider to run PKCE against.
                 RespondJson(ex, {{"enabled", true}, {"api_keys_only", true}, {"issuer", nullptr}});
                 return;
               }
               if (a.issuer.empty()) {
                 RespondJson(ex, {{"enabled", false}});
                 return;
               }
               RespondJson(ex, {{"enabled", true},
                                {"issuer", a.issuer},
                                {"discovery", a.discovery},
                                {"client_id", a.client_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.client_id)},
                                {"scopes", a.scopes},
                                {"response_type", "code"},
                                {"code_challenge_method", "S256"}});
             },
         .anonymous = true});
  r.Add({.method = "GET",
         .path = "/auth/me",
         .operation_id = "auth_me",
         .summary = "The signed-in caller: owner identity, tenant and role.",
         .tag = "auth",
         .handler =
             [](Exchange& ex, const Caller& c) {
               RespondJson(ex, {{"actor", c.actor},
                                {"owner", c.owner},
                                {"tenant", c.tenant},
                                {"role", std::string(auth::RoleName(c.role))},
                                {"authenticated", c.authenticated}});
             }});
  r.Add({.method = "PUT",
         .path = "/api/models/{model}/visibility",
         .operation_id = "setVisibility",
         .summary = "Who may read a model: private (its owner), tenant (its owner's tenant) or public.",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto body = ParseJsonBody(ex.request());
               if (!body.ok()) return RespondError(ex, body.status());
               if (body->size() != 1 || !body->contains("visibility") || !(*body)["visibility"].is_string())
                 return RespondError(ex, absl::InvalidArgumentError("expected {\"visibility\": \"private\"|\"tenant\"|\"public\"}"),
                                     "visibility");
               auto a = app::SetVisibility(svc.ContextFor(ex, c), {ex.request().params.at("model"), (*body)["visibility"]});
               if (!a.ok()) return RespondError(ex, a.status());
               RespondJson(ex, {{"model", ex.request().params.at("model")},
                                {"owner", a->owner},
                                {"tenant", a->tenant},
                                {"visibility", a->visibility}});
             },
         .request_schema = {{"type", "object"},
                            {"required", {"visibility"}},
                            {"properties", {{"visibility", {{"type", "string"}, {"enum", {"private", "tenant", "public"}}}}}}}});
}

}  // namespace hart::serve

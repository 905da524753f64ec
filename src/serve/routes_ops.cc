// Operations routes: /healthz, /readyz, /metrics, /openapi.json, /docs (the
// Swagger UI from the swagger-ui-dist npm package, copied next to the binary
// at build time).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "serve/errors.h"
#include "serve/service.h"

namespace hart::serve {

namespace {

std::string WebDir(const ServiceOptions& o) {
  if (!o.web_dir.empty()) return o.web_dir;
  // <dir of the hart binary>/web/swagger-ui
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return (exe.parent_path() / "web" / "swagger-ui").string();
}

const char* kDocsPage = R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Hartonomous API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
</script>
</body>
</html>
)";

}  // namespace

void AddOpsRoutes(Service& svc) {
  Router& r = svc.router();
  r.Add({.method = "GET",
         .path = "/healthz",
         .operation_id = "healthz",
         .summary = "Liveness: the process answers.",
         .tag = "operations",
         .handler = [](Exchange& ex, const Caller&) { RespondJson(ex, {{"status", "ok"}}); }});
  r.Add({.method = "GET",
         .path = "/readyz",
         .operation_id = "readyz",
         .summary = "Readiness: the store answers and the server is not draining (503 otherwise).",
         .tag = "operations",
         .handler =
             [&svc](Exchange& ex, const Caller&) {
               if (svc.draining()) {
                 RespondError(ex, absl::UnavailableError("draining: the server is shutting down"));
                 return;
               }
               auto models = svc.store()->ListModels();
               if (!models.ok()) {
                 RespondError(ex, absl::UnavailableError("store not ready: " + std::string(models.status().message())));
                 return;
               }
               RespondJson(ex, {{"status", "ready"}, {"models", models->size()}});
             },
         .response_types = {"application/json"}});
  r.Add({.method = "GET",
         .path = "/metrics",
         .operation_id = "metrics",
         .summary = "Prometheus metrics (text exposition format 0.0.4).",
         .tag = "operations",
         .handler =
             [&svc](Exchange& ex, const Caller&) {
               svc.metrics().connections_open() = static_cast<int64_t>(svc.connections());
               ex.Respond(Response::Text(200, svc.metrics().Render(), "text/plain; version=0.0.4; charset=utf-8"));
             },
         .response_types = {"text/plain"}});
  r.Add({.method = "GET",
         .path = "/openapi.json",
         .operation_id = "openapi",
         .summary = "This API's OpenAPI 3.1 document, built from the route table.",
         .tag = "operations",
         .handler = [&svc](Exchange& ex, const Caller&) { RespondJson(ex, svc.OpenApi()); }});
  r.Add({.method = "GET",
         .path = "/docs",
         .operation_id = "docs",
         .summary = "Swagger UI over /openapi.json.",
         .tag = "operations",
         .handler =
             [&svc](Exchange& ex, const Caller&) {
               std::string dir = WebDir(svc.options());
               if (!std::filesystem::exists(dir + "/swagger-ui-bundle.js")) {
                 RespondError(ex, absl::UnavailableError("the Swagger UI files are not installed at " + dir +
                                                         " (run `npm ci --prefix web` and rebuild); "
                                                         "/openapi.json is still served"));
                 return;
               }
               ex.Respond(Response::Text(200, kDocsPage, "text/html; charset=utf-8"));
             },
         .response_types = {"text/html"}});
  r.Add({.method = "GET",
         .path = "/docs/{file}",
         .operation_id = "docs_asset",
         .summary = "Swagger UI asset files.",
         .tag = "operations",
         .handler =
             [&svc](Exchange& ex, const Caller&) {
               const std::string& f = ex.request().params.at("file");
               // Only the files swagger-ui-dist ships: plain names, no traversal.
               bool ok = !f.empty() && f.size() < 100 && f.find("..") == std::string::npos;
               for (char c : f)
                 if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) ok = false;
               std::string path = WebDir(svc.options()) + "/" + f;
               std::ifstream in(path, std::ios::binary);
               if (!ok || !in) {
                 RespondError(ex, absl::NotFoundError("no Swagger UI file named \"" + f + "\""));
                 return;
               }
               std::stringstream ss;
               ss << in.rdbuf();
               std::string type = absl::EndsWith(f, ".css")    ? "text/css"
                                  : absl::EndsWith(f, ".js")   ? "text/javascript"
                                  : absl::EndsWith(f, ".png")  ? "image/png"
                                  : absl::EndsWith(f, ".html") ? "text/html"
                                                               : "application/octet-stream";
               Response resp = Response::Text(200, ss.str(), type);
               resp.headers["cache-control"] = "public, max-age=3600";
               ex.Respond(std::move(resp));
             },
         .response_types = {"text/javascript", "text/css"},
         .hidden = true});
}

nlohmann::json Service::OpenApi() const {
  using nlohmann::json;
  json paths = json::object();
  for (const Route& r : router_.routes()) {
    if (r.hidden) continue;
    json op = {{"operationId", r.operation_id}, {"summary", r.summary}, {"tags", {r.tag}}};
    json params = json::array();
    for (const std::string& seg : SplitPath(r.path)) {
      if (seg.size() > 2 && seg.front() == '{') {
        params.push_back({{"name", seg.substr(1, seg.size() - 2)},
                          {"in", "path"},
                          {"required", true},
                          {"schema", {{"type", "string"}}}});
      }
    }
    for (const json& q : r.query_params) {
      json p = {{"name", q.at("name")}, {"in", "query"}, {"required", q.value("required", false)}};
      p["schema"] = q.contains("schema") ? q["schema"] : json{{"type", "string"}};
      if (q.contains("description")) p["description"] = q["description"];
      params.push_back(p);
    }
    if (!params.empty()) op["parameters"] = params;
    if (!r.request_schema.is_null()) {
      op["requestBody"] = {{"required", true}, {"content", {{r.request_type, {{"schema", r.request_schema}}}}}};
    }
    json content = json::object();
    for (const std::string& t : r.response_types) content[t] = {{"schema", json::object()}};
    op["responses"] = {{"200", {{"description", "OK"}, {"content", content}}},
                       {"default",
                        {{"description", "An error (OpenAI's error object)"},
                         {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}}}};
    std::string method = r.method;
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    paths[r.path][method] = op;
  }
  json error_schema = {
      {"type", "object"},
      {"required", {"error"}},
      {"properties",
       {{"error",
         {{"type", "object"},
          {"required", {"message", "type"}},
          {"properties",
           {{"message", {{"type", "string"}}},
            {"type", {{"type", "string"}}},
            {"param", {{"type", {"string", "null"}}}},
            {"code", {{"type", {"string", "null"}}}}}}}}}}};
  return {{"openapi", "3.1.0"},
          {"info",
           {{"title", "Hartonomous"},
            {"version", "0.1.0"},
            {"description",
             "REST over the model store, the OpenAI-compatible API, and operations. Every error is OpenAI's "
             "error object."}}},
          {"paths", paths},
          {"components", {{"schemas", {{"Error", error_schema}}}}}};
}

}  // namespace hart::serve

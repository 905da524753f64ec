// The web UI (web/, built by Vite into <build>/web/ui): index.html at / and
// the hashed bundles under /assets/. Caching follows the file names: assets
// carry a content hash, so they are immutable for a year; index.html names
// the current hashes, so it is revalidated on every load (no-cache). Every
// UI response carries a strict Content-Security-Policy: scripts, styles and
// fetches from this origin only, no inline script or eval, no framing, so a
// model name or metadata value holding HTML can never run as code even if a
// renderer slipped. The SPA routes with the URL fragment (#/models/x), so
// the server never needs a catch-all path.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "app/catalog.h"
#include "nlohmann/json.hpp"
#include "serve/errors.h"
#include "serve/service.h"

namespace hart::serve {

namespace {

// connect-src adds ServiceOptions::ui_connect_src (the sign-in provider);
// an origin holding anything but URL characters is left out.
std::string Csp(const ServiceOptions& o) {
  std::string connect = "'self'";
  for (const std::string& origin : o.ui_connect_src) {
    bool ok = !origin.empty();
    for (char c : origin)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr(":/.-_[]", c))) ok = false;
    if (ok) connect += " " + origin;
  }
  return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src " +
         connect + "; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
}

std::string UiDir(const ServiceOptions& o) {
  if (!o.ui_dir.empty()) return o.ui_dir;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return (exe.parent_path() / "web" / "ui").string();
}

std::string ContentType(const std::string& f) {
  if (absl::EndsWith(f, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(f, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(f, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(f, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(f, ".png")) return "image/png";
  if (absl::EndsWith(f, ".json") || absl::EndsWith(f, ".map")) return "application/json";
  if (absl::EndsWith(f, ".woff2")) return "font/woff2";
  return "application/octet-stream";
}

// A plain file name: letters, digits, '-', '_', '.'; no traversal.
bool PlainName(const std::string& f) {
  if (f.empty() || f.size() > 200 || f.find("..") != std::string::npos || f[0] == '.') return false;
  for (char c : f)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

void SecurityHeaders(const ServiceOptions& o, Response& r) {
  r.headers["content-security-policy"] = Csp(o);
  r.headers["x-content-type-options"] = "nosniff";
  r.headers["referrer-policy"] = "no-referrer";
  r.headers["x-frame-options"] = "DENY";
}

void ServeUiFile(Service& svc, Exchange& ex, const std::string& rel, const char* cache_control) {
  std::string dir = UiDir(svc.options());
  std::ifstream in(dir + "/" + rel, std::ios::binary);
  if (!in) {
    if (rel == "index.html") {
      Response resp = Response::Text(
          503,
          "The web UI is not built at " + dir +
              ": run `npm ci --prefix web` and rebuild (make), or pass --ui-dir. The API is served at /api and /v1.\n");
      SecurityHeaders(svc.options(), resp);
      ex.Respond(std::move(resp));
      return;
    }
    RespondError(ex, absl::NotFoundError("no web UI file named \"" + rel + "\""));
    return;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  Response resp = Response::Text(200, ss.str(), ContentType(rel));
  resp.headers["cache-control"] = cache_control;
  SecurityHeaders(svc.options(), resp);
  ex.Respond(std::move(resp));
}

}  // namespace

void AddUiRoutes(Service& svc) {
  Router& r = svc.router();
  r.Add({.method = "GET",
         .path = "/",
         .operation_id = "ui",
         .summary = "The web UI.",
         .tag = "operations",
         .handler = [&svc](Exchange& ex, const Caller&) { ServeUiFile(svc, ex, "index.html", "no-cache"); },
         .response_types = {"text/html"},
         .hidden = true});
  r.Add({.method = "GET",
         .path = "/assets/{file}",
         .operation_id = "ui_asset",
         .summary = "The web UI's content-hashed files.",
         .tag = "operations",
         .handler =
             [&svc](Exchange& ex, const Caller&) {
               const std::string& f = ex.request().params.at("file");
               if (!PlainName(f)) {
                 RespondError(ex, absl::NotFoundError("no web UI file named \"" + f + "\""));
                 return;
               }
               ServeUiFile(svc, ex, "assets/" + f, "public, max-age=31536000, immutable");
             },
         .response_types = {"text/javascript", "text/css"},
         .hidden = true});
  // Each model's physical (deduplicated) bytes for any caller, not only
  // Admins (issue 16): the unique chunk bytes of that model's own versions.
  // That number depends on the model's contents alone, never on which other
  // models share its chunks, so it tells a Reader nothing about models it
  // cannot read (docs/AUTH.md: dedup across owners stays invisible); the
  // whole-store totals of /api/stats stay Admin-only and are left out.
  r.Add({.method = "GET",
         .path = "/api/ui/model-sizes",
         .operation_id = "uiModelSizes",
         .summary = "Logical and physical bytes of each model the caller may read (no store totals).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               app::Context ctx = svc.ContextFor(ex, c);
               auto list = app::List(ctx, app::ListRequest{});
               if (!list.ok()) return RespondError(ex, list.status());
               std::set<std::string> readable;
               for (const auto& m : list->models) readable.insert(m.name);
               auto stats = ctx.st().Stats();
               if (!stats.ok()) return RespondError(ex, stats.status());
               nlohmann::json out = nlohmann::json::array();
               for (const auto& m : stats->models) {
                 if (!readable.count(m.model)) continue;
                 out.push_back({{"model", m.model},
                                {"versions", m.versions},
                                {"logical_bytes", m.logical_bytes},
                                {"physical_bytes", m.physical_bytes}});
               }
               RespondJson(ex, out);
             }});
  r.Add({.method = "GET",
         .path = "/favicon.svg",
         .operation_id = "ui_icon",
         .summary = "The web UI's icon.",
         .tag = "operations",
         .handler = [&svc](Exchange& ex, const Caller&) { ServeUiFile(svc, ex, "favicon.svg", "public, max-age=86400"); },
         .response_types = {"image/svg+xml"},
         .hidden = true});
}

}  // namespace hart::serve

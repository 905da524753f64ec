// `hart serve [--addr 127.0.0.1:8080] ...`: the HTTP server (src/serve/):
// REST over the store, the OpenAI-compatible API, /metrics, /openapi.json.
// Only argument parsing lives here. Without sign-in (issue 14) it listens
// on loopback only.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "mcp/http.h"
#include "auth/authenticator.h"
#include "serve/auth_hook.h"
#include "serve/service.h"

namespace hart::cli {
namespace {

struct ServeArgs {
  std::string addr = "127.0.0.1:8080";
  std::string max_body = "8M";
  std::string max_upload = "16G";
  std::string mem_budget;
  int max_generations = 4;
  std::string prompt_cache = "256M";
  int max_queue = 8;
  double header_timeout = 10;
  double idle_timeout = 60;
  double write_timeout = 30;
  int io_threads = 1;
  int64_t sql_max_rows = 10000;
  double sql_timeout = 10;
  std::string port_file;
  std::string web_dir;
  std::string ui_dir;
  std::vector<std::string> ui_connect_src;
  bool no_access_log = false;
  bool mcp_enable_writes = false;
  std::string auth_file;
  std::string public_url;
};

// "host:port", "[v6]:port", ":port" (loopback). Only loopback is allowed.
absl::Status ParseAddr(const std::string& addr, std::string* host, uint16_t* port, bool signin) {
  std::string h, p;
  if (!addr.empty() && addr[0] == '[') {
    size_t close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return absl::InvalidArgumentError("--addr \"" + addr + "\": expected [IPv6]:PORT");
    }
    h = addr.substr(1, close - 1);
    p = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string::npos) return absl::InvalidArgumentError("--addr \"" + addr + "\": expected HOST:PORT");
    h = addr.substr(0, colon);
    p = addr.substr(colon + 1);
  }
  if (h.empty() || h == "localhost") h = "127.0.0.1";
  uint32_t pv = 0;
  if (!absl::SimpleAtoi(p, &pv) || pv > 65535) {
    return absl::InvalidArgumentError("--addr \"" + addr + "\": port must be 0..65535");
  }
  bool loopback = h == "::1" || h.rfind("127.", 0) == 0;
  if (!loopback && !signin) {
    return absl::InvalidArgumentError("--addr \"" + addr +
                                      "\": without sign-in the server listens on loopback only "
                                      "(127.0.0.0/8 or [::1]); put a reverse proxy with authentication in front "
                                      "to reach it from elsewhere");
  }
  *host = h;
  *port = static_cast<uint16_t>(pv);
  return absl::OkStatus();
}

int RunServe(Cli& cli, const ServeArgs& a) {
  serve::ServiceOptions o;
  absl::Status st = ParseAddr(a.addr, &o.http.host, &o.http.port, !a.auth_file.empty());
  if (!st.ok()) return Fail(st);
  for (auto [flag, text, out] : {std::tuple{"--max-body", &a.max_body, &o.max_body},
                                 std::tuple{"--max-upload", &a.max_upload, &o.max_upload}}) {
    if (!ParseBytes(*text, out)) return Fail(std::string(flag) + " \"" + *text + "\": expected a size like 8M");
  }
  if (!a.mem_budget.empty() && !ParseBytes(a.mem_budget, &o.mem_budget)) {
    return Fail("--mem-budget \"" + a.mem_budget + "\": expected a size like 2G");
  }
  if (a.max_generations < 1 || a.max_queue < 0) return Fail("--max-generations must be >= 1, --max-queue >= 0");
  o.max_generations = a.max_generations;
  if (!ParseBytes(a.prompt_cache, &o.prompt_cache_bytes)) {
    return Fail("--prompt-cache \"" + a.prompt_cache + "\": expected a size like 256M (0: off)");
  }
  o.max_queue = a.max_queue;
  auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  o.http.header_timeout = ms(a.header_timeout);
  o.http.idle_timeout = ms(a.idle_timeout);
  o.http.write_timeout = ms(a.write_timeout);
  o.http.io_threads = a.io_threads;
  o.sql_max_rows = a.sql_max_rows;
  o.sql_timeout_seconds = a.sql_timeout;
  o.web_dir = a.web_dir;
  o.ui_dir = a.ui_dir;
  o.ui_connect_src = a.ui_connect_src;
  o.access_log = !a.no_access_log;

  auto store = cli.OpenStore();
  if (!store.ok()) return Fail(store.status());
  std::shared_ptr<store::Store> shared(std::move(*store));
  o.http.upload_dir = shared->dir();
  std::shared_ptr<auth::Authenticator> authn;
  if (a.auth_file == "keys") {
    // API keys without an identity provider (scripts, CI): bearer JWTs are
    // refused, every request needs a live `hart keys` key.
    o.auth.api_keys_only = true;
    authn = std::make_shared<auth::Authenticator>(auth::AuthConfig{}, nullptr, serve::ApiKeyLookupFor(shared));
  } else if (!a.auth_file.empty()) {
    auto cfg = auth::LoadAuthConfig(a.auth_file);
    if (!cfg.ok()) return Fail(cfg.status());
    o.auth = {cfg->issuer, cfg->client_id, cfg->scopes, cfg->discovery};
    // The web UI fetches the provider's discovery document and token endpoint
    // itself (PKCE): let its CSP reach the provider's origins.
    for (const std::string& url : {cfg->issuer, cfg->discovery}) {
      size_t scheme = url.find("://");
      size_t end = scheme == std::string::npos ? std::string::npos : url.find('/', scheme + 3);
      std::string origin = url.substr(0, end);
      if (scheme != std::string::npos &&
          std::find(o.ui_connect_src.begin(), o.ui_connect_src.end(), origin) == o.ui_connect_src.end())
        o.ui_connect_src.push_back(origin);
    }
    authn = std::make_shared<auth::Authenticator>(*cfg, std::make_shared<auth::OidcKeySource>(*cfg),
                                                  serve::ApiKeyLookupFor(shared));
  }
  o.public_url = a.public_url;
  serve::Service svc(o, shared);
  mcp::AddMcpRoutes(svc, mcp::HttpOptions{.enable_writes = a.mcp_enable_writes});
  if (authn) {
    serve::EnableAuth(svc, authn);
  }
  st = svc.Listen();
  if (!st.ok()) return Fail(st);
  std::string where = (o.http.host.find(':') != std::string::npos ? "[" + o.http.host + "]" : o.http.host) + ":" +
                      std::to_string(svc.port());
  std::fprintf(stderr, "{\"level\":\"info\",\"msg\":\"listening\",\"addr\":\"%s\",\"store\":\"%s\"}\n", where.c_str(),
               shared->dir().c_str());
  if (!a.port_file.empty()) {
    std::string tmp = a.port_file + ".tmp";
    std::ofstream(tmp) << svc.port() << "\n";
    std::rename(tmp.c_str(), a.port_file.c_str());
  }
  svc.Run(/*handle_signals=*/true);
  std::fprintf(stderr, "{\"level\":\"info\",\"msg\":\"drained; exiting\"}\n");
  return kExitOk;
}

}  // namespace

void RegisterServe(Cli& cli) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* c = cli.AddCommand("serve", "Serve the store over HTTP: REST, the OpenAI-compatible API, /metrics",
                               [&cli, args] { return RunServe(cli, *args); });
  c->add_option("--addr", args->addr, "Address to listen on, HOST:PORT (loopback only; port 0: any free port)")
      ->capture_default_str();
  c->add_option("--max-body", args->max_body, "Largest JSON request body")->capture_default_str();
  c->add_option("--max-upload", args->max_upload, "Largest model upload (POST /api/ingest)")->capture_default_str();
  c->add_option("--mem-budget", args->mem_budget, "Resident weight bytes of all loaded models together: idle ones are evicted least recently used, a model larger than what is free streams (default: no limit)");
  c->add_option("--max-generations", args->max_generations,
                "Generations running at once (decoded together, one batch per model)")->capture_default_str();
  c->add_option("--prompt-cache", args->prompt_cache,
                "K/V of earlier prompts kept per model for reuse (0: off)")->capture_default_str();
  c->add_option("--max-queue", args->max_queue, "Generations waiting for a slot before 429")->capture_default_str();
  c->add_option("--header-timeout", args->header_timeout, "Seconds a request's header may take")
      ->capture_default_str();
  c->add_option("--idle-timeout", args->idle_timeout, "Seconds an idle keep-alive connection stays open")
      ->capture_default_str();
  c->add_option("--write-timeout", args->write_timeout, "Seconds a client may take to accept each write")
      ->capture_default_str();
  c->add_option("--io-threads", args->io_threads, "Threads doing network I/O")->capture_default_str();
  c->add_option("--sql-max-rows", args->sql_max_rows, "Row cap of POST /api/sql")->capture_default_str();
  c->add_option("--sql-timeout", args->sql_timeout, "Seconds cap of POST /api/sql")->capture_default_str();
  c->add_option("--port-file", args->port_file, "Write the bound port to this file once listening");
  c->add_option("--web-dir", args->web_dir, "Directory of the swagger-ui-dist files for /docs");
  c->add_option("--ui-dir", args->ui_dir, "Directory of the built web UI served at / (default: web/ui beside hart)");
  c->add_option("--ui-connect-src", args->ui_connect_src,
                "An origin the web UI may fetch from besides this server (the sign-in provider), repeatable");
  c->add_flag("--no-access-log", args->no_access_log, "Do not log one JSON line per request on stderr");
  c->add_flag("--mcp-enable-writes", args->mcp_enable_writes,
              "Offer the MCP write tools (ingest, delete_version) at /mcp to callers whose role allows");
  c->add_option("--auth", args->auth_file,
                "Sign-in settings (JSON: issuer, audience, ...; docs/AUTH.md): every request then needs a bearer "
                "token or API key, and --addr may be any address. The word `keys` instead of a file: API keys "
                "(`hart keys`) only, no identity provider (a settings file named keys: ./keys)");
  c->add_option("--public-url", args->public_url, "The base URL clients reach this server at (for sign-in metadata)");
}

}  // namespace hart::cli

// Sign-in through the real server (serve::Service on 127.0.0.1, in this
// process) over a real store: 401 with WWW-Authenticate for missing and bad
// credentials, the RFC 9728 metadata without sign-in, API keys, and the
// access matrix: owners x visibilities x roles x the REST and OpenAI routes,
// with zero reads or writes that app/access.h forbids.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <sqlite3.h>

#include "app/access.h"
#include "app/transfer.h"
#include "auth/authenticator.h"
#include "mcp/http.h"
#include "serve/auth_hook.h"
#include "serve/service.h"
#include "tests/app/app_test_util.h"
#include "tests/auth/oidc_provider.h"
#include "tests/serve/http_client.h"

namespace hart::auth_test {
namespace {

using serve_test::Http;
using serve_test::HttpResponse;

struct Who {
  std::string name;  // oid
  std::string tenant;
  std::string role;  // "" : no roles claim
};

class AuthServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::SetEnabled(false);
    rsa_ = new TestKey(MakeRsaKey("k1"));
  }
  void SetUp() override {
    provider_ = std::make_unique<OidcProvider>();
    provider_->Publish(*rsa_);
    root_ = cli_test::MakeTempDir("hart_auth_serve_");
    ASSERT_TRUE(store::Store::Init(root_ + "/store").ok());
    auto s = store::Store::Open(root_ + "/store");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::shared_ptr<store::Store>(std::move(*s));
    // The models, ingested by the local user, then given owners.
    app::Context local;
    local.store = store_;
    local.actor = "setup";
    for (const auto& [model, owner, vis] : kModels) {
      app::IngestRequest req;
      req.path = app::testing::Fixture("base.safetensors");
      req.model = model;
      req.license = "mit";
      auto r = app::Ingest(local, req);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_TRUE(store_->SetModelAccess(model, {Owner(owner), "t1", vis}, "setup").ok());
    }
    auth::AuthConfig cfg;
    cfg.issuer = provider_->issuer();
    cfg.audience = {"api://hart"};
    cfg.discovery = cfg.issuer + "/.well-known/openid-configuration";
    cfg.http_timeout_seconds = 1;
    serve::ServiceOptions o;
    o.http.host = "127.0.0.1";
    o.http.port = 0;
    o.access_log = false;
    o.auth = {cfg.issuer, "hart-web", {"openid", "profile"}, cfg.discovery};
    svc_ = std::make_unique<serve::Service>(o, store_);
    serve::EnableAuth(*svc_, std::make_shared<auth::Authenticator>(cfg, std::make_shared<auth::OidcKeySource>(cfg),
                                                                   serve::ApiKeyLookupFor(store_)));
    mcp::AddMcpRoutes(*svc_);
    ASSERT_TRUE(svc_->Listen().ok());
    thread_ = std::thread([this] { svc_->Run(false); });
  }
  void TearDown() override {
    svc_->Drain();
    thread_.join();
    svc_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  std::string Owner(const std::string& oid) const { return provider_->issuer() + "|" + oid; }
  std::string Token(const Who& w) const {
    int64_t now = std::time(nullptr);
    json c = {{"iss", provider_->issuer()}, {"aud", "api://hart"}, {"exp", now + 600}, {"iat", now},
              {"oid", w.name}, {"sub", "s-" + w.name}, {"tid", w.tenant}};
    if (!w.role.empty()) c["roles"] = {w.role};
    return Mint("RS256", *rsa_, c);
  }
  HttpResponse Call(const Who& w, const std::string& method, const std::string& target, const std::string& body = "") {
    return Http(svc_->port(), method, target, body, {{"authorization", "Bearer " + Token(w)}});
  }
  // The rule in words, written independently of app/access.cc.
  static bool ShouldRead(const Who& w, const std::string& owner, const std::string& vis) {
    return w.role == "Admin" || w.name == owner || vis == "public" || (vis == "tenant" && w.tenant == "t1");
  }
  static bool ShouldWrite(const Who& w, const std::string& owner) {
    return w.role == "Admin" || (w.role == "Contributor" && w.name == owner);
  }

  static inline const std::vector<std::tuple<std::string, std::string, std::string>> kModels = {
      {"alice-private", "alice", "private"},
      {"alice-tenant", "alice", "tenant"},
      {"alice-public", "alice", "public"},
      {"bob-private", "bob", "private"},
  };
  static inline const std::vector<Who> kCallers = {
      {"alice", "t1", ""},  {"alice", "t1", "Contributor"}, {"bob", "t1", "Reader"},
      {"carol", "t2", "Contributor"}, {"dave", "", ""},     {"root", "t9", "Admin"},
  };

  static TestKey* rsa_;
  std::unique_ptr<OidcProvider> provider_;
  std::string root_;
  std::shared_ptr<store::Store> store_;
  std::unique_ptr<serve::Service> svc_;
  std::thread thread_;
};
TestKey* AuthServe::rsa_ = nullptr;

TEST_F(AuthServe, MissingOrBadCredentialsGet401WithAChallenge) {
  HttpResponse r = Http(svc_->port(), "GET", "/api/models");
  EXPECT_EQ(r.status, 401);
  std::string ch = r.Header("www-authenticate");
  EXPECT_EQ(ch.rfind("Bearer ", 0), 0u) << ch;
  EXPECT_NE(ch.find("resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource\""), std::string::npos) << ch;
  EXPECT_EQ(ch.find("error="), std::string::npos) << "no error code when no credential was sent (RFC 6750 3.1)";
  EXPECT_EQ(r.Json()["error"]["type"], "authentication_error") << r.body;
  int64_t now = std::time(nullptr);
  std::vector<std::string> bad = {
      "Bearer garbage", "Basic YTpi", "Bearer " + std::string(7000, 'x'), "Bearer hart_" + std::string(43, 'A'),
      "Bearer " + Mint("RS256", *rsa_, {{"iss", provider_->issuer()}, {"aud", "api://hart"}, {"exp", now - 3600}, {"oid", "alice"}}),
      "Bearer " + MintHs256WithPublicKey(*rsa_, {{"iss", provider_->issuer()}, {"aud", "api://hart"}, {"exp", now + 600}, {"oid", "alice"}}),
  };
  // Bigger than the server takes in a header: refused before any parsing.
  EXPECT_EQ(Http(svc_->port(), "GET", "/api/models", "", {{"authorization", "Bearer " + std::string(20000, 'x')}}).status, 431);
  for (const auto& h : bad) {
    for (const char* path : {"/api/models", "/v1/models", "/auth/me", "/api/versions/alice-public@1", "/metrics"}) {
      HttpResponse b = Http(svc_->port(), "GET", path, "", {{"authorization", h}});
      EXPECT_EQ(b.status, 401) << path << " " << h.substr(0, 30);
      EXPECT_NE(b.Header("www-authenticate").find("error=\"invalid_token\""), std::string::npos) << b.Header("www-authenticate");
      EXPECT_EQ(b.body.find("alice-public"), std::string::npos) << "nothing else in the answer";
    }
  }
}

TEST_F(AuthServe, MetadataAndProbesAnswerWithoutSignIn) {
  HttpResponse m = Http(svc_->port(), "GET", "/.well-known/oauth-protected-resource");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(m.Json()["authorization_servers"], json::array({provider_->issuer()}));
  EXPECT_EQ(m.Json()["resource"], "http://127.0.0.1");
  HttpResponse c = Http(svc_->port(), "GET", "/auth/config");
  ASSERT_EQ(c.status, 200);
  EXPECT_EQ(c.Json()["client_id"], "hart-web");
  EXPECT_EQ(c.Json()["code_challenge_method"], "S256");
  EXPECT_EQ(Http(svc_->port(), "GET", "/healthz").status, 200);
  HttpResponse me = Call({"alice", "t1", "Contributor"}, "GET", "/auth/me");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.Json()["owner"], Owner("alice"));
  EXPECT_EQ(me.Json()["role"], "Contributor");
  EXPECT_EQ(me.Json()["tenant"], "t1");
}

TEST_F(AuthServe, ApiKeysActAsTheirOwnerUntilRevoked) {
  std::string secret = auth::NewApiKeySecret();
  ASSERT_TRUE(store_->CreateApiKey({.name = "ci", .owner = Owner("alice"), .role = "Reader"}, auth::ApiKeyHash(secret), "setup").ok());
  auto get = [&](const std::string& path) {
    return Http(svc_->port(), "GET", path, "", {{"authorization", "Bearer " + secret}});
  };
  HttpResponse me = get("/auth/me");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.Json()["actor"], "apikey:ci");
  EXPECT_EQ(get("/api/models/alice-private").status, 200);  // its owner's private model
  EXPECT_EQ(get("/api/models/bob-private").status, 404);
  ASSERT_TRUE(store_->RevokeApiKey("ci", "setup").ok());
  EXPECT_EQ(get("/auth/me").status, 401);
}

TEST_F(AuthServe, AccessMatrixAllowsExactlyTheRule) {
  // The one original file of each version (all ingested from the same fixture).
  auto v1 = store_->Resolve({"alice-public", 1});
  ASSERT_TRUE(v1.ok());
  auto files = store_->ListFiles(v1->id);
  ASSERT_TRUE(files.ok() && files->size() == 1u);
  const std::string file_name = (*files)[0].name;
  auto models_in = [](const json& list, const char* field) {
    std::set<std::string> out;
    for (const auto& e : list) out.insert(e[field].get<std::string>());
    return out;
  };
  for (const Who& w : kCallers) {
    SCOPED_TRACE(w.name + "/" + w.tenant + "/" + (w.role.empty() ? "none" : w.role));
    std::set<std::string> want;
    for (const auto& [m, owner, vis] : kModels)
      if (ShouldRead(w, owner, vis)) want.insert(m);
    // Lists show exactly what may be read.
    HttpResponse l = Call(w, "GET", "/api/models");
    ASSERT_EQ(l.status, 200) << l.body;
    EXPECT_EQ(models_in(l.Json(), "name"), want);
    HttpResponse sizes = Call(w, "GET", "/api/ui/model-sizes");
    ASSERT_EQ(sizes.status, 200) << sizes.body;
    EXPECT_EQ(models_in(sizes.Json(), "model"), want);
    HttpResponse v1 = Call(w, "GET", "/v1/models");
    ASSERT_EQ(v1.status, 200);
    std::set<std::string> ids = models_in(v1.Json()["data"], "id"), want_ids;
    for (const auto& m : want) want_ids.insert({m, m + "@1"});
    EXPECT_EQ(ids, want_ids);
    for (const auto& [m, owner, vis] : kModels) {
      SCOPED_TRACE(m);
      const bool read = ShouldRead(w, owner, vis);
      const std::string ref = m + "@1";
      for (const std::string& path :
           {"/api/models/" + m, "/api/versions/" + ref, "/api/versions/" + ref + "/tensors",
            "/api/versions/" + ref + "/components", "/api/versions/" + ref + "/download",
            "/api/diff?a=" + ref + "&b=alice-public@1", "/api/diff?a=alice-public@1&b=" + ref, "/v1/models/" + m,
            "/api/versions/" + ref + "/files/" + file_name,
            "/api/versions/" + ref + "/histogram?tensor=model.embed_tokens.weight",
            "/api/versions/" + ref + "/heatmap?tensor=model.embed_tokens.weight&rows=4&cols=4"}) {
        HttpResponse r = Call(w, "GET", path);
        EXPECT_EQ(r.status, read ? 200 : 404) << path << ": " << r.body.substr(0, 200);
        if (!read) {
          // Word for word the answer for a model that does not exist.
          std::string ghost = path;
          ghost.replace(ghost.find(m), m.size(), std::string(m.size(), 'z'));
          HttpResponse g = Call(w, "GET", ghost);
          std::string body = r.body;
          body.replace(body.find(m), m.size(), std::string(m.size(), 'z'));
          EXPECT_EQ(g.status, 404);
          EXPECT_EQ(body, g.body) << path;
        }
      }
      for (const auto& [method, path, body] : std::vector<std::tuple<std::string, std::string, std::string>>{
               {"GET", "/api/similar?target=" + ref, ""},
               {"POST", "/api/plan", json{{"version", ref}}.dump()},
               {"POST", "/api/diff/norms", json{{"a", ref}, {"b", "alice-public@1"}}.dump()},
               {"POST", "/api/diff/norms", json{{"a", "alice-public@1"}, {"b", ref}}.dump()},
               {"POST", "/api/load", json{{"version", ref}, {"names", {"model.embed_tokens.weight"}}}.dump()},
               {"POST", "/v1/embeddings", json{{"model", m}, {"input", "hi"}}.dump()},
               {"POST", "/v1/completions", json{{"model", ref}, {"prompt", "hi"}, {"max_tokens", 1}}.dump()},
               {"POST", "/v1/chat/completions",
                json{{"model", m}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 1}}.dump()}}) {
        HttpResponse r = Call(w, method, path, body);
        if (read) EXPECT_NE(r.status, 404) << path << ": " << r.body.substr(0, 200);
        else EXPECT_EQ(r.status, 404) << path << ": " << r.body.substr(0, 200);
      }
      // Writes the rule forbids change nothing: 404 when unreadable, 403 when readable.
      if (!ShouldWrite(w, owner)) {
        HttpResponse d = Call(w, "DELETE", "/api/versions/" + ref);
        EXPECT_EQ(d.status, read ? 403 : 404) << d.body;
        HttpResponse i = Call(w, "POST", "/api/ingest?filename=x.safetensors&model=" + m, "not a model");
        EXPECT_EQ(i.status, read ? 403 : 404) << i.body;
        EXPECT_TRUE(store_->Resolve({m, 1}).ok());
      }
    }
    // Search and events mention only readable models.
    HttpResponse s = Call(w, "GET", "/api/search?q=alice%20OR%20bob%20OR%20private&k=100");
    ASSERT_EQ(s.status, 200) << s.body;
    for (const auto& h : s.Json()) EXPECT_TRUE(want.count(app::ModelOfRef(h["ref"].get<std::string>()))) << h.dump();
    HttpResponse e = Call(w, "GET", "/api/events");
    ASSERT_EQ(e.status, 200) << e.body;
    json evs = e.Json();
    ASSERT_TRUE(evs.is_array()) << e.body;
    if (w.role == "Admin") EXPECT_GE(evs.size(), kModels.size());
    for (const auto& ev : evs)
      EXPECT_TRUE(want.count(ev["payload"].value("model", std::string("?")))) << ev.dump();
    // Store-wide work is the Admin's.
    const int admin = w.role == "Admin" ? 200 : 403;
    EXPECT_EQ(Call(w, "GET", "/api/stats").status, admin);
    EXPECT_EQ(Call(w, "POST", "/api/sql", json{{"sql", "SELECT actor FROM audit"}}.dump()).status, admin);
    EXPECT_EQ(Call(w, "POST", "/api/verify", "{}").status, admin);
    EXPECT_EQ(Call(w, "GET", "/api/runtime/models").status, admin);
  }
}

TEST_F(AuthServe, SqlSeesOnlyReadableModelsAndNoBaseTable) {
  const Who root{"root", "t9", "Admin"};
  auto sql = [&](const Who& w, const std::string& q) {
    return Call(w, "POST", "/api/sql", json{{"sql", q}, {"max_rows", 10000}}.dump());
  };
  auto column = [&](const HttpResponse& r, const char* field) {
    std::multiset<std::string> out;
    const json body = r.Json();
    for (const auto& row : body["rows"]) out.insert(row[field].is_string() ? row[field].get<std::string>() : row[field].dump());
    return out;
  };
  // One tensor id per model, and the chunk references of the whole store, as the Admin sees them.
  HttpResponse ids = sql(root, "SELECT model, MIN(id) AS id FROM tensors GROUP BY model");
  ASSERT_EQ(ids.status, 200) << ids.body;
  std::map<std::string, int64_t> tensor_of;
  const json id_rows = ids.Json()["rows"];
  for (const auto& row : id_rows) tensor_of[row["model"].get<std::string>()] = row["id"].get<int64_t>();
  ASSERT_EQ(tensor_of.size(), kModels.size()) << ids.body;
  HttpResponse refs = sql(root, "SELECT SUM(tensor_refs) AS n FROM chunks");
  ASSERT_EQ(refs.status, 200) << refs.body;
  const int64_t all_refs = refs.Json()["rows"][0]["n"].get<int64_t>();
  ASSERT_GT(all_refs, 0);

  for (const Who& w : kCallers) {
    SCOPED_TRACE(w.name + "/" + w.tenant + "/" + (w.role.empty() ? "none" : w.role));
    std::set<std::string> want;
    for (const auto& [m, owner, vis] : kModels)
      if (ShouldRead(w, owner, vis)) want.insert(m);
    auto models_of = [&](const std::string& q, const char* field, bool refs_too) {
      HttpResponse r = sql(w, q);
      EXPECT_EQ(r.status, 200) << q << ": " << r.body;
      std::set<std::string> out;
      for (const auto& v : column(r, field)) out.insert(refs_too ? app::ModelOfRef(v) : v);
      return out;
    };
    // Every view: only readable models, and all of them.
    EXPECT_EQ(models_of("SELECT * FROM models", "name", false), want);
    EXPECT_EQ(models_of("SELECT * FROM versions", "model", false), want);
    EXPECT_EQ(models_of("SELECT * FROM components", "ref", true), want);
    EXPECT_EQ(models_of("SELECT * FROM tensors", "model", false), want);
    for (const auto& m : models_of("SELECT * FROM edges", "ref", true)) EXPECT_TRUE(want.count(m)) << m;
    for (const auto& m : models_of("SELECT * FROM derivations", "ref", true)) EXPECT_TRUE(want.count(m)) << m;
    for (const auto& m : models_of("SELECT * FROM search_text('alice OR bob OR private', 100)", "ref", true))
      EXPECT_TRUE(want.count(m)) << m;
    // All four models hold the same bytes: a caller counts only its readable share of each chunk.
    HttpResponse c = sql(w, "SELECT COALESCE(SUM(tensor_refs), 0) AS n FROM chunks");
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(c.Json()["rows"][0]["n"].get<int64_t>(), all_refs * static_cast<int64_t>(want.size()) /
                                                           static_cast<int64_t>(kModels.size()));
    // The functions refuse an unreadable model's components in the words used for an absent one.
    for (const auto& [m, owner, vis] : kModels) {
      SCOPED_TRACE(m);
      const bool read = ShouldRead(w, owner, vis);
      const std::string id = std::to_string(tensor_of[m]), ghost = "987654321";
      for (const std::string& q :
           {"SELECT tensor_stats(" + id + ") AS s", "SELECT tensor_values(" + id + ", 0, 4) AS s",
            "SELECT tensor_row(" + id + ", 0) AS s", "SELECT component_bytes(" + id + ") AS s",
            "SELECT * FROM graph_walk(" + id + ", 'both', 2)", "SELECT * FROM similar_tensors(" + id + ", 5)"}) {
        HttpResponse r = sql(w, q);
        if (read) {
          if (q.find("similar_tensors") == std::string::npos) EXPECT_EQ(r.status, 200) << q << ": " << r.body;
          continue;
        }
        EXPECT_EQ(r.status, 400) << q << ": " << r.body;
        std::string gq = q;
        gq.replace(gq.find(id), id.size(), ghost);
        HttpResponse g = sql(root, gq);
        std::string body = r.body;
        body.replace(body.find(id), id.size(), ghost);
        EXPECT_EQ(body, g.body) << q;
      }
      EXPECT_EQ(column(sql(w, "SELECT * FROM lineage('" + m + "@1')"), "ref").size(), read ? 1u : 0u);
      EXPECT_EQ(column(sql(w, "SELECT * FROM components_as_of('" + m + "', 1)"), "ref").empty(), !read);
      // A plan's SQL runs over the same views.
      HttpResponse p = Call(w, "POST", "/api/plan",
                            json{{"version", m + "@1"}, {"sql", "SELECT id FROM tensors WHERE model = '" + m + "'"}}.dump());
      EXPECT_EQ(p.status, read ? 200 : 404) << p.body.substr(0, 200);
    }
    // Base tables, the catalog's own views and the FTS index are out of reach; writes too.
    const int base = w.role == "Admin" ? 200 : 403;
    for (const std::string& q :
         {"SELECT * FROM model", "SELECT * FROM main.version", "SELECT owner FROM model",
          "SELECT * FROM fts_doc WHERE fts_doc MATCH 'bob'", "SELECT * FROM fts_version_source",
          "SELECT * FROM models m JOIN main.component c ON c.version_id = m.id",
          "WITH x AS (SELECT * FROM chunk) SELECT * FROM x", "SELECT (SELECT COUNT(*) FROM tensor_chunk) AS n"}) {
      HttpResponse r = sql(w, q);
      EXPECT_EQ(r.status, base) << q << ": " << r.body.substr(0, 200);
      if (base == 403) EXPECT_EQ(r.body.find("bob-private"), std::string::npos);
    }
    EXPECT_EQ(sql(w, "DELETE FROM model").status, 403);
    EXPECT_EQ(sql(w, "PRAGMA table_info(model)").status, 200);
  }
  EXPECT_TRUE(store_->Resolve({"bob-private", 1}).ok());
}

TEST_F(AuthServe, OwnersWriteTheirOwnAndTheAuditNamesThem) {
  Who alice{"alice", "t1", "Contributor"}, reader{"dave", "", ""}, carol{"carol", "t2", "Contributor"};
  std::ifstream f(app::testing::Fixture("base.safetensors"), std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  // A Reader creates nothing; a Contributor creates a model it then owns, private.
  EXPECT_EQ(Call(reader, "POST", "/api/ingest?filename=x.safetensors&model=dave-new", ss.str()).status, 403);
  HttpResponse c = Call(carol, "POST", "/api/ingest?filename=x.safetensors&license=mit&model=carol-new", ss.str());
  ASSERT_EQ(c.status, 201) << c.body;
  // The same bytes as alice's models; carol may read alice-public, so they
  // dedup against it, and only it is suggested (see DedupAcrossOwnersIsReportedAsNew).
  EXPECT_EQ(c.Json()["new_bytes"], 0) << c.body;
  EXPECT_EQ(c.Json()["suggested_parent"], "alice-public@1") << c.body;
  auto a = store_->GetModelAccess("carol-new");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->owner, Owner("carol"));
  EXPECT_EQ(a->visibility, "private");
  EXPECT_EQ(Call(alice, "GET", "/api/models/carol-new").status, 404);
  // The owner publishes its model; others may then read it, but not change it.
  auto vis = [&](const Who& w, const std::string& m, const std::string& v) {
    return Call(w, "PUT", "/api/models/" + m + "/visibility", json{{"visibility", v}}.dump()).status;
  };
  EXPECT_EQ(Call(reader, "GET", "/api/models/alice-private").status, 404);
  EXPECT_EQ(vis(reader, "alice-private", "public"), 404);
  EXPECT_EQ(vis(alice, "alice-private", "public"), 200);
  EXPECT_EQ(Call(reader, "GET", "/api/models/alice-private").status, 200);
  EXPECT_EQ(vis(reader, "alice-private", "private"), 403);
  EXPECT_EQ(vis(alice, "alice-private", "secret"), 400);
  EXPECT_EQ(vis(alice, "alice-private", "private"), 200);
  EXPECT_EQ(Call(reader, "GET", "/api/models/alice-private").status, 404);
  // The owner deletes its own version.
  HttpResponse d = Call(alice, "DELETE", "/api/versions/alice-public@1");
  EXPECT_EQ(d.status, 200) << d.body;
  EXPECT_TRUE(d.Json()["exclusive_bytes"].is_null()) << d.body;
  // gc after one owner's delete keeps every chunk another owner's versions use.
  ASSERT_TRUE(store_->Gc("setup").ok());
  for (const std::string m : {"alice-private", "bob-private", "carol-new"}) {
    HttpResponse dl = Call({"root", "", "Admin"}, "GET", "/api/versions/" + m + "@1/download");
    EXPECT_EQ(dl.status, 200) << m;
    EXPECT_EQ(dl.body, ss.str()) << m;
  }
  EXPECT_TRUE(store_->Verify(false).ok());
  // The audit trail names the callers (read by an Admin over SQL).
  HttpResponse sql = Call({"root", "", "Admin"}, "POST", "/api/sql",
                          json{{"sql", "SELECT actor, action FROM audit ORDER BY id"}}.dump());
  ASSERT_EQ(sql.status, 200) << sql.body;
  EXPECT_NE(sql.body.find(Owner("carol")), std::string::npos) << sql.body;
  EXPECT_NE(sql.body.find(Owner("alice")), std::string::npos) << sql.body;
}

// MCP over HTTP follows the server's sign-in: 401 with the RFC 9728 challenge
// without a token, a session bound to whoever began it, and list_models
// showing a caller exactly what the REST API shows it.
TEST_F(AuthServe, McpFollowsSignInAndShowsOnlyWhatTheRuleAllows) {
  const json init = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
                     {"params", {{"protocolVersion", "2025-11-25"}, {"capabilities", json::object()},
                                 {"clientInfo", {{"name", "auth-test"}, {"version", "1"}}}}}};
  const std::map<std::string, std::string> accept = {{"accept", "application/json, text/event-stream"},
                                      {"content-type", "application/json"}};
  HttpResponse none = Http(svc_->port(), "POST", "/mcp", init.dump(), accept);
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_NE(none.Header("www-authenticate").find("resource_metadata="), std::string::npos);

  auto rpc = [&](const Who& w, const std::string& session, const json& msg) {
    std::map<std::string, std::string> h = {{"accept", "application/json"}, {"content-type", "application/json"},
                             {"authorization", "Bearer " + Token(w)}};
    if (!session.empty()) h["mcp-session-id"] = session;
    return Http(svc_->port(), "POST", "/mcp", msg.dump(), h);
  };
  for (const Who& w : kCallers) {
    HttpResponse in = rpc(w, "", init);
    ASSERT_EQ(in.status, 200) << w.name << " " << in.body;
    const std::string session = in.Header("mcp-session-id");
    ASSERT_FALSE(session.empty());
    EXPECT_EQ(rpc(w, session, {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}).status, 202);
    HttpResponse list = rpc(w, session, {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"},
                                         {"params", {{"name", "list_models"}, {"arguments", json::object()}}}});
    ASSERT_EQ(list.status, 200) << list.body;
    std::set<std::string> seen;
    for (const auto& [model, owner, vis] : kModels)
      if (list.body.find("\"" + model + "\"") != std::string::npos) seen.insert(model);
    std::set<std::string> want;
    for (const auto& [model, owner, vis] : kModels)
      if (ShouldRead(w, owner, vis)) want.insert(model);
    EXPECT_EQ(seen, want) << w.name << "/" << w.role << ": " << list.body;
    // A model it may not read is as absent as one that does not exist.
    HttpResponse d = rpc(w, session, {{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"},
                                      {"params", {{"name", "describe_model"}, {"arguments", {{"model", "bob-private"}}}}}});
    ASSERT_EQ(d.status, 200) << d.body;
    EXPECT_EQ(d.Json()["result"].value("isError", false), !ShouldRead(w, "bob", "private")) << d.body;
    // sql_query runs for every role over the caller's views, never the base tables.
    HttpResponse q = rpc(w, session, {{"jsonrpc", "2.0"}, {"id", 5}, {"method", "tools/call"},
                                      {"params", {{"name", "sql_query"}, {"arguments", {{"sql", "SELECT name FROM models"}}}}}});
    ASSERT_EQ(q.status, 200) << q.body;
    EXPECT_FALSE(q.Json()["result"].value("isError", false)) << q.body;
    std::set<std::string> rows;
    for (const auto& [model, owner, vis] : kModels)
      if (q.body.find(model) != std::string::npos) rows.insert(model);
    EXPECT_EQ(rows, want) << q.body;
    HttpResponse b = rpc(w, session, {{"jsonrpc", "2.0"}, {"id", 6}, {"method", "tools/call"},
                                      {"params", {{"name", "sql_query"}, {"arguments", {{"sql", "SELECT name FROM model"}}}}}});
    ASSERT_EQ(b.status, 200) << b.body;
    EXPECT_EQ(b.Json()["result"].value("isError", false), w.role != "Admin") << b.body;
    if (w.role != "Admin") EXPECT_EQ(b.body.find("bob-private"), std::string::npos) << b.body;
    // Someone else's session is not found.
    const Who other = w.name == "bob" ? Who{"alice", "t1", ""} : Who{"bob", "t1", "Reader"};
    EXPECT_EQ(rpc(other, session, {{"jsonrpc", "2.0"}, {"id", 4}, {"method", "ping"}}).status, 404);
  }
}

// Issue 14, dedup across owners stays invisible: an upload whose bytes only
// others' private models hold is reported (and stored) exactly as in an
// empty store; the same bytes under a model the caller may read dedup.
TEST_F(AuthServe, DedupAcrossOwnersIsReportedAsNew) {
  // Every copy of the fixture private: alice's and bob's.
  for (const auto& [m, owner, vis] : kModels) ASSERT_TRUE(store_->SetModelAccess(m, {Owner(owner), "t1", "private"}, "setup").ok());
  std::ifstream f(app::testing::Fixture("base.safetensors"), std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  // What a store that has never seen these bytes reports.
  uint64_t fresh_bytes = 0, fresh_chunks = 0, chunks = 0;
  {
    std::string dir = root_ + "/fresh";
    ASSERT_TRUE(store::Store::Init(dir).ok());
    auto s = store::Store::Open(dir);
    ASSERT_TRUE(s.ok());
    app::Context local;
    local.store = std::shared_ptr<store::Store>(std::move(*s));
    app::IngestRequest req;
    req.path = app::testing::Fixture("base.safetensors");
    req.model = "x";
    req.license = "mit";
    auto r = app::Ingest(local, req);
    ASSERT_TRUE(r.ok()) << r.status();
    fresh_bytes = r->result.new_bytes;
    fresh_chunks = r->result.new_chunks;
    chunks = r->result.chunks;
    ASSERT_GT(fresh_bytes, 0u);
  }
  Who carol{"carol", "t2", "Contributor"}, alice{"alice", "t1", "Contributor"};
  HttpResponse c = Call(carol, "POST", "/api/ingest?filename=x.safetensors&license=mit&model=carol-new", ss.str());
  ASSERT_EQ(c.status, 201) << c.body;
  EXPECT_EQ(c.Json()["new_bytes"], fresh_bytes) << c.body;
  EXPECT_EQ(c.Json()["new_chunks"], fresh_chunks) << c.body;
  EXPECT_EQ(c.Json()["chunks"], chunks) << c.body;
  EXPECT_TRUE(c.Json()["suggested_parent"].is_null()) << c.body;
  // Nor does the version say which others hold the same tensors.
  HttpResponse shown = Call(carol, "GET", "/api/versions/carol-new@1");
  ASSERT_EQ(shown.status, 200) << shown.body;
  for (const auto& [m, owner, vis] : kModels) EXPECT_EQ(shown.body.find(m), std::string::npos) << m;
  // The event carol may read says the same.
  HttpResponse e = Call(carol, "GET", "/api/events");
  ASSERT_EQ(e.status, 200);
  bool found = false;
  for (const auto& ev : e.Json())
    if (ev["payload"].value("model", "") == "carol-new") {
      found = true;
      EXPECT_EQ(ev["payload"]["new_bytes"], fresh_bytes) << ev.dump();
    }
  EXPECT_TRUE(found) << e.body;
  // Its own bytes dedup, and it is told so.
  HttpResponse again = Call(carol, "POST", "/api/ingest?filename=x.safetensors&license=mit&model=carol-new", ss.str());
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.Json()["new_bytes"], 0) << again.body;
  EXPECT_EQ(again.Json()["new_chunks"], 0) << again.body;
  EXPECT_EQ(again.Json()["suggested_parent"], "carol-new@1") << again.body;
  // alice reads alice-private: the same bytes dedup for her, and the
  // suggestion names only a model she may read.
  HttpResponse a = Call(alice, "POST", "/api/ingest?filename=x.safetensors&license=mit&model=alice-new", ss.str());
  ASSERT_EQ(a.status, 201) << a.body;
  EXPECT_EQ(a.Json()["new_bytes"], 0) << a.body;
  ASSERT_TRUE(a.Json()["suggested_parent"].is_string()) << a.body;
  EXPECT_EQ(a.Json()["suggested_parent"].get<std::string>().rfind("alice-", 0), 0u) << a.body;
  // The second copy carol's first upload wrote is dead bytes: the store
  // verifies, gc reclaims them, every version still reads back whole.
  EXPECT_TRUE(store_->Verify(false).ok());
  auto g = store_->Gc("setup");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(store_->Verify(false).ok());
  for (const std::string m : {"alice-private", "bob-private", "carol-new", "alice-new"}) {
    HttpResponse dl = Call({"root", "", "Admin"}, "GET", "/api/versions/" + m + "@1/download");
    EXPECT_EQ(dl.status, 200) << m;
    EXPECT_EQ(dl.body, ss.str()) << m;
  }
}

// An upload the caller may not make is answered from its header alone:
// the server reads no byte of the body (a large one is never sent here).
TEST_F(AuthServe, RefusedUploadIsAnsweredBeforeItsBody) {
  const std::string big = std::to_string(uint64_t{8} << 30);
  auto head_only = [&](const std::string& target, const std::string& auth) {
    serve_test::Conn c(svc_->port());
    EXPECT_TRUE(c.ok());
    std::string req = "POST " + target + " HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/octet-stream\r\n"
                      "content-length: " + big + "\r\n";
    if (!auth.empty()) req += "authorization: Bearer " + auth + "\r\n";
    req += "\r\n";
    EXPECT_TRUE(c.Send(req));
    // The answer comes at once, with the body still unsent (without the
    // check the server would wait for it).
    pollfd pf{c.fd(), POLLIN, 0};
    if (::poll(&pf, 1, 5000) <= 0) {
      ADD_FAILURE() << target << ": no answer before the body";
      return HttpResponse{};
    }
    return c.ReadResponse();
  };
  Who reader{"bob", "t1", "Reader"}, carol{"carol", "t2", "Contributor"};
  HttpResponse none = head_only("/api/ingest?filename=x.safetensors&model=m", "");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_NE(none.Header("www-authenticate").find("Bearer"), std::string::npos);
  EXPECT_EQ(head_only("/api/ingest?filename=x.safetensors&model=m", "garbage").status, 401);
  // A Reader creates nothing; a model one may read but not change is 403,
  // one it may not read 404 (as for any other route).
  EXPECT_EQ(head_only("/api/ingest?filename=x.safetensors&model=new-one", Token(reader)).status, 403);
  EXPECT_EQ(head_only("/api/ingest?filename=alice-public.safetensors", Token(carol)).status, 403);
  HttpResponse hidden = head_only("/api/ingest?filename=x.safetensors&model=bob-private", Token(carol));
  EXPECT_EQ(hidden.status, 404) << hidden.body;
  EXPECT_EQ(head_only("/api/ingest?filename=x.safetensors&model=carol-x&parent=bob-private@1", Token(carol)).status, 404);
  // Nothing was written anywhere.
  EXPECT_FALSE(store_->Resolve({"new-one", 1}).ok());
  EXPECT_FALSE(store_->Resolve({"alice-public", 2}).ok());
}

// search, similar and search_text give a scoped caller its top k readable
// hits, not the top k of everyone's filtered afterwards.
TEST_F(AuthServe, SearchAndSimilarFillKWithReadableHits) {
  const Who dave{"dave", "", ""};  // reads alice-public only
  for (int k : {1, 2, 3}) {
    HttpResponse s = Call(dave, "GET", "/api/search?q=weight&k=" + std::to_string(k));
    ASSERT_EQ(s.status, 200) << s.body;
    ASSERT_EQ(s.Json().size(), static_cast<size_t>(k)) << s.body;
    for (const auto& h : s.Json()) EXPECT_EQ(app::ModelOfRef(h["ref"].get<std::string>()), "alice-public") << h.dump();
    HttpResponse q = Call(dave, "POST", "/api/sql",
                          json{{"sql", "SELECT ref FROM search_text('weight', " + std::to_string(k) + ")"}}.dump());
    ASSERT_EQ(q.status, 200) << q.body;
    EXPECT_EQ(q.Json()["rows"].size(), static_cast<size_t>(k)) << q.body;
    HttpResponse t = Call(dave, "GET", "/api/similar?target=alice-public@1:model.embed_tokens.weight&k=" + std::to_string(k));
    ASSERT_EQ(t.status, 200) << t.body;
    ASSERT_EQ(t.Json().size(), static_cast<size_t>(k)) << t.body;
    for (const auto& h : t.Json()) EXPECT_EQ(app::ModelOfRef(h["ref"].get<std::string>()), "alice-public") << h.dump();
  }
}

// Lineage and graph walks never name, list or pass through what the caller
// may not read: a lineage ends before the first hidden parent (no gap in
// depth), a version's parent in a hidden model is null, and a walk does not
// enter a hidden component even where an edge leads to one.
TEST_F(AuthServe, LineageAndGraphWalksStopAtWhatIsHidden) {
  app::Context local;
  local.store = store_;
  local.actor = "setup";
  // lin-top (public) -> lin-mid (bob's, private) -> lin-root (public)
  for (const auto& [m, parent] : std::vector<std::pair<std::string, std::string>>{
           {"lin-root", ""}, {"lin-mid", "lin-root@1"}, {"lin-top", "lin-mid@1"}}) {
    app::IngestRequest req;
    req.path = app::testing::Fixture("ft1.safetensors");
    req.model = m;
    req.license = "mit";
    req.parent = parent;
    auto r = app::Ingest(local, req);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(store_->SetModelAccess(m, {Owner("bob"), "t1", m == "lin-mid" ? "private" : "public"}, "setup").ok());
  }
  const Who dave{"dave", "", ""}, root{"root", "t9", "Admin"};
  auto lineage = [&](const Who& w) {
    HttpResponse r = Call(w, "POST", "/api/sql", json{{"sql", "SELECT depth, ref FROM lineage('lin-top@1')"}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r;
  };
  HttpResponse all = lineage(root);
  EXPECT_EQ(all.Json()["rows"].size(), 3u) << all.body;
  HttpResponse mine = lineage(dave);
  ASSERT_EQ(mine.Json()["rows"].size(), 1u) << mine.body;
  EXPECT_EQ(mine.Json()["rows"][0]["depth"], 0);
  EXPECT_EQ(mine.body.find("lin-mid"), std::string::npos) << mine.body;
  for (const std::string path : {"/api/versions/lin-top@1", "/api/models/lin-top", "/api/events"}) {
    HttpResponse v = Call(dave, "GET", path);
    ASSERT_EQ(v.status, 200) << v.body;
    EXPECT_EQ(v.body.find("lin-mid"), std::string::npos) << path << ": " << v.body;
    HttpResponse a = Call(root, "GET", path);
    EXPECT_NE(a.body.find("lin-mid@1"), std::string::npos) << path << ": " << a.body;
  }
  // An edge from a readable component into a hidden one and on to another
  // readable one (the catalog has none across models today; a walk must not
  // rely on that).
  auto id_of = [&](const std::string& ref) {
    HttpResponse r = Call(root, "POST", "/api/sql",
                          json{{"sql", "SELECT id FROM tensors WHERE ref = '" + ref + "' AND name = 'model.embed_tokens.weight'"}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json()["rows"][0]["id"].get<int64_t>();
  };
  const int64_t top = id_of("lin-top@1"), mid = id_of("lin-mid@1"), base = id_of("lin-root@1");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((root_ + "/store/catalog.sqlite").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    std::string sql = "INSERT INTO edge(src, dst, kind) VALUES(" + std::to_string(top) + ", " + std::to_string(mid) +
                      ", 'test'), (" + std::to_string(mid) + ", " + std::to_string(base) + ", 'test')";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto walk = [&](const Who& w, const std::string& q) {
    HttpResponse r = Call(w, "POST", "/api/sql", json{{"sql", q}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    std::set<int64_t> ids;
    const json body = r.Json();
    for (const auto& row : body["rows"]) ids.insert(row["id"].get<int64_t>());
    return ids;
  };
  const std::string w = "SELECT id FROM graph_walk(" + std::to_string(top) + ", 'down', 5, 'test')";
  EXPECT_EQ(walk(root, w), (std::set<int64_t>{top, mid, base}));
  EXPECT_EQ(walk(dave, w), (std::set<int64_t>{top}));
  const std::string p = "SELECT id FROM shortest_path(" + std::to_string(top) + ", " + std::to_string(base) + ", 'test')";
  EXPECT_EQ(walk(root, p), (std::set<int64_t>{top, mid, base}));
  EXPECT_TRUE(walk(dave, p).empty());
}

}  // namespace
}  // namespace hart::auth_test

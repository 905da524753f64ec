// `hart serve` as a real process on 127.0.0.1 (port 0) over a real store in
// a temp dir holding a tiny generated llama: operations routes, metrics
// through promtool, OpenAPI against the live routes, REST routes, the
// OpenAI routes' wire format (the official npm client is driven by
// openai_client_test.mjs), disconnect cancelling a generation, limits,
// bad input leaving the store unchanged, SIGTERM drain.
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "tests/cli/cli_runner.h"
#include "tests/serve/http_client.h"
#include "tests/serve/serve_process.h"

namespace hart::serve_test {
namespace {

using cli_test::Describe;
using cli_test::HartProcess;
using cli_test::MakeTempDir;
using cli_test::ReadAll;
using cli_test::RunResult;
using cli_test::TempStore;
using nlohmann::json;
namespace fs = std::filesystem;

// A running `hart serve` on a store; stops it (SIGTERM) on destruction.
using Server = ServeProcess;

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    models_ = new std::string(MakeTempDir("hart_serve_models_"));
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" + *models_ +
                      "' --type q8_0 --layers 2 > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    store_ = new TempStore();
    ASSERT_TRUE(store_->Init());
    RunResult r = store_->Run({"ingest", Gguf(), "--model", "tiny", "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    server_ = new Server(*store_, {"--max-body", "64K", "--max-upload", "4M", "--header-timeout", "1"});
    ASSERT_NE(server_->port(), 0) << server_->Log();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete store_;
    std::error_code ec;
    fs::remove_all(*models_, ec);
    delete models_;
  }
  static std::string Gguf() { return *models_ + "/model.gguf"; }
  static uint16_t Port() { return server_->port(); }
  static HttpResponse Get(const std::string& t, std::map<std::string, std::string> h = {}) {
    return Http(Port(), "GET", t, "", std::move(h));
  }
  static HttpResponse Post(const std::string& t, const std::string& body, std::map<std::string, std::string> h = {}) {
    return Http(Port(), "POST", t, body, std::move(h));
  }
  // Everything a write would change: the models and the outbox.
  static std::string StoreState() {
    return Get("/api/models").body + "\n" + Get("/api/events?limit=10000").body;
  }
  static void ExpectError(const HttpResponse& r, int status, const std::string& what) {
    EXPECT_EQ(r.status, status) << what << ": " << r.body;
    json j = r.Json();
    ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string()) << what;
    EXPECT_TRUE(j["error"]["type"].is_string()) << what;
    EXPECT_EQ(r.Header("content-type"), "application/json") << what;
  }

  static std::string* models_;
  static TempStore* store_;
  static Server* server_;
};
std::string* Serve::models_ = nullptr;
TempStore* Serve::store_ = nullptr;
Server* Serve::server_ = nullptr;

TEST_F(Serve, HealthReadyAndRequestIds) {
  HttpResponse h = Get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.Json()["status"], "ok");
  EXPECT_EQ(h.Header("x-request-id").size(), 16u);
  HttpResponse r = Get("/readyz", {{"x-request-id", "abc-123"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-request-id"), "abc-123");
  // W3C trace context: the trace id is kept, this server's span is new.
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  HttpResponse t = Get("/healthz", {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}});
  std::string tp = t.Header("traceparent");
  ASSERT_EQ(tp.size(), 55u) << tp;
  EXPECT_EQ(tp.substr(3, 32), trace);
  EXPECT_NE(tp.substr(36, 16), "00f067aa0ba902b7");
  // A malformed one starts a new trace instead.
  HttpResponse bad = Get("/healthz", {{"traceparent", "00-zz-bad"}});
  EXPECT_EQ(bad.Header("traceparent").size(), 55u);
  EXPECT_EQ(bad.status, 200);
  // The access log is JSON lines naming the request id.
  EXPECT_NE(server_->Log().find("\"request_id\":\"abc-123\""), std::string::npos);
}

TEST_F(Serve, MetricsPassPromtool) {
  Get("/v1/models");
  HttpResponse m = Get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.Header("content-type").find("text/plain"), std::string::npos);
  for (const char* name : {"hart_http_requests_total", "hart_http_request_duration_seconds_bucket",
                           "hart_tokens_generated_total", "hart_prompt_tokens_total", "hart_weight_bytes_read_total",
                           "hart_sessions_in_flight", "hart_generation_queue_depth", "hart_resident_weight_bytes"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  }
  EXPECT_NE(m.body.find("route=\"/v1/models\",method=\"GET\",code=\"200\""), std::string::npos) << m.body;
  std::string path = MakeTempDir("hart_metrics_") + "/metrics.txt";
  std::ofstream(path) << m.body;
  std::string cmd = "promtool check metrics < '" + path + "' > '" + path + ".out' 2>&1";
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << ReadAll(path + ".out") << "\n" << m.body;
}

TEST_F(Serve, OpenApiDocumentMatchesTheRoutes) {
  HttpResponse d = Get("/openapi.json");
  ASSERT_EQ(d.status, 200);
  json doc = d.Json();
  EXPECT_EQ(doc["openapi"], "3.1.0");
  ASSERT_TRUE(doc["paths"].is_object());
  int checked = 0;
  // Every documented operation is served: a request reaches a handler (any
  // answer but the router's unknown_route / method_not_allowed).
  for (auto& [path, ops] : doc["paths"].items()) {
    for (auto& [method, op] : ops.items()) {
      std::string target = path;
      size_t b;
      while ((b = target.find('{')) != std::string::npos) target.replace(b, target.find('}') - b + 1, "nosuch");
      std::string m = method;
      for (char& c : m) c = static_cast<char>(std::toupper(c));
      if (path == "/api/events/stream") target += "?after=999999999";  // ends at once below
      if (path == "/api/events/stream") continue;  // a stream that never ends; covered in its own test
      HttpResponse r = Http(Port(), m, target, m == "POST" ? "{}" : "");
      ASSERT_NE(r.status, 0) << m << " " << target;
      std::string code = r.Json().is_object() && r.Json().contains("error") ? r.Json()["error"].value("code", "") : "";
      EXPECT_NE(code, "unknown_route") << m << " " << target;
      EXPECT_NE(code, "method_not_allowed") << m << " " << target;
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
  // And what is not documented is not served.
  for (auto [m, t] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/nothing"}, {"GET", "/api/versions/tiny/nothing"}, {"PUT", "/v1/models"}}) {
    HttpResponse r = Http(Port(), m, t);
    EXPECT_TRUE(r.status == 404 || r.status == 405) << m << " " << t << " " << r.status;
    EXPECT_FALSE(doc["paths"].contains(t) && doc["paths"][t].contains(absl::AsciiStrToLower(m))) << t;
  }
  HttpResponse put = Http(Port(), "PUT", "/v1/models");
  ExpectError(put, 405, "PUT /v1/models");
  EXPECT_EQ(put.Header("allow"), "GET");
}

TEST_F(Serve, SwaggerUiPage) {
  HttpResponse d = Get("/docs");
  if (d.status == 503) GTEST_SKIP() << "swagger-ui-dist not installed (scripts/install-deps)";
  ASSERT_EQ(d.status, 200);
  EXPECT_NE(d.body.find("/openapi.json"), std::string::npos);
  HttpResponse js = Get("/docs/swagger-ui-bundle.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_GT(js.body.size(), 100000u);
  ExpectError(Get("/docs/..%2F..%2Fetc%2Fpasswd"), 404, "traversal in /docs");
}

TEST_F(Serve, RestRoutesAnswerTheAppJson) {
  HttpResponse models = Get("/api/models");
  ASSERT_EQ(models.status, 200) << models.body;
  ASSERT_TRUE(models.Json().is_array());
  EXPECT_EQ(models.Json()[0]["name"], "tiny") << models.body;
  // The same JSON as the CLI's --json.
  RunResult ls = store_->Run({"ls", "--json"});
  EXPECT_EQ(json::parse(ls.out), models.Json());
  HttpResponse show = Get("/api/versions/tiny%401");
  ASSERT_EQ(show.status, 200) << show.body;
  EXPECT_EQ(json::parse(store_->Run({"show", "tiny@1", "--json"}).out), show.Json());
  HttpResponse tensors = Get("/api/versions/tiny/tensors");
  ASSERT_EQ(tensors.status, 200);
  EXPECT_EQ(tensors.Json(), show.Json()["tensors"]);
  EXPECT_EQ(Get("/api/stats").status, 200);
  HttpResponse search = Get("/api/search?q=tiny&k=5");
  EXPECT_EQ(search.status, 200) << search.body;
  HttpResponse similar = Get("/api/similar?target=tiny&k=3");
  EXPECT_EQ(similar.status, 200) << similar.body;
  HttpResponse diff = Get("/api/diff?a=tiny@1&b=tiny@1");
  EXPECT_EQ(diff.status, 200) << diff.body;
  HttpResponse plan = Post("/api/plan", R"({"version":"tiny","names":["blk.0.*"]})");
  EXPECT_EQ(plan.status, 200) << plan.body;
  EXPECT_EQ(plan.Json(), json::parse(store_->Run({"plan", "tiny", "--names", "blk.0.*", "--json"}).out));
  HttpResponse sql = Post("/api/sql", R"({"sql":"SELECT name FROM models", "max_rows": 5})");
  ASSERT_EQ(sql.status, 200) << sql.body;
  EXPECT_EQ(sql.Json()["rows"][0]["name"], "tiny") << sql.body;
  HttpResponse ev = Get("/api/events");
  EXPECT_EQ(ev.status, 200);
  EXPECT_TRUE(ev.Json().is_array()) << ev.body;
}

TEST_F(Serve, ComponentsTreeEdgesAndTensorStats) {
  HttpResponse all = Get("/api/versions/tiny/components");
  ASSERT_EQ(all.status, 200) << all.body;
  json j = all.Json();
  EXPECT_EQ(j["version"], "tiny@1");
  ASSERT_TRUE(j["nodes"].is_array() && !j["nodes"].empty()) << all.body;
  EXPECT_EQ(j["nodes"][0]["kind"], "model");
  EXPECT_EQ(j["root"], j["nodes"][0]["id"]);
  EXPECT_FALSE(j["truncated"].get<bool>());
  std::set<int64_t> ids;
  json blk0;
  int tensors = 0;
  for (const auto& n : j["nodes"]) {
    ids.insert(n["id"].get<int64_t>());
    if (n["kind"] == "tensor") ++tensors;
    if (n["kind"] == "block" && n["layer"] == 0 && blk0.is_null()) blk0 = n;
  }
  HttpResponse tl = Get("/api/versions/tiny/tensors");
  EXPECT_EQ(tensors, static_cast<int>(tl.Json().size()));
  std::set<std::string> kinds;
  for (const auto& e : j["edges"]) {
    EXPECT_TRUE(ids.count(e["src"].get<int64_t>()) && ids.count(e["dst"].get<int64_t>())) << e.dump();
    kinds.insert(e["kind"].get<std::string>());
  }
  EXPECT_TRUE(kinds.count("contains") && kinds.count("feeds")) << all.body;
  // A subtree with only feeds edges; the same nodes without edges.
  ASSERT_TRUE(blk0.is_object()) << all.body;
  std::string id = std::to_string(blk0["id"].get<int64_t>());
  HttpResponse sub = Get("/api/versions/tiny%401/components?under=" + id + "&edges=feeds");
  ASSERT_EQ(sub.status, 200) << sub.body;
  EXPECT_EQ(sub.Json()["root"], blk0["id"]);
  EXPECT_LT(sub.Json()["nodes"].size(), j["nodes"].size());
  for (const auto& e : sub.Json()["edges"]) EXPECT_EQ(e["kind"], "feeds");
  HttpResponse bare = Get("/api/versions/tiny/components?under=" + id + "&with_edges=false");
  ASSERT_EQ(bare.status, 200) << bare.body;
  EXPECT_EQ(bare.Json()["nodes"], sub.Json()["nodes"]);
  EXPECT_TRUE(bare.Json()["edges"].empty());
  HttpResponse capped = Get("/api/versions/tiny/components?max_rows=3");
  ASSERT_EQ(capped.status, 200);
  EXPECT_EQ(capped.Json()["nodes"].size(), 3u);
  EXPECT_TRUE(capped.Json()["truncated"].get<bool>());

  ExpectError(Get("/api/versions/nosuch/components"), 404, "unknown version");
  ExpectError(Get("/api/versions/tiny/components?under=nosuch"), 404, "unknown component");
  ExpectError(Get("/api/versions/tiny/components?under=%27%20OR%20%271%27%3D%271"), 404, "injection in under");
  ExpectError(Get("/api/versions/tiny/components?edges=flows"), 400, "unknown edge kind");
  ExpectError(Get("/api/versions/tiny/components?max_rows=0"), 400, "max_rows 0");
  ExpectError(Get("/api/versions/tiny/components?max_rows=many"), 400, "max_rows not a number");
  ExpectError(Get("/api/versions/tiny/components?depth=2"), 400, "unknown parameter");

  // Tensors: stats only when asked, under the byte cap.
  HttpResponse st = Get("/api/versions/tiny/tensors?stats=1");
  ASSERT_EQ(st.status, 200) << st.body;
  ASSERT_EQ(st.Json().size(), tl.Json().size());
  for (const auto& t : st.Json()) EXPECT_TRUE(t["stats"].is_object() && t["stats"].contains("mean")) << t.dump();
  EXPECT_FALSE(tl.Json()[0].contains("stats"));
  HttpResponse cut = Get("/api/versions/tiny/tensors?stats=true&max_stats_bytes=1");
  ASSERT_EQ(cut.status, 200) << cut.body;
  EXPECT_TRUE(cut.Json()[0]["stats"].is_null());
  EXPECT_EQ(cut.Json()[0]["stats_skipped"], true);
  ExpectError(Get("/api/versions/tiny/tensors?stats=maybe"), 400, "stats not a boolean");
  ExpectError(Get("/api/versions/tiny/tensors?max_stats_bytes=-5"), 400, "negative cap");
  ExpectError(Get("/api/versions/nosuch/tensors?stats=1"), 404, "unknown version");
}

TEST_F(Serve, LoadStreamsAPlansTensorsAndEventsStreamAsSse) {
  HttpResponse load = Post("/api/load", R"({"version":"tiny","names":["blk.0.*"],"format":"gguf"})");
  ASSERT_EQ(load.status, 200) << load.body.substr(0, 300);
  EXPECT_EQ(load.body.substr(0, 4), "GGUF");
  // The same bytes as `hart load`.
  std::string out = MakeTempDir("hart_load_") + "/part.gguf";
  RunResult cli = store_->Run({"load", "tiny", "--names", "blk.0.*", "-o", out});
  ASSERT_EQ(cli.exit_code, 0) << Describe(cli);
  EXPECT_TRUE(ReadAll(out) == load.body);
  // The outbox as server-sent events: the ingest's event arrives, then the
  // client leaves.
  Conn c(Port());
  ASSERT_TRUE(c.Send("GET /api/events/stream?after=0 HTTP/1.1\r\nhost: x\r\n\r\n"));
  HttpResponse head;
  ASSERT_TRUE(c.ReadHead(&head));
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-type"), "text/event-stream");
  std::string events;
  for (int i = 0; i < 20 && events.find("data: ") == std::string::npos; ++i) ASSERT_TRUE(c.ReadChunk(&events));
  EXPECT_NE(events.find("id: 1\n"), std::string::npos) << events;
  EXPECT_NE(events.find("data: {"), std::string::npos) << events;
}

TEST_F(Serve, SqlIsReadOnlyAndCapped) {
  std::string before = StoreState();
  for (const char* sql : {"DELETE FROM models", "DROP TABLE models", "SELECT 1; DELETE FROM models",
                          "ATTACH DATABASE '/tmp/x.db' AS x", "PRAGMA writable_schema=1", "COMMIT; DELETE FROM models",
                          "UPDATE models SET name='x'"}) {
    HttpResponse r = Post("/api/sql", json{{"sql", sql}}.dump());
    EXPECT_GE(r.status, 400) << sql << " " << r.body;
    EXPECT_LT(r.status, 500) << sql << " " << r.body;
  }
  HttpResponse capped = Post("/api/sql", R"({"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 50) SELECT x FROM c","max_rows":7})");
  ASSERT_EQ(capped.status, 200) << capped.body;
  EXPECT_EQ(capped.Json()["rows"].size(), 7u);
  EXPECT_EQ(capped.Json()["truncated"], true);
  EXPECT_EQ(StoreState(), before);
}

TEST_F(Serve, DownloadWithRange) {
  std::string original = ReadAll(Gguf());
  HttpResponse whole = Get("/api/versions/tiny/download");
  ASSERT_EQ(whole.status, 200) << whole.body.substr(0, 300);
  EXPECT_EQ(whole.Header("accept-ranges"), "bytes");
  EXPECT_TRUE(whole.body == original) << whole.body.size() << " vs " << original.size();
  HttpResponse part = Get("/api/versions/tiny/download", {{"range", "bytes=100-199"}});
  ASSERT_EQ(part.status, 206);
  EXPECT_EQ(part.body, original.substr(100, 100));
  EXPECT_EQ(part.Header("content-range"), "bytes 100-199/" + std::to_string(original.size()));
  HttpResponse tail = Get("/api/versions/tiny/download", {{"range", "bytes=-10"}});
  ASSERT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, original.substr(original.size() - 10));
  HttpResponse past = Get("/api/versions/tiny/download", {{"range", "bytes=999999999-"}});
  ExpectError(past, 416, "range past the end");
  EXPECT_EQ(past.Header("content-range"), "bytes */" + std::to_string(original.size()));
}

TEST_F(Serve, UploadIngestsAllOrNothing) {
  std::string before = StoreState();
  // Garbage that claims to be GGUF: a 4xx, nothing written.
  HttpResponse bad = Post("/api/ingest?filename=junk.gguf&license=mit", std::string(5000, 'x'),
                          {{"content-type", "application/octet-stream"}});
  EXPECT_GE(bad.status, 400) << bad.body;
  EXPECT_LT(bad.status, 500) << bad.body;
  // A truncated real file.
  std::string original = ReadAll(Gguf());
  HttpResponse cut = Post("/api/ingest?filename=cut.gguf&license=mit", original.substr(0, original.size() / 2),
                          {{"content-type", "application/octet-stream"}});
  EXPECT_GE(cut.status, 400) << cut.body;
  EXPECT_LT(cut.status, 500) << cut.body;
  // Over --max-upload (4M): 413 before the body is read.
  HttpResponse big = Http(Port(), "POST", "/api/ingest?filename=big.gguf",
                          "", {{"content-length", "99999999"}, {"content-type", "application/octet-stream"}});
  ExpectError(big, 413, "upload over the limit");
  EXPECT_EQ(StoreState(), before);
  // Nothing left in the store's upload area.
  // A good upload makes a version.
  HttpResponse ok = Post("/api/ingest?filename=up.gguf&license=mit", original,
                         {{"content-type", "application/octet-stream"}});
  ASSERT_EQ(ok.status, 201) << ok.body << server_->Log().substr(server_->Log().size() > 3000 ? server_->Log().size() - 3000 : 0);
  HttpResponse v = Get("/api/models/up");
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_EQ(v.Json().size(), 1u);
  HttpResponse del = Http(Port(), "DELETE", "/api/versions/up%401");
  EXPECT_EQ(del.status, 200) << del.body;
}

TEST_F(Serve, BadInputIsA4xxJsonErrorAndChangesNothing) {
  std::string before = StoreState();
  ExpectError(Post("/v1/chat/completions", "{not json"), 400, "malformed JSON");
  ExpectError(Post("/v1/chat/completions", "[1,2]"), 400, "not an object");
  ExpectError(Post("/v1/chat/completions", R"({"model":"tiny","messages":"hi"})"), 400, "messages wrong type");
  ExpectError(Post("/v1/chat/completions", R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],"bogus":1})"),
              400, "unknown field");
  ExpectError(Post("/v1/chat/completions", R"({"model":"tiny","messages":[{"role":"wizard","content":"hi"}]})"), 400,
              "bad role");
  ExpectError(Post("/v1/chat/completions", R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],"temperature":"hot"})"),
              400, "temperature wrong type");
  ExpectError(Post("/v1/chat/completions", R"({"model":"nosuch","messages":[{"role":"user","content":"hi"}]})"), 404,
              "unknown model");
  ExpectError(Post("/v1/completions", R"({"model":"tiny"})"), 400, "no prompt");
  ExpectError(Post("/v1/embeddings", R"({"model":"tiny","input":[1,2,3]})"), 400, "token arrays");
  ExpectError(Post("/v1/chat/completions", std::string(70000, ' ') + "{}"), 413, "huge body");
  ExpectError(Get("/v1/nothing"), 404, "unknown route");
  ExpectError(Http(Port(), "PATCH", "/api/models"), 405, "unknown method");
  // Path traversal and SQL injection through every parameter.
  for (const char* t : {"/api/versions/..%2F..%2Fetc%2Fpasswd", "/api/versions/tiny%40..%2F1",
                        "/api/models/%27%3B%20DROP%20TABLE%20models%3B--", "/api/versions/tiny'--/tensors",
                        "/api/diff?a=tiny&b=x%27%20OR%201%3D1--", "/api/similar?target=%27%3BDELETE%20FROM%20models--",
                        "/api/versions/tiny/files/..%2F..%2Fcatalog.db", "/v1/models/..%2Fcatalog.db",
                        "/api/events?after=1%20OR%201=1", "/api/search?q=x&k=abc", "/api/search?q=x&bogus=1"}) {
    HttpResponse r = Get(t);
    EXPECT_GE(r.status, 400) << t << " " << r.body;
    EXPECT_LT(r.status, 500) << t << " " << r.body;
    EXPECT_TRUE(r.Json().contains("error")) << t;
  }
  HttpResponse inj = Get("/api/search?q=%27%29%3B%20DELETE%20FROM%20models%3B--");
  EXPECT_LT(inj.status, 500) << inj.body;
  ExpectError(Http(Port(), "DELETE", "/api/versions/nosuch%401"), 404, "delete unknown");
  ExpectError(Http(Port(), "DELETE", "/api/versions/%27%20OR%201%3D1--"), 400, "delete injection");
  // A request line that is not HTTP.
  {
    Conn c(Port());
    c.Send("GARBAGE\r\n\r\n");
    HttpResponse r = c.ReadResponse();
    EXPECT_EQ(r.status, 400);
  }
  EXPECT_EQ(StoreState(), before);
  // Still serving.
  EXPECT_EQ(Get("/healthz").status, 200);
}

// The llama.cpp-style `timings` agree with the `usage` beside them: the
// decoded tokens are the completion tokens, and the prefilled plus the
// reused (cache_n) are the prompt tokens.
void ExpectTimingsMatchUsage(const json& t, const json& usage) {
  ASSERT_TRUE(t.is_object()) << t.dump();
  ASSERT_TRUE(usage.is_object()) << usage.dump();
  for (const char* k : {"prompt_n", "prompt_ms", "prompt_per_token_ms", "prompt_per_second", "predicted_n",
                        "predicted_ms", "predicted_per_token_ms", "predicted_per_second", "cache_n"}) {
    EXPECT_TRUE(t.contains(k) && t[k].is_number()) << k << " in " << t.dump();
  }
  EXPECT_EQ(t["predicted_n"], usage["completion_tokens"]) << t.dump() << " " << usage.dump();
  EXPECT_EQ(t["prompt_n"].get<int64_t>() + t["cache_n"].get<int64_t>(), usage["prompt_tokens"].get<int64_t>())
      << t.dump() << " " << usage.dump();
  const int64_t cached = usage.contains("prompt_tokens_details")
                             ? usage["prompt_tokens_details"]["cached_tokens"].get<int64_t>() : 0;
  EXPECT_EQ(t["cache_n"].get<int64_t>(), cached);
  EXPECT_GE(t["prompt_ms"].get<double>(), 0);
  EXPECT_GE(t["predicted_ms"].get<double>(), 0);
}

// A stream's data events, in order, and whether it ended with [DONE].
std::vector<json> SseEvents(const std::string& body, bool* done) {
  std::vector<json> out;
  *done = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string ev = body.substr(pos, end - pos);
    pos = end + 2;
    if (ev == "data: [DONE]") {
      *done = true;
    } else if (ev.rfind("data: ", 0) == 0) {
      out.push_back(json::parse(ev.substr(6)));
    }
  }
  return out;
}

TEST_F(Serve, ChatCompletionWireFormat) {
  HttpResponse r = Post("/v1/chat/completions",
                        R"({"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":5,"temperature":0,
                            "logprobs":true,"top_logprobs":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny@1");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(j["choices"][0]["finish_reason"] == "length" || j["choices"][0]["finish_reason"] == "stop");
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 5);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"].size(), j["usage"]["completion_tokens"].get<size_t>());
  ExpectTimingsMatchUsage(j["timings"], j["usage"]);
  // Streaming: data: chunks, the usage chunk, then [DONE].
  HttpResponse s = Post("/v1/chat/completions",
                        R"({"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":5,"temperature":0,
                            "stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.Header("content-type"), "text/event-stream");
  std::string text;
  json usage;
  bool done = false;
  size_t pos = 0;
  while (pos < s.body.size()) {
    size_t end = s.body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    std::string ev = s.body.substr(pos, end - pos);
    pos = end + 2;
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    if (ev == "data: [DONE]") {
      done = true;
      continue;
    }
    json c = json::parse(ev.substr(6));
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    if (!c["usage"].is_null()) {
      usage = c["usage"];
      ExpectTimingsMatchUsage(c["timings"], usage);  // the include_usage chunk carries them too
    }
    if (!c["choices"].empty()) text += c["choices"][0]["delta"].value("content", "");
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(text, j["choices"][0]["message"]["content"]);  // greedy: the same text
  EXPECT_EQ(usage["completion_tokens"], j["usage"]["completion_tokens"]);
}

// The legacy /v1/completions carries the same `timings` as chat in the same
// three places: the whole body, the stream's last finishing chunk (one, with
// n > 1), and beside `usage` on the include_usage chunk.
TEST_F(Serve, CompletionTimingsLikeChat) {
  HttpResponse r = Post("/v1/completions", R"({"model":"tiny","prompt":"Tell me","max_tokens":5,"temperature":0})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_TRUE(j.contains("timings")) << r.body;
  ExpectTimingsMatchUsage(j["timings"], j["usage"]);
  EXPECT_GE(j["timings"]["predicted_n"].get<int>(), 1);

  for (int n : {1, 2}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    HttpResponse s = Post("/v1/completions", json{{"model", "tiny"},
                                                  {"prompt", "Tell me"},
                                                  {"max_tokens", 5},
                                                  {"temperature", 0},
                                                  {"n", n},
                                                  {"stream", true},
                                                  {"stream_options", {{"include_usage", true}}}}
                                                 .dump());
    ASSERT_EQ(s.status, 200) << s.body;
    bool done = false;
    std::vector<json> evs = SseEvents(s.body, &done);
    EXPECT_TRUE(done);
    ASSERT_GE(evs.size(), static_cast<size_t>(n) + 1) << s.body;
    // The last event: no choices, the usage and the timings.
    const json& u = evs.back();
    EXPECT_EQ(u["object"], "text_completion");
    EXPECT_TRUE(u["choices"].empty()) << u.dump();
    ASSERT_TRUE(u.contains("timings")) << u.dump();
    if (n == 1) {
      ExpectTimingsMatchUsage(u["timings"], u["usage"]);
    } else {
      // As chat: the timings are choice 0's run (the prompt runs once, the
      // choices decode together), while usage counts every choice's tokens;
      // greedy choices are alike, so n times choice 0's.
      json one = u["usage"];
      one["completion_tokens"] = u["timings"]["predicted_n"];
      ExpectTimingsMatchUsage(u["timings"], one);
      EXPECT_EQ(u["timings"]["predicted_n"].get<int64_t>() * n, u["usage"]["completion_tokens"].get<int64_t>());
    }
    // The finishing chunks: only the last of them carries the timings (the
    // same figures); no other chunk has any.
    std::vector<size_t> finishing;
    for (size_t k = 0; k + 1 < evs.size(); ++k) {
      EXPECT_TRUE(evs[k]["usage"].is_null()) << evs[k].dump();
      if (!evs[k]["choices"][0]["finish_reason"].is_null()) {
        finishing.push_back(k);
      } else {
        EXPECT_FALSE(evs[k].contains("timings")) << evs[k].dump();
      }
    }
    ASSERT_EQ(finishing.size(), static_cast<size_t>(n)) << s.body;
    for (size_t f = 0; f + 1 < finishing.size(); ++f) EXPECT_FALSE(evs[finishing[f]].contains("timings"));
    const json& last = evs[finishing.back()];
    ASSERT_TRUE(last.contains("timings")) << last.dump();
    EXPECT_EQ(last["timings"], u["timings"]);
  }
  // Without include_usage the finishing chunk still carries them (as chat).
  HttpResponse plain = Post("/v1/completions",
                            R"({"model":"tiny","prompt":"Tell me","max_tokens":3,"temperature":0,"stream":true})");
  ASSERT_EQ(plain.status, 200) << plain.body;
  bool done = false;
  std::vector<json> evs = SseEvents(plain.body, &done);
  ASSERT_FALSE(evs.empty()) << plain.body;
  EXPECT_FALSE(evs.back()["choices"][0]["finish_reason"].is_null()) << evs.back().dump();
  ASSERT_TRUE(evs.back().contains("timings")) << evs.back().dump();
  EXPECT_GE(evs.back()["timings"]["predicted_n"].get<int>(), 1);
  EXPECT_LE(evs.back()["timings"]["predicted_n"].get<int>(), 3);
}

// Streams running at once are batched by the model's engine: each gets the
// text it gets alone. A repeated prompt is served from the prompt cache
// (usage.prompt_tokens_details.cached_tokens, /metrics) with the same text.
TEST_F(Serve, ConcurrentStreamsGetTheTextOfSequentialOnes) {
  const std::vector<std::string> prompts = {"Once", "The quick brown fox jumps", "Hello there, how are you today?",
                                            "A B C D E F G H I J K L M N O P"};
  auto body = [](const std::string& prompt, bool stream) {
    return json{{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"stream", stream}}
        .dump();
  };
  double hits_before = Metric(Get("/metrics").body, "hart_prompt_cache_hits_total");
  std::vector<std::string> want;
  for (const auto& p : prompts) {
    HttpResponse r = Post("/v1/completions", body(p, false));
    ASSERT_EQ(r.status, 200) << r.body;
    want.push_back(r.Json()["choices"][0]["text"].get<std::string>());
  }
  std::vector<std::string> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      HttpResponse s = Post("/v1/completions", body(prompts[i], true));
      ASSERT_EQ(s.status, 200) << s.body;
      size_t pos = 0;
      while ((pos = s.body.find("data: ", pos)) != std::string::npos) {
        size_t end = s.body.find("\n\n", pos);
        std::string ev = s.body.substr(pos + 6, end - pos - 6);
        pos = end;
        if (ev == "[DONE]") break;
        json c = json::parse(ev);
        if (!c["choices"].empty()) got[i] += c["choices"][0].value("text", "");
      }
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << prompts[i];

  // The same chat twice: the second reuses the cached prompt.
  const std::string chat =
      R"({"model":"tiny","messages":[{"role":"system","content":"You are terse and exact."},{"role":"user","content":"Count to three"}],"max_tokens":6,"temperature":0})";
  HttpResponse a = Post("/v1/chat/completions", chat), b = Post("/v1/chat/completions", chat);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(a.Json()["choices"][0]["message"]["content"], b.Json()["choices"][0]["message"]["content"]);
  const json u = b.Json()["usage"];
  ASSERT_TRUE(u.contains("prompt_tokens_details")) << u.dump();
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), u["prompt_tokens"].get<int64_t>() - 1);
  const std::string m = Get("/metrics").body;
  EXPECT_GE(Metric(m, "hart_prompt_cache_hits_total") - hits_before, 1 + static_cast<double>(prompts.size()));
  EXPECT_GT(Metric(m, "hart_prompt_cache_bytes"), 0);
  EXPECT_GE(Metric(m, "hart_prompt_cache_misses_total"), 1);
}

TEST_F(Serve, ClientThatDisconnectsEndsItsGeneration) {
  auto in_flight = [] { return Metric(Get("/metrics").body, "hart_sessions_in_flight"); };
  double tokens_before = Metric(Get("/metrics").body, "hart_tokens_generated_total");
  {
    Conn c(Port());
    std::string body =
        R"({"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":100000,"temperature":1,"stream":true})";
    ASSERT_TRUE(c.Send("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                       "content-length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    HttpResponse head;
    ASSERT_TRUE(c.ReadHead(&head));
    ASSERT_EQ(head.status, 200);
    std::string chunk;
    ASSERT_TRUE(c.ReadChunk(&chunk));
    EXPECT_EQ(in_flight(), 1);
    c.Close();  // goes away mid-stream
  }
  // The session ends (polled; bounded).
  double n = -1;
  for (int i = 0; i < 200 && n != 0; ++i) {
    n = in_flight();
    if (n != 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(n, 0);
  // And it did not run to its 100000 tokens.
  double generated = Metric(Get("/metrics").body, "hart_tokens_generated_total") - tokens_before;
  EXPECT_LT(generated, 100000);
  EXPECT_NE(server_->Log().find("\"client_gone\":true"), std::string::npos);
}

TEST_F(Serve, SlowHeaderIsCutOff) {
  Conn c(Port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nhost: x\r\n"));  // never finishes the header
  EXPECT_TRUE(c.WaitClosed(10000));  // --header-timeout 1
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(Serve, KeepAliveServesManyRequestsOnOneConnection) {
  Conn c(Port());
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = c.Request("GET", "/healthz");
    ASSERT_EQ(r.status, 200) << i;
  }
}

TEST(ServeProcess, RefusesNonLoopbackWithoutSignIn) {
  TempStore store;
  ASSERT_TRUE(store.Init());
  for (const char* addr : {"0.0.0.0:0", "192.168.1.1:8080", "[::]:0"}) {
    RunResult r = store.Run({"serve", "--addr", addr});
    EXPECT_EQ(r.exit_code, 1) << addr << Describe(r);
    EXPECT_NE(r.err.find("loopback"), std::string::npos) << r.err;
  }
}

TEST(ServeProcess, FullQueueAnswers429AndSigtermDrains) {
  std::string models = MakeTempDir("hart_serve_q_");
  std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" + models +
                    "' --type q8_0 --layers 2 > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  TempStore store;
  ASSERT_TRUE(store.Init());
  ASSERT_EQ(store.Run({"ingest", models + "/model.gguf", "--model", "tiny", "--license", "mit"}).exit_code, 0);
  auto server = std::make_unique<Server>(store, std::vector<std::string>{"--max-generations", "1", "--max-queue", "0"});
  ASSERT_NE(server->port(), 0) << server->Log();
  // One long generation holds the only slot.
  Conn c(server->port());
  std::string body =
      R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":100000,"temperature":1,"stream":true})";
  ASSERT_TRUE(c.Send("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     "content-length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
  HttpResponse head;
  ASSERT_TRUE(c.ReadHead(&head));
  std::string chunk;
  ASSERT_TRUE(c.ReadChunk(&chunk));
  HttpResponse busy = Http(server->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"x","max_tokens":2})");
  EXPECT_EQ(busy.status, 429) << busy.body;
  EXPECT_EQ(busy.Header("retry-after"), "1");
  EXPECT_EQ(busy.Json()["error"]["type"], "rate_limit_error");
  c.Close();
  // SIGTERM with a request in flight: it completes, then the process exits 0.
  for (int i = 0; i < 100; ++i) {
    HttpResponse m = Http(server->port(), "GET", "/metrics");
    if (Metric(m.body, "hart_sessions_in_flight") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Conn d(server->port());
  std::string small = R"({"model":"tiny","prompt":"Hi","max_tokens":20,"stream":true})";
  ASSERT_TRUE(d.Send("POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     "content-length: " + std::to_string(small.size()) + "\r\n\r\n" + small));
  HttpResponse h2;
  ASSERT_TRUE(d.ReadHead(&h2));
  server->proc().Kill(SIGTERM);
  std::string all;
  while (d.ReadChunk(&all)) {
  }
  EXPECT_NE(all.find("data: [DONE]"), std::string::npos) << all;
  RunResult r = server->proc().Wait();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("drained"), std::string::npos);
  std::error_code ec;
  fs::remove_all(models, ec);
}

}  // namespace
}  // namespace hart::serve_test

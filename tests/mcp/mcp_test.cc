// The MCP server's JSON-RPC core against a real store: malformed JSON,
// unknown methods, wrong parameter types, huge and deep requests, batches
// per revision, version negotiation, write tools hidden unless enabled and
// allowed, and sql_query refusing every kind of write without changing the
// store. The stdio transport: an over-long line is refused and the session
// goes on; a client that never reads cannot keep the server from ending.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "app/catalog.h"
#include "app/query.h"
#include "mcp/http.h"
#include "mcp/jsonrpc.h"
#include "mcp/server.h"
#include "mcp/stdio.h"
#include "absl/strings/str_split.h"
#include "fmt/format.h"
#include "tests/app/app_test_util.h"

namespace hart::mcp {
namespace {

using nlohmann::json;

class McpTest : public app::testing::AppTest {
 protected:
  void SetUp() override {
    AppTest::SetUp();
    Ingest("base.safetensors", "base");
    Ingest("ft1.safetensors", "base", "base@1");
    MakeServer({});
  }
  void MakeServer(ServerOptions o) {
    o.outbox_poll = std::chrono::milliseconds(20);
    server_ = std::make_unique<Server>(o, ctx_.store);
    session_ = std::make_shared<Session>("t", app::Caller{});
  }
  json Send(const std::string& text, const app::Caller& caller = {}) {
    std::string out = server_->HandleText(session_, text, caller, [this](const json& m) {
      emitted_.push_back(m);
      return true;
    });
    if (out.empty()) return nullptr;
    return json::parse(out);
  }
  json Request(const std::string& method, json params, int id = 7, const app::Caller& caller = {}) {
    json m = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
    return Send(m.dump(), caller);
  }
  json Init(const std::string& version = "2025-11-25") {
    json r = Request("initialize", {{"protocolVersion", version}, {"capabilities", json::object()},
                                    {"clientInfo", {{"name", "gtest"}, {"version", "1"}}}}, 1);
    Send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    return r;
  }
  json CallTool(const std::string& name, json args, const app::Caller& caller = {}) {
    return Request("tools/call", {{"name", name}, {"arguments", std::move(args)}}, 9, caller);
  }
  static int Code(const json& r) { return r.contains("error") ? r["error"]["code"].get<int>() : 0; }

  std::unique_ptr<Server> server_;
  std::shared_ptr<Session> session_;
  std::vector<json> emitted_;
};

TEST(JsonRpc, MalformedJsonIsParseErrorNamingTheByte) {
  Parsed p = ParseMessage(R"({"jsonrpc":"2.0", "id": 1, "method": })");
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.code, kParseError);
  EXPECT_NE(p.error.message.find("byte 38"), std::string::npos) << p.error.message;
}

TEST(JsonRpc, HugeAndDeepMessagesAreInvalidRequests) {
  std::string huge = R"({"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":")" + std::string(1000, 'a') + "\"}}";
  Parsed p = ParseMessage(huge, 512);
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.code, kInvalidRequest);
  EXPECT_NE(p.error.message.find("limit of 512 bytes"), std::string::npos);
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  p = ParseMessage(deep, 1 << 20);
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.code, kInvalidRequest);
  // Brackets inside strings are not nesting.
  p = ParseMessage(R"({"a":")" + std::string(200, '[') + "\"}");
  EXPECT_TRUE(p.ok);
}

TEST(JsonRpc, EnvelopeChecks) {
  EXPECT_EQ(Classify(json::parse(R"({"jsonrpc":"1.0","id":1,"method":"ping"})")).kind, Kind::kInvalid);
  EXPECT_EQ(Classify(json::parse(R"({"jsonrpc":"2.0","id":null,"method":"ping"})")).kind, Kind::kInvalid);
  EXPECT_EQ(Classify(json::parse(R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})")).kind, Kind::kInvalid);
  EXPECT_EQ(Classify(json::parse(R"({"jsonrpc":"2.0","id":1,"method":7})")).kind, Kind::kInvalid);
  Message m = Classify(json::parse(R"({"jsonrpc":"2.0","id":"a","method":"x","params":[1]})"));
  EXPECT_EQ(m.kind, Kind::kInvalid);
  EXPECT_EQ(m.error.code, kInvalidParams);
  EXPECT_EQ(Classify(json::parse(R"({"jsonrpc":"2.0","method":"x"})")).kind, Kind::kNotification);
  EXPECT_EQ(Classify(json::parse(R"({"jsonrpc":"2.0","id":3,"result":{}})")).kind, Kind::kResponse);
}

TEST_F(McpTest, ErrorsHaveTheRightCodes) {
  json r = Send("{not json");
  EXPECT_EQ(Code(r), kParseError);
  EXPECT_TRUE(r["id"].is_null());
  EXPECT_EQ(Code(Send("42")), kInvalidRequest);
  // Before initialize only ping answers.
  EXPECT_EQ(Code(Request("tools/list", json::object())), kInvalidRequest);
  EXPECT_EQ(Code(Request("ping", json::object())), 0);
  json init = Init();
  EXPECT_EQ(init["result"]["protocolVersion"], "2025-11-25");
  EXPECT_EQ(Code(Request("no/such/method", json::object())), kMethodNotFound);
  EXPECT_EQ(Code(Send(R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":"x"})")), kInvalidParams);
  EXPECT_EQ(Code(Request("tools/call", {{"name", 5}})), kInvalidParams);
  EXPECT_EQ(Code(Request("tools/call", {{"name", "list_models"}, {"arguments", "x"}})), kInvalidParams);
  EXPECT_EQ(Code(Request("tools/call", {{"name", "no_such_tool"}})), kInvalidParams);
  EXPECT_EQ(Code(Request("logging/setLevel", {{"level", "loud"}})), kInvalidParams);
  EXPECT_EQ(Code(Request("resources/read", {{"uri", "hart://models/nope/1"}})), kResourceNotFound);
  EXPECT_EQ(Code(Request("resources/read", {{"uri", "file:///etc/passwd"}})), kResourceNotFound);
  EXPECT_EQ(Code(Request("prompts/get", {{"name", "compare_versions"}, {"arguments", {{"a", "base@1"}}}})),
            kInvalidParams);
  EXPECT_EQ(Code(Request("completion/complete", {{"ref", 1}})), kInvalidParams);
  // A second initialize is refused; the session keeps its revision.
  EXPECT_EQ(Code(Request("initialize", {{"protocolVersion", "2025-03-26"}})), kInvalidRequest);
  EXPECT_EQ(session_->protocol_version(), "2025-11-25");
  // Responses and unknown notifications get no answer.
  EXPECT_TRUE(Send(R"({"jsonrpc":"2.0","id":99,"result":{}})").is_null());
  EXPECT_TRUE(Send(R"({"jsonrpc":"2.0","method":"notifications/whatever"})").is_null());
}

TEST_F(McpTest, ToolArgumentErrorsAreToolResultsNamingTheField) {
  Init();
  json r = CallTool("search_components", {{"query", "attn"}, {"k", "ten"}});
  ASSERT_EQ(Code(r), 0) << r;
  EXPECT_TRUE(r["result"]["isError"].get<bool>());
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("'k'"), std::string::npos) << r;
  r = CallTool("describe_model", {{"model", "base"}, {"colour", "red"}});
  EXPECT_TRUE(r["result"]["isError"].get<bool>());
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("colour"), std::string::npos) << r;
  r = CallTool("describe_model", {{"model", "nope"}});
  EXPECT_TRUE(r["result"]["isError"].get<bool>());
  EXPECT_EQ(r["result"]["content"][0]["text"].get<std::string>().rfind("not_found", 0), 0u) << r;
}

TEST_F(McpTest, VersionNegotiationAndBatches) {
  json r = Init("1999-01-01");
  EXPECT_EQ(r["result"]["protocolVersion"], kLatestVersion);
  json batch = json::array({{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}}});
  r = Send(batch.dump());
  EXPECT_EQ(Code(r), kInvalidRequest);  // no batches after 2025-03-26

  session_ = std::make_shared<Session>("old", app::Caller{});
  r = Init("2025-03-26");
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-03-26");
  batch = json::array({{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}},
                       {{"jsonrpc", "2.0"}, {"method", "notifications/whatever"}},
                       {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "nope"}},
                       {{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"},
                        {"params", {{"name", "list_models"}, {"arguments", json::object()}}}}});
  r = Send(batch.dump());
  ASSERT_TRUE(r.is_array()) << r;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0]["id"], 1);
  EXPECT_EQ(Code(r[1]), kMethodNotFound);
  // 2025-03-26 has no structured tool output.
  EXPECT_FALSE(r[2]["result"].contains("structuredContent"));
  EXPECT_EQ(Code(Send("[]")), kInvalidRequest);
  json tools = Request("tools/list", json::object());
  EXPECT_FALSE(tools["result"]["tools"][0].contains("outputSchema"));
}

TEST_F(McpTest, WriteToolsOnlyWhenEnabledAndAllowed) {
  auto names = [&](const app::Caller& c) {
    std::set<std::string> out;
    json list = Request("tools/list", json::object(), 5, c);
    for (auto& t : list["result"]["tools"]) out.insert(t["name"]);
    EXPECT_FALSE(out.empty()) << list;
    return out;
  };
  Init();
  EXPECT_FALSE(names({}).count("delete_version"));
  json r = CallTool("delete_version", {{"version", "base@2"}});
  EXPECT_EQ(Code(r), kInvalidParams);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("--enable-writes"), std::string::npos);

  MakeServer({.enable_writes = true});
  Init();
  app::Caller reader;
  reader.role = app::AccessRole::kReader;
  EXPECT_FALSE(names(reader).count("ingest"));
  EXPECT_EQ(Code(CallTool("delete_version", {{"version", "base@2"}}, reader)), kInvalidParams);
  EXPECT_TRUE(names({}).count("ingest"));
  r = CallTool("delete_version", {{"version", "base@2"}});
  EXPECT_FALSE(r["result"]["isError"].get<bool>()) << r;
  auto vs = app::List(ctx_, app::ListRequest{.model = "base"});
  ASSERT_TRUE(vs.ok());
  EXPECT_EQ(vs->versions.size(), 1u);
}

// Every attempt to write through sql_query fails and the store is unchanged.
TEST_F(McpTest, SqlQueryRefusesWritesAndChangesNothing) {
  Init();
  auto snapshot = [&] {
    auto r = app::Sql(ctx_, app::SqlRequest{.sql = "SELECT (SELECT count(*) FROM versions) || ':' || "
                                                   "(SELECT count(*) FROM tensors) || ':' || "
                                                   "(SELECT group_concat(name) FROM models)"});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? app::SqlValueToJson(r->rows[0][0]).dump() : std::string();
  };
  std::string before = snapshot();
  std::string attach = root_ + "/evil.db";
  const char* attempts[] = {
      "SELECT 1; DELETE FROM version",
      "COMMIT; DELETE FROM version",
      "DELETE FROM version",
      "WITH x AS (SELECT 1) DELETE FROM version",
      "UPDATE model SET name = 'x'",
      "INSERT INTO model(name) VALUES ('x')",
      "DROP TABLE version",
      "CREATE TABLE t(x)",
      "PRAGMA writable_schema = 1",
      "PRAGMA journal_mode = delete",
      "VACUUM",
      "REINDEX",
      "SELECT load_extension('/tmp/nothing')",
      "END; DELETE FROM model",
      "SELECT 1;; DROP TABLE model",
      "INSERT INTO search_text(search_text) VALUES ('delete-all')",
      "REPLACE INTO model(id, name) VALUES (1, 'x')",
      "ANALYZE",
      "DETACH DATABASE main",
      "CREATE TEMP TABLE t(x)",
      "PRAGMA query_only = 0",
      "BEGIN IMMEDIATE",
  };
  for (const char* sql : attempts) {
    json r = CallTool("sql_query", {{"sql", sql}});
    ASSERT_EQ(Code(r), 0) << sql;
    EXPECT_TRUE(r["result"]["isError"].get<bool>()) << sql << " -> " << r;
  }
  json r = CallTool("sql_query", {{"sql", "ATTACH DATABASE '" + attach + "' AS evil"}});
  EXPECT_TRUE(r["result"]["isError"].get<bool>()) << r;
  EXPECT_FALSE(std::filesystem::exists(attach));
  EXPECT_EQ(snapshot(), before);
  // A read works, and the server's row cap bounds what a request asks for.
  MakeServer({.sql_max_rows = 3});
  Init();
  r = CallTool("sql_query", {{"sql", "SELECT name FROM tensors"}, {"max_rows", 1000}});
  ASSERT_FALSE(r["result"]["isError"].get<bool>()) << r;
  EXPECT_EQ(r["result"]["structuredContent"]["rows"].size(), 3u);
  EXPECT_TRUE(r["result"]["structuredContent"]["truncated"].get<bool>());
}

TEST_F(McpTest, ResourcesPromptsAndCompletion) {
  Init();
  json r = Request("resources/list", json::object());
  ASSERT_EQ(Code(r), 0) << r;
  std::set<std::string> uris;
  for (auto& x : r["result"]["resources"]) uris.insert(x["uri"]);
  EXPECT_TRUE(uris.count("hart://store/stats"));
  EXPECT_TRUE(uris.count("hart://models/base/2"));
  r = Request("resources/read", {{"uri", "hart://models/base/2"}});
  ASSERT_EQ(Code(r), 0) << r;
  json card = json::parse(r["result"]["contents"][0]["text"].get<std::string>());
  EXPECT_EQ(card["lineage"], json::array({"base@1"}));
  EXPECT_EQ(Code(Request("resources/read", {{"uri", "hart://models/base/9"}})), kResourceNotFound);
  r = Request("prompts/get", {{"name", "compare_versions"}, {"arguments", {{"a", "base@1"}, {"b", "base@2"}}}});
  ASSERT_EQ(Code(r), 0) << r;
  EXPECT_EQ(r["result"]["messages"].size(), 3u);
  r = Request("completion/complete",
              {{"ref", {{"type", "ref/prompt"}, {"name", "compare_versions"}}}, {"argument", {{"name", "a"}, {"value", "base@"}}}});
  ASSERT_EQ(Code(r), 0) << r;
  EXPECT_EQ(r["result"]["completion"]["values"], json::array({"base@1", "base@2"}));
}

TEST_F(McpTest, SubscriptionHearsANewVersion) {
  Init();
  std::mutex mu;
  std::vector<json> heard;
  session_->SetNotify([&](const json& m) {
    std::lock_guard l(mu);
    heard.push_back(m);
    return true;
  });
  server_->Attach(session_);
  ASSERT_EQ(Code(Request("resources/subscribe", {{"uri", "hart://models/base/1"}})), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the watcher has read the outbox's end
  Ingest("ft2.safetensors", "base", "base@1");
  bool got = false;
  for (int i = 0; i < 500 && !got; ++i) {  // bounded: at most 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::lock_guard l(mu);
    for (auto& m : heard) {
      if (m["method"] == "notifications/resources/updated" && m["params"]["uri"] == "hart://models/base/1") got = true;
    }
  }
  EXPECT_TRUE(got);
  server_->Detach(session_.get());
}

TEST(McpHttp, OriginCheck) {
  EXPECT_TRUE(OriginAllowed("http://localhost:3000", "127.0.0.1:8080", false));
  EXPECT_TRUE(OriginAllowed("http://127.0.0.1", "127.0.0.1:8080", false));
  EXPECT_TRUE(OriginAllowed("http://[::1]:9", "x", false));
  // DNS rebinding: the attacker's page and Host agree, but nobody signed in.
  EXPECT_FALSE(OriginAllowed("http://rebind.example:8080", "rebind.example:8080", false));
  EXPECT_TRUE(OriginAllowed("https://models.example.com", "models.example.com", true));
  EXPECT_FALSE(OriginAllowed("https://evil.example", "models.example.com", true));
  EXPECT_FALSE(OriginAllowed("http://evil.example", "127.0.0.1:8080", false));
  EXPECT_FALSE(OriginAllowed("http://localhost.evil.example", "127.0.0.1:8080", false));
  EXPECT_FALSE(OriginAllowed("null", "127.0.0.1:8080", false));
}

class StdioTest : public McpTest {};

TEST_F(StdioTest, LongLineIsRefusedAndTheSessionGoesOn) {
  MakeServer({.max_message = 1024});
  int in[2], out[2];
  ASSERT_EQ(pipe(in), 0);
  ASSERT_EQ(pipe(out), 0);
  std::thread t([&] { (void)RunStdio(*server_, in[0], out[1]); });
  std::string msgs = std::string(5000, 'x') + "\n" +
                     R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}})" "\n" +
                     R"({"jsonrpc":"2.0","id":2,"method":"ping"})" "\n";
  ASSERT_EQ(write(in[1], msgs.data(), msgs.size()), static_cast<ssize_t>(msgs.size()));
  close(in[1]);
  t.join();
  close(out[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) got.append(buf, n);
  close(out[0]);
  close(in[0]);
  std::vector<json> lines;
  for (auto part : absl::StrSplit(got, '\n', absl::SkipEmpty())) lines.push_back(json::parse(std::string(part)));
  ASSERT_EQ(lines.size(), 3u) << got;
  EXPECT_EQ(lines[0]["error"]["code"], kInvalidRequest);
  EXPECT_EQ(lines[1]["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(lines[2]["id"], 2);
}

// A client that sends much and never reads: once it closes stdin the server
// ends, although its answers can never be delivered.
TEST_F(StdioTest, ClientThatNeverReadsCannotHangTheServer) {
  int in[2], out[2];
  ASSERT_EQ(pipe(in), 0);
  ASSERT_EQ(pipe(out), 0);
  StdioOptions so{.write_stall = std::chrono::milliseconds(300), .close_grace = std::chrono::milliseconds(300)};
  auto done = std::async(std::launch::async, [&] { return RunStdio(*server_, in[0], out[1], {}, so); });
  std::string msgs = R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})" "\n";
  for (int i = 1; i <= 300; ++i) msgs += fmt::format(R"({{"jsonrpc":"2.0","id":{},"method":"tools/list"}})" "\n", i);
  ASSERT_EQ(write(in[1], msgs.data(), msgs.size()), static_cast<ssize_t>(msgs.size()));
  close(in[1]);
  // 300 tool lists are far more than a pipe holds; nobody reads out[0].
  ASSERT_EQ(done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  close(out[0]);
  close(out[1]);
  close(in[0]);
}

}  // namespace
}  // namespace hart::mcp

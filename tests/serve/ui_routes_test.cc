// The web UI's static routes on a real `hart serve`: index.html revalidated
// (no-cache), hashed assets immutable, a strict Content-Security-Policy on
// every UI answer, no way out of the UI directory, a clear 503 when the UI
// is not built; and the tensor-view REST routes' wire shape and errors.
#include <chrono>
#include <fstream>
#include <thread>

#include "tests/cli/cli_runner.h"
#include "tests/serve/http_client.h"
#include "tests/serve/serve_process.h"

namespace hart::serve_test {
namespace {

using cli_test::HartProcess;
using cli_test::MakeTempDir;
using cli_test::ReadAll;
using cli_test::TempStore;
using nlohmann::json;
namespace fs = std::filesystem;

// `hart serve --no-access-log --ui-dir UI_DIR EXTRA...`.
class UiServer : public ServeProcess {
 public:
  UiServer(const TempStore& store, const std::string& ui_dir, std::vector<std::string> extra = {})
      : ServeProcess(store, WithUi(ui_dir, std::move(extra)), "hart_ui_serve_") {}

 private:
  static std::vector<std::string> WithUi(const std::string& ui_dir, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--no-access-log", "--ui-dir", ui_dir};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
};

void Write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

void ExpectCsp(const HttpResponse& r) {
  std::string csp = r.Header("content-security-policy");
  EXPECT_NE(csp.find("default-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("object-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
  EXPECT_EQ(r.Header("x-content-type-options"), "nosniff");
}

TEST(UiRoutes, IndexRevalidatedAssetsImmutableCspEverywhereNoTraversal) {
  std::string ui = MakeTempDir("hart_ui_dist_");
  Write(ui + "/index.html", "<!doctype html><script type=module src=/assets/index-abc123.js></script>");
  Write(ui + "/assets/index-abc123.js", "console.log(1)");
  Write(ui + "/assets/index-abc123.css", "body{}");
  Write(ui + "/secret.txt", "not an asset");
  TempStore store;
  ASSERT_TRUE(store.Init());
  UiServer s(store, ui);
  ASSERT_NE(s.port(), 0);

  HttpResponse index = Http(s.port(), "GET", "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(index.Header("cache-control"), "no-cache");
  EXPECT_NE(index.body.find("index-abc123.js"), std::string::npos);
  ExpectCsp(index);

  HttpResponse js = Http(s.port(), "GET", "/assets/index-abc123.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.body, "console.log(1)");
  EXPECT_EQ(js.Header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.Header("cache-control"), "public, max-age=31536000, immutable");
  ExpectCsp(js);
  EXPECT_EQ(Http(s.port(), "GET", "/assets/index-abc123.css").Header("content-type"), "text/css; charset=utf-8");

  for (std::string bad : {"/assets/..%2Fsecret.txt", "/assets/%2E%2E", "/assets/.hidden", "/assets/nope.js",
                          "/assets/a%00b"}) {
    HttpResponse r = Http(s.port(), "GET", bad);
    EXPECT_TRUE(r.status == 404 || r.status == 400) << bad << " " << r.status;
    EXPECT_EQ(r.body.find("not an asset"), std::string::npos) << bad;
  }
  // The UI's files are not API operations.
  json doc = Http(s.port(), "GET", "/openapi.json").Json();
  EXPECT_FALSE(doc["paths"].contains("/"));
  EXPECT_FALSE(doc["paths"].contains("/assets/{file}"));
  std::error_code ec;
  fs::remove_all(ui, ec);
}

TEST(UiRoutes, ConnectSrcNamesTheSignInProviderOnly) {
  TempStore store;
  ASSERT_TRUE(store.Init());
  UiServer s(store, "/nonexistent/ui",
             {"--ui-connect-src", "https://login.example.com", "--ui-connect-src", "https://x; script-src *"});
  ASSERT_NE(s.port(), 0);
  std::string csp = Http(s.port(), "GET", "/").Header("content-security-policy");
  EXPECT_NE(csp.find("connect-src 'self' https://login.example.com;"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("script-src *"), std::string::npos) << csp;  // an origin cannot smuggle a directive
}

TEST(UiRoutes, UnbuiltUiIsAClear503AndTheApiStillAnswers) {
  TempStore store;
  ASSERT_TRUE(store.Init());
  UiServer s(store, "/nonexistent/ui");
  ASSERT_NE(s.port(), 0);
  HttpResponse r = Http(s.port(), "GET", "/");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("not built"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("/nonexistent/ui"), std::string::npos) << r.body;
  ExpectCsp(r);
  EXPECT_EQ(Http(s.port(), "GET", "/api/models").status, 200);
}

TEST(UiRoutes, TensorViewRoutes) {
  std::string models = MakeTempDir("hart_ui_models_");
  ASSERT_EQ(std::system(("/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_models.py '" + models + "' >/dev/null").c_str()), 0);
  TempStore store;
  ASSERT_TRUE(store.Init());
  ASSERT_EQ(store.Run({"ingest", models + "/base.safetensors", "--model", "m", "--license", "mit"}).exit_code, 0);
  ASSERT_EQ(store.Run({"ingest", models + "/ft1.safetensors", "--model", "m", "--parent", "m@1", "--license", "mit"}).exit_code, 0);
  UiServer s(store, "/nonexistent/ui");
  ASSERT_NE(s.port(), 0);
  json show = Http(s.port(), "GET", "/api/versions/m@1").Json();
  std::string name = show["tensors"][0]["name"];

  HttpResponse h = Http(s.port(), "GET", "/api/versions/m@1/histogram?tensor=" + name + "&bins=8");
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.Json()["counts"].size(), 8u);
  EXPECT_EQ(h.Json()["tensor"], name);
  HttpResponse m = Http(s.port(), "GET", "/api/versions/m@1/heatmap?tensor=" + name + "&rows=4&cols=8");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_LE(m.Json()["cells"].size(), 4u);
  HttpResponse n = Http(s.port(), "POST", "/api/diff/norms", R"({"a":"m@1","b":"m@2"})");
  ASSERT_EQ(n.status, 200) << n.body;
  EXPECT_GE(n.Json()["rows"].size(), 1u);
  EXPECT_TRUE(n.Json()["rows"][0]["l2_diff"].is_number());

  EXPECT_EQ(Http(s.port(), "GET", "/api/versions/m@1/histogram?tensor=nope").status, 404);
  EXPECT_EQ(Http(s.port(), "GET", "/api/versions/m@1/histogram?tensor=" + name + "&bins=x").status, 400);
  EXPECT_EQ(Http(s.port(), "GET", "/api/versions/m@1/histogram?tensor=" + name + "&typo=1").status, 400);
  EXPECT_EQ(Http(s.port(), "POST", "/api/diff/norms", R"({"a":"m@1"})").status, 400);
  std::error_code ec;
  fs::remove_all(models, ec);
}

}  // namespace
}  // namespace hart::serve_test

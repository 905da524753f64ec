// `hart serve --mem-budget` over HTTP with several models: a tiny llama, a
// fine-tune of it (its FFN down projections changed) and an unrelated model.
// /v1/models, /v1/models/{model} and /api/runtime/models show what is loaded,
// resident or streamed, and what it costs (shared bytes of the fine-tune);
// /metrics shows the budget, resident total, loads and evictions; a budget
// too small for one layer answers 400 naming the model. The server
// process's RSS grows by the fine-tune's changed tensors only (within
// 1.5 MiB + 5%: request buffers, a session's KV cache and scratch).
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "formats/gguf.h"
#include "tests/cli/cli_runner.h"
#include "tests/runtime/finetune_fixture.h"
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

// `hart serve` on 127.0.0.1 (port 0) with the given budget; SIGTERM on destruction.
class BudgetServer : public ServeProcess {
 public:
  BudgetServer(const TempStore& store, const std::string& budget)
      : ServeProcess(store, {"--mem-budget", budget}, "hart_serve_models_") {}
};

uint64_t TensorBytes(const std::string& gguf) {
  auto src = formats::ReadGguf(gguf);
  EXPECT_TRUE(src.ok()) << src.status();
  uint64_t n = 0;
  if (src.ok())
    for (const auto& t : src->tensors) n += t.nbytes;
  return n;
}

class ServeModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("hart_serve_models_fx_"));
    for (auto [name, args] : {std::pair{"base", "--type f32 --layers 8"}, std::pair{"other", "--type f32 --layers 2 --seed 7"}}) {
      std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" + *dir_ + "/" +
                        name + "' " + args + " > /dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0);
    }
    auto d = runtime::testing::WriteFineTune(*dir_ + "/base/model.gguf", *dir_ + "/ft.gguf",
                                             [](const std::string& t) {
                                               return t.find("ffn_down") != std::string::npos ||
                                                      t.find("ffn_gate") != std::string::npos;
                                             });
    ASSERT_TRUE(d.ok()) << d.status();
    diff_ = *d;
    base_bytes_ = TensorBytes(*dir_ + "/base/model.gguf");
    other_bytes_ = TensorBytes(*dir_ + "/other/model.gguf");
    store_ = new TempStore();
    ASSERT_TRUE(store_->Init());
    for (auto [name, path] : {std::pair{"base", *dir_ + "/base/model.gguf"}, std::pair{"ft", *dir_ + "/ft.gguf"},
                              std::pair{"other", *dir_ + "/other/model.gguf"}}) {
      RunResult r = store_->Run({"ingest", path, "--model", name, "--license", "mit"});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
    }
  }
  static void TearDownTestSuite() {
    delete store_;
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  static HttpResponse Complete(uint16_t port, const std::string& model) {
    json body = {{"model", model}, {"prompt", "Once upon"}, {"max_tokens", 4}, {"temperature", 0}};
    return Http(port, "POST", "/v1/completions", body.dump(), {{"content-type", "application/json"}});
  }
  static json ModelEntry(const json& list, const std::string& id) {
    for (const auto& m : list["data"])
      if (m["id"] == id) return m;
    return json();
  }

  static std::string* dir_;
  static TempStore* store_;
  static uint64_t diff_, base_bytes_, other_bytes_;
};
std::string* ServeModels::dir_ = nullptr;
TempStore* ServeModels::store_ = nullptr;
uint64_t ServeModels::diff_ = 0, ServeModels::base_bytes_ = 0, ServeModels::other_bytes_ = 0;

TEST_F(ServeModels, ModelsAndMetricsShowWhatIsResidentAndWhatItCosts) {
  // Room for the base and its fine-tune together, not for the other model beside them.
  const uint64_t budget = base_bytes_ + diff_ + 64 * 1024;
  ASSERT_GT(other_bytes_, 64 * 1024u);
  BudgetServer srv(*store_, std::to_string(budget));
  ASSERT_NE(srv.port(), 0) << srv.Log();
  const uint16_t port = srv.port();

  json list = Http(port, "GET", "/v1/models").Json();
  EXPECT_EQ(ModelEntry(list, "base@1")["loaded"], false) << list.dump();
  EXPECT_EQ(ModelEntry(list, "base")["loaded"], false) << list.dump();

  // The other model once first, so the server's heap and threads have grown
  // to what a request uses before RSS is compared. The base fits beside it;
  // the fine-tune then evicts it (its pages leave the process) and adds
  // only its changed tensors: RSS follows the accounting's change.
  ASSERT_EQ(Complete(port, "other").status, 200);
  auto resident = [&] { return Http(port, "GET", "/api/runtime/models").Json()["resident_bytes"].get<double>(); };
  ASSERT_EQ(Complete(port, "base").status, 200);
  const double rss1 = static_cast<double>(srv.Rss()), acct1 = resident();
  EXPECT_EQ(acct1, static_cast<double>(base_bytes_ + other_bytes_));
  ASSERT_EQ(Complete(port, "ft").status, 200);
  const double rss2 = static_cast<double>(srv.Rss()), acct2 = resident();
  EXPECT_EQ(acct2, static_cast<double>(base_bytes_ + diff_));
  EXPECT_NEAR(rss2 - rss1, acct2 - acct1, 1.5 * (1 << 20) + 0.05 * static_cast<double>(diff_))
      << "server RSS changed by " << (rss2 - rss1) / (1 << 20) << " MiB, the accounting by "
      << (acct2 - acct1) / (1 << 20) << " MiB (unshared, the fine-tune would add "
      << static_cast<double>(base_bytes_) / (1 << 20) << " MiB)";
  list = Http(port, "GET", "/v1/models").Json();
  json ft = ModelEntry(list, "ft@1");
  ASSERT_TRUE(ft.is_object()) << list.dump();
  EXPECT_EQ(ft["object"], "model");
  EXPECT_EQ(ft["loaded"], true);
  EXPECT_EQ(ft["mode"], "resident");
  EXPECT_EQ(ft["resident_bytes"], base_bytes_);
  EXPECT_EQ(ft["shared_bytes"], base_bytes_ - diff_);
  EXPECT_GT(ft["last_used"].get<int64_t>(), 1700000000);
  // The name stands for its newest version.
  EXPECT_EQ(ModelEntry(list, "base")["shared_bytes"], base_bytes_ - diff_);
  EXPECT_EQ(ModelEntry(list, "other@1")["loaded"], false);
  json one = Http(port, "GET", "/v1/models/base@1").Json();
  EXPECT_EQ(one["mode"], "resident");
  EXPECT_EQ(one["resident_bytes"], base_bytes_);

  std::string metrics = Http(port, "GET", "/metrics").body;
  EXPECT_EQ(Metric(metrics, "hart_resident_weight_bytes"), static_cast<double>(base_bytes_ + diff_));
  EXPECT_EQ(Metric(metrics, "hart_weight_budget_bytes"), static_cast<double>(budget));
  EXPECT_EQ(Metric(metrics, "hart_weight_shared_saved_bytes"), static_cast<double>(base_bytes_ - diff_));
  EXPECT_EQ(Metric(metrics, "hart_model_loads_total"), 3);
  EXPECT_EQ(Metric(metrics, "hart_model_evictions_total"), 1);  // other, to make room for the fine-tune
  EXPECT_EQ(Metric(metrics, "hart_models_loaded"), 2);
  EXPECT_NE(metrics.find("hart_model_resident_bytes{model=\"ft@1\"} " + std::to_string(base_bytes_)),
            std::string::npos)
      << metrics;
  // The base and its fine-tune hold one tokenizer: reported per model,
  // counted once in the total.
  const uint64_t tok = ft["tokenizer_bytes"].get<uint64_t>();
  EXPECT_GT(tok, 0u);
  EXPECT_EQ(ft["tokenizer_shared"], true);
  EXPECT_EQ(one["tokenizer_bytes"], tok);
  EXPECT_EQ(Metric(metrics, "hart_tokenizer_bytes"), static_cast<double>(tok));
  EXPECT_EQ(Metric(metrics, "hart_tokenizer_shared_saved_bytes"), static_cast<double>(tok));
  EXPECT_NE(metrics.find("hart_model_tokenizer_bytes{model=\"ft@1\"} " + std::to_string(tok)), std::string::npos)
      << metrics;

  // The other model needs room: the idle base and fine-tune are evicted.
  HttpResponse r = Complete(port, "other");
  ASSERT_EQ(r.status, 200) << r.body;
  metrics = Http(port, "GET", "/metrics").body;
  EXPECT_GE(Metric(metrics, "hart_model_evictions_total"), 2);
  EXPECT_LE(Metric(metrics, "hart_resident_weight_bytes"), static_cast<double>(budget));
  // The finished request's handler lets go of its model a moment after the
  // response is out.
  json rt;
  for (int i = 0; i < 200; ++i) {
    rt = Http(port, "GET", "/api/runtime/models").Json();
    bool idle = true;
    for (const auto& m : rt["models"]) idle = idle && m["holders"] == 0;
    if (idle) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(rt["budget"], budget);
  EXPECT_EQ(rt["loads"], 4);
  bool found = false;
  for (const auto& m : rt["models"])
    if (m["ref"] == "other@1") {
      found = true;
      EXPECT_EQ(m["mode"], "resident");
      EXPECT_EQ(m["resident_bytes"], other_bytes_);
      EXPECT_EQ(m["holders"], 0);
    }
  EXPECT_TRUE(found) << rt.dump();
}

TEST_F(ServeModels, ABudgetTooSmallForOneLayerIs400NamingTheModel) {
  BudgetServer srv(*store_, "64K");
  ASSERT_NE(srv.port(), 0) << srv.Log();
  HttpResponse r = Complete(srv.port(), "base");
  EXPECT_EQ(r.status, 400) << r.body;
  json j = r.Json();
  ASSERT_TRUE(j.contains("error")) << r.body;
  const std::string msg = j["error"]["message"];
  EXPECT_NE(msg.find("base@1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("too small for even one layer"), std::string::npos) << msg;
  EXPECT_EQ(j["error"]["param"], "model") << r.body;
}

}  // namespace
}  // namespace hart::serve_test

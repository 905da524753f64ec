// What hart ls / show / diff / stats / events print, checked through --json
// (parsed) and the text tables' shape.
#include <chrono>
#include <set>
#include <thread>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

// Tensors make_models.py changes in ft2 (names[4], [14], [27], [33]).
const std::set<std::string> kFt2Changed = {
    "model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.gate_proj.weight",
    "model.layers.2.post_attention_layernorm.weight", "model.layers.3.mlp.up_proj.weight"};

class CliOutputTest : public ::testing::Test {
 protected:
  // One store for the suite: base@1, ft1@1 (no parent given), ft2@1 (parent
  // base@1), ft_vocab@1.
  static void SetUpTestSuite() {
    fixtures_ = new std::string(MakeTempDir("hart_fx_"));
    ASSERT_TRUE(MakeModels(*fixtures_));
    store_ = new TempStore();
    ASSERT_TRUE(store_->Init());
    ingest_base_ = new RunResult(store_->Run({"ingest", Fixture("base.safetensors"),
                                              "--license", "apache-2.0"}));
    ingest_ft1_ = new RunResult(store_->Run({"ingest", Fixture("ft1.safetensors"),
                                             "--license", "apache-2.0"}));
    RunResult r = store_->Run({"ingest", Fixture("ft2.safetensors"), "--license", "apache-2.0",
                               "--parent", "base@1"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = store_->Run({"ingest", Fixture("ft_vocab.safetensors"), "--license", "apache-2.0",
                     "--parent", "base"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  static void TearDownTestSuite() {
    delete store_;
    delete ingest_base_;
    delete ingest_ft1_;
    std::error_code ec;
    fs::remove_all(*fixtures_, ec);
    delete fixtures_;
  }
  static std::string Fixture(const std::string& name) { return *fixtures_ + "/" + name; }
  static uint64_t Size(const std::string& name) { return fs::file_size(Fixture(name)); }

  static std::string* fixtures_;
  static TempStore* store_;
  static RunResult* ingest_base_;
  static RunResult* ingest_ft1_;
};
std::string* CliOutputTest::fixtures_ = nullptr;
TempStore* CliOutputTest::store_ = nullptr;
RunResult* CliOutputTest::ingest_base_ = nullptr;
RunResult* CliOutputTest::ingest_ft1_ = nullptr;

TEST_F(CliOutputTest, IngestPrintsVersionSizesDedupAndParentTip) {
  ASSERT_EQ(ingest_base_->exit_code, 0) << Describe(*ingest_base_);
  EXPECT_NE(ingest_base_->out.find("base@1"), std::string::npos) << ingest_base_->out;
  EXPECT_NE(ingest_base_->out.find("tensors 39"), std::string::npos) << ingest_base_->out;
  EXPECT_EQ(ingest_base_->out.find("tip:"), std::string::npos) << ingest_base_->out;
  ASSERT_EQ(ingest_ft1_->exit_code, 0) << Describe(*ingest_ft1_);
  EXPECT_NE(ingest_ft1_->out.find("ft1@1"), std::string::npos);
  EXPECT_NE(ingest_ft1_->out.find("tip: shares"), std::string::npos) << ingest_ft1_->out;
  EXPECT_NE(ingest_ft1_->out.find("--parent base@1"), std::string::npos) << ingest_ft1_->out;
  EXPECT_TRUE(ingest_base_->err.empty()) << ingest_base_->err;
}

TEST_F(CliOutputTest, LsListsModelsWithExactBytesInJson) {
  RunResult r = store_->Run({"ls", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  ASSERT_TRUE(j.is_array());
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& m : j) by_name[m["name"]] = m;
  ASSERT_EQ(by_name.size(), 4u) << j.dump();
  EXPECT_EQ(by_name["base"]["versions"], 1);
  EXPECT_EQ(by_name["base"]["latest"], 1);
  EXPECT_EQ(by_name["base"]["logical_bytes"].get<uint64_t>(), Size("base.safetensors"));
  EXPECT_EQ(by_name["ft_vocab"]["logical_bytes"].get<uint64_t>(), Size("ft_vocab.safetensors"));

  r = store_->Run({"ls"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.rfind("MODEL", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("base@1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KiB"), std::string::npos) << r.out;  // human-readable sizes

  r = store_->Run({"ls", "ft2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ASSERT_EQ(r.Json().size(), 1u);
  EXPECT_EQ(r.Json()[0]["parent"], "base@1");
}

TEST_F(CliOutputTest, ShowGivesHeaderAndTensorsSharedWithOtherVersions) {
  RunResult r = store_->Run({"show", "ft2@1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  EXPECT_EQ(j["version"]["version"], "ft2@1");
  EXPECT_EQ(j["version"]["parent"], "base@1");
  EXPECT_EQ(j["version"]["format"], "safetensors");
  EXPECT_EQ(j["version"]["license"], "apache-2.0");
  EXPECT_EQ(j["version"]["tensors"], 39);
  EXPECT_GT(j["version"]["created_at"].get<int64_t>(), 1'600'000'000);
  ASSERT_EQ(j["tensors"].size(), 39u);
  for (const auto& t : j["tensors"]) {
    std::string name = t["name"];
    std::set<std::string> shared(t["shared_with"].begin(), t["shared_with"].end());
    if (kFt2Changed.count(name)) {
      EXPECT_EQ(shared.count("base@1"), 0u) << name;
    } else {
      EXPECT_EQ(shared.count("base@1"), 1u) << name << " " << t.dump();
    }
    if (name == "model.embed_tokens.weight") {
      EXPECT_EQ(t["dtype"], "F16");
      EXPECT_EQ(t["shape"], nlohmann::json({256, 64}));
      EXPECT_EQ(t["nbytes"], 256 * 64 * 2);
    }
  }

  r = store_->Run({"show", "ft2"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.rfind("ft2@1\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("parent"), std::string::npos);
  EXPECT_NE(r.out.find("apache-2.0"), std::string::npos);
  EXPECT_NE(r.out.find("TENSOR"), std::string::npos);
  EXPECT_NE(r.out.find("[256, 64]"), std::string::npos) << r.out;
}

TEST_F(CliOutputTest, DiffNamesTheChangedTensors) {
  RunResult r = store_->Run({"diff", "base@1", "ft2@1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  EXPECT_EQ(j["summary"]["added"], 0);
  EXPECT_EQ(j["summary"]["removed"], 0);
  EXPECT_EQ(j["summary"]["changed"], 4);
  EXPECT_GT(j["summary"]["changed_bytes"].get<uint64_t>(), 0u);
  std::set<std::string> names;
  for (const auto& row : j["rows"]) names.insert(row["name"]);
  EXPECT_EQ(names, kFt2Changed);

  r = store_->Run({"diff", "base", "ft_vocab", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  j = r.Json();
  ASSERT_EQ(j["rows"].size(), 1u) << j.dump();
  EXPECT_EQ(j["rows"][0]["name"], "model.embed_tokens.weight");
  EXPECT_EQ(j["rows"][0]["shape_a"], nlohmann::json({256, 64}));
  EXPECT_EQ(j["rows"][0]["shape_b"], nlohmann::json({272, 64}));

  r = store_->Run({"diff", "base@1", "ft2@1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("0 added, 0 removed, 4 changed"), std::string::npos) << r.out;
}

TEST_F(CliOutputTest, StatsShowsWhatDedupSaves) {
  RunResult r = store_->Run({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  uint64_t logical = j["total"]["logical_bytes"];
  uint64_t physical = j["total"]["physical_bytes"];
  EXPECT_EQ(j["total"]["versions"], 4);
  EXPECT_EQ(logical, Size("base.safetensors") + Size("ft1.safetensors") +
                         Size("ft2.safetensors") + Size("ft_vocab.safetensors"));
  // Four near-copies of one model: well under half the logical bytes stored.
  EXPECT_LT(physical, logical / 2);
  EXPECT_GT(j["total"]["dedup_ratio"].get<double>(), 2.0);
  EXPECT_GE(j["pack_bytes"].get<uint64_t>(), physical);
  EXPECT_EQ(j["models"].size(), 4u);

  r = store_->Run({"stats"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("(total)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dedup saves"), std::string::npos) << r.out;
}

TEST_F(CliOutputTest, EventsAreJsonLinesAfterAnId) {
  RunResult r = store_->Run({"events"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<nlohmann::json> events;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) events.push_back(nlohmann::json::parse(line));
  ASSERT_GE(events.size(), 4u) << r.out;  // one per version at least
  int64_t prev = 0;
  int created = 0;
  for (const auto& e : events) {
    EXPECT_GT(e["id"].get<int64_t>(), prev);
    prev = e["id"];
    EXPECT_GT(e["ts"].get<int64_t>(), 1'600'000'000'000);
    if (e["kind"] == "version.created") ++created;
  }
  EXPECT_EQ(created, 4) << r.out;

  int64_t first = events[0]["id"];
  r = store_->Run({"events", "--after", std::to_string(first)});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(static_cast<size_t>(std::count(r.out.begin(), r.out.end(), '\n')), events.size() - 1);
}

TEST_F(CliOutputTest, EventsFollowSeesNewVersionsAndStopsOnSigterm) {
  RunResult r = store_->Run({"events"});
  ASSERT_EQ(r.exit_code, 0);
  std::string last_line = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  int64_t last_id = nlohmann::json::parse(last_line)["id"];

  std::string out = store_->root() + "/follow.out", err = store_->root() + "/follow.err";
  HartProcess follow(store_->Args({"events", "--follow", "--after", std::to_string(last_id)}),
                     out, err);
  r = store_->Run({"ingest", Fixture("model.gguf"), "--model", "followed"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ReadAll(out).find("followed") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(follow.Poll()) << "--follow ended on its own";
  follow.Kill(SIGTERM);
  RunResult f = follow.Wait();
  EXPECT_EQ(f.exit_code, 0) << Describe(f);
  EXPECT_NE(f.out.find("followed"), std::string::npos) << f.out;
  std::istringstream in(f.out);
  for (std::string line; std::getline(in, line);)
    EXPECT_GT(nlohmann::json::parse(line)["id"].get<int64_t>(), last_id);
}

}  // namespace
}  // namespace hart::cli_test

// app/models: many models under one memory budget, resident weights shared
// by tensor digest. A real store holds a tiny llama (16 layers, f32, ~37 MiB)
// and three fine-tunes of it (each with one kind of tensor changed in every
// layer, written by tests/runtime/finetune_fixture.h), plus an unrelated small
// model. Resident bytes are checked from the registry's own accounting
// (exactly) and from this process's RSS (/proc/self/statm, within 1.5 MiB +
// 5% of the expected change: heap left by a load's header buffers, the
// model's norm vectors); LRU eviction of idle models; models in use never
// evicted; a model larger than what is free streams with the same greedy
// output; a budget too small for one layer.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/memory_usage.h"
#include "app/generate.h"
#include "app/models.h"
#include "formats/gguf.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/runtime/finetune_fixture.h"
#include "tests/runtime/ingest_fixture.h"
#include "tests/runtime/runtime_fixtures.h"

namespace hart::app {
namespace {

namespace rt = hart::runtime;

constexpr uint64_t kMiB = uint64_t{1} << 20;

// RSS moved by `expected` bytes, within 1.5 MiB + 5%.
void ExpectRssDelta(uint64_t before, uint64_t after, uint64_t expected, const std::string& what) {
  const double delta = static_cast<double>(after) - static_cast<double>(before);
  const double tol = 1.5 * kMiB + 0.05 * static_cast<double>(expected);
  EXPECT_NEAR(delta, static_cast<double>(expected), tol)
      << what << ": RSS grew by " << delta / kMiB << " MiB, expected " << static_cast<double>(expected) / kMiB
      << " MiB";
}

class AppModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string base = rt::testing::MakeFixture("models_base", "--type f32 --layers 16") + "/model.gguf";
    const std::string other =
        rt::testing::MakeFixture("models_other", "--type f32 --layers 2 --seed 99") + "/model.gguf";
    const std::string root = rt::testing::FixtureRoot();
    diff_ = new std::map<std::string, uint64_t>();
    struct Ft {
      const char* name;
      const char* tensor;
    };
    std::vector<std::pair<std::string, std::string>> files = {{"base", base}, {"other", other}};
    for (Ft ft : {Ft{"ft-a", "ffn_down"}, Ft{"ft-b", "ffn_gate"}, Ft{"ft-c", "attn_q"}}) {
      const std::string path = root + "/" + ft.name + ".gguf";
      auto n = rt::testing::WriteFineTune(
          base, path, [&](const std::string& t) { return t.find(ft.tensor) != std::string::npos; });
      ASSERT_TRUE(n.ok()) << n.status();
      (*diff_)[ft.name] = *n;
      files.emplace_back(ft.name, path);
    }
    const std::string dir = root + "/models_store";
    ASSERT_TRUE(store::Store::Init(dir).ok());
    auto st = store::Store::Open(dir);
    ASSERT_TRUE(st.ok()) << st.status();
    store_ = new std::shared_ptr<store::Store>(std::move(*st));
    bytes_ = new std::map<std::string, uint64_t>();
    for (const auto& [name, path] : files) {
      auto total = rt::testing::IngestGguf(**store_, path, name);
      ASSERT_TRUE(total.ok()) << total.status();
      (*bytes_)[name] = *total;
    }
  }
  static void TearDownTestSuite() {
    delete store_;
    delete bytes_;
    delete diff_;
  }

  static RegistryOptions Options(uint64_t budget) {
    RegistryOptions o;
    o.load.max_context = 64;
    o.budget = budget;
    return o;
  }
  static std::string Greedy(ModelRegistry& reg, const std::string& model) {
    CompletionRequest req{.model = model, .prompt = "Once upon a time"};
    req.params.max_tokens = 8;
    req.params.temperature = 0;
    auto r = Complete(reg, req);
    EXPECT_TRUE(r.ok()) << model << ": " << r.status();
    return r.ok() ? r->text : "";
  }
  static const LoadedModelInfo* Find(const RegistryStats& st, const std::string& ref) {
    for (const auto& m : st.models)
      if (m.ref == ref) return &m;
    return nullptr;
  }
  static uint64_t Bytes(const std::string& m) { return bytes_->at(m); }
  static uint64_t Diff(const std::string& m) { return diff_->at(m); }

  static std::shared_ptr<store::Store>* store_;
  static std::map<std::string, uint64_t>* bytes_;  // tensor bytes of each model
  static std::map<std::string, uint64_t>* diff_;   // bytes of the tensors a fine-tune changed
};
std::shared_ptr<store::Store>* AppModels::store_ = nullptr;
std::map<std::string, uint64_t>* AppModels::bytes_ = nullptr;
std::map<std::string, uint64_t>* AppModels::diff_ = nullptr;

TEST_F(AppModels, FineTunesOfOneBaseShareTheirTensors) {
  ASSERT_GT(Diff("ft-a"), 4 * kMiB);
  ASSERT_LT(Diff("ft-a"), Bytes("base") / 3);
  ModelRegistry reg(*store_, Options(0));
  // A load and unload first, so the heap has grown to what loads use.
  ASSERT_TRUE(reg.Get("other").ok());
  ASSERT_TRUE(reg.Unload("other"));
  const uint64_t rss0 = hart::RssBytes();
  auto base = reg.Get("base");
  ASSERT_TRUE(base.ok()) << base.status();
  const uint64_t rss1 = hart::RssBytes();
  RegistryStats st = reg.Stats();
  EXPECT_EQ(st.resident_bytes, Bytes("base"));
  EXPECT_EQ(st.saved_bytes, 0u);
  EXPECT_EQ((*base)->residency().resident_bytes, Bytes("base"));
  EXPECT_EQ((*base)->residency().shared_bytes, 0u);
  EXPECT_FALSE((*base)->residency().streamed);
  ExpectRssDelta(rss0, rss1, Bytes("base"), "base");

  // Each fine-tune adds only the tensors it changed, in the accounting and in RSS.
  uint64_t expect = Bytes("base"), rss = rss1;
  for (const char* ft : {"ft-a", "ft-b", "ft-c"}) {
    auto m = reg.Get(ft);
    ASSERT_TRUE(m.ok()) << m.status();
    expect += Diff(ft);
    const uint64_t now = hart::RssBytes();
    EXPECT_EQ(reg.Stats().resident_bytes, expect) << ft;
    ExpectRssDelta(rss, now, Diff(ft), ft);
    rss = now;
    EXPECT_EQ((*m)->residency().resident_bytes, Bytes(ft));
    EXPECT_EQ((*m)->residency().shared_bytes, Bytes(ft) - Diff(ft)) << ft;
  }
  st = reg.Stats();
  EXPECT_EQ(st.loads, 5u);
  EXPECT_EQ(st.saved_bytes, 4 * Bytes("base") - expect);
  ExpectRssDelta(rss0, rss, expect, "base + three fine-tunes");
  // The base shares every tensor but those the fine-tunes changed.
  EXPECT_EQ((*base)->residency().shared_bytes, Bytes("base"));

  // An unrelated model shares nothing: it costs all its bytes.
  auto other = reg.Get("other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(reg.Stats().resident_bytes, expect + Bytes("other"));
  EXPECT_EQ((*other)->residency().shared_bytes, 0u);

  // The shared copies compute: each model generates, and a fine-tune whose
  // FFN changed answers differently from the base.
  EXPECT_NE(Greedy(reg, "ft-a"), Greedy(reg, "base"));

  // Unloading a fine-tune frees only its own tensors, in RSS too (its pages
  // of the pack map are dropped).
  const uint64_t before = hart::RssBytes();
  other->reset();
  ASSERT_TRUE(reg.Unload("ft-a"));
  EXPECT_EQ(reg.Stats().resident_bytes, expect - Diff("ft-a") + Bytes("other"));
  ASSERT_TRUE(reg.Unload("other"));
  EXPECT_EQ(reg.Stats().resident_bytes, expect - Diff("ft-a"));
  EXPECT_LT(static_cast<double>(hart::RssBytes()), static_cast<double>(before) - 0.9 * static_cast<double>(Diff("ft-a")));
}

// Ingesting a fine-tune while its base is loaded grows the pack, which the
// store then maps again; the fine-tune's shared tensors still come from the
// base's resident copies, so their pages are not counted a second time.
TEST_F(AppModels, AFineTuneIngestedWhileItsBaseIsLoadedStillShares) {
  ModelRegistry reg(*store_, Options(0));
  ASSERT_TRUE(reg.Get("other").ok());
  ASSERT_TRUE(reg.Unload("other"));
  auto base = reg.Get("base");
  ASSERT_TRUE(base.ok()) << base.status();
  const std::string path = rt::testing::FixtureRoot() + "/ft-d.gguf";
  auto diff = rt::testing::WriteFineTune(rt::testing::FixtureRoot() + "/models_base/model.gguf", path,
                                         [](const std::string& t) { return t.find("ffn_up") != std::string::npos; });
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_TRUE(rt::testing::IngestGguf(**store_, path, "ft-d").ok());
  const uint64_t rss = hart::RssBytes();
  auto ft = reg.Get("ft-d");
  ASSERT_TRUE(ft.ok()) << ft.status();
  EXPECT_EQ(reg.Stats().resident_bytes, Bytes("base") + *diff);
  ExpectRssDelta(rss, hart::RssBytes(), *diff, "ft-d ingested after its base was loaded");
}

TEST_F(AppModels, IdleModelsAreEvictedLeastRecentlyUsed) {
  const uint64_t budget = Bytes("base") + Diff("ft-a") + Diff("ft-b") + kMiB;
  ASSERT_GT(Bytes("other"), kMiB);
  ASSERT_LT(Bytes("other"), Diff("ft-a") + kMiB);
  ModelRegistry reg(*store_, Options(budget));
  for (const char* m : {"base", "ft-a", "ft-b", "base"}) ASSERT_TRUE(reg.Get(m).ok()) << m;
  EXPECT_EQ(reg.Stats().resident_bytes, budget - kMiB);
  EXPECT_EQ(reg.Stats().evictions, 0u);
  // "other" needs more than the free MiB: ft-a, used longest ago, goes (and
  // with it only the tensors it alone held); the base, used since, stays.
  ASSERT_TRUE(reg.Get("other").ok());
  RegistryStats st = reg.Stats();
  EXPECT_EQ(st.evictions, 1u);
  EXPECT_EQ(Find(st, "ft-a@1"), nullptr);
  ASSERT_NE(Find(st, "base@1"), nullptr);
  ASSERT_NE(Find(st, "ft-b@1"), nullptr);
  ASSERT_NE(Find(st, "other@1"), nullptr);
  EXPECT_EQ(Find(st, "other@1")->residency.streamed, false);
  EXPECT_EQ(st.resident_bytes, Bytes("base") + Diff("ft-b") + Bytes("other"));
  EXPECT_LE(st.resident_bytes, budget);
}

TEST_F(AppModels, ModelsInUseStayAndALargerModelStreamsWithTheSameOutput) {
  ModelRegistry unlimited(*store_, Options(0));
  const std::string want = Greedy(unlimited, "other");
  ASSERT_FALSE(want.empty());

  const uint64_t budget = Bytes("base") + 3 * kMiB;
  ASSERT_GT(Bytes("other"), 3 * kMiB);
  ModelRegistry reg(*store_, Options(budget));
  auto base = reg.Get("base");  // held, as a session would: never evicted
  ASSERT_TRUE(base.ok()) << base.status();
  auto other = reg.Get("other");
  ASSERT_TRUE(other.ok()) << other.status();
  RegistryStats st = reg.Stats();
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.streamed_loads, 1u);
  ASSERT_NE(Find(st, "base@1"), nullptr);
  const auto r = (*other)->residency();
  EXPECT_TRUE(r.streamed);
  EXPECT_LE(r.resident_bytes, 3 * kMiB);
  EXPECT_GT(r.resident_bytes, 0u);
  EXPECT_LE(st.resident_bytes, budget);
  EXPECT_EQ(Greedy(reg, "other"), want);
}

TEST_F(AppModels, ABudgetTooSmallForOneLayerIsAnErrorNamingTheModel) {
  ModelRegistry tiny(*store_, Options(64 * 1024));
  auto m = tiny.Get("base");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
  EXPECT_NE(m.status().message().find("model 'base@1'"), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("too small for even one layer"), std::string::npos) << m.status();
  EXPECT_EQ(tiny.Stats().models.size(), 0u);

  // The budget would do, but models in use hold it: try again later (429),
  // and once they are idle they are evicted for it.
  ModelRegistry reg(*store_, Options(Bytes("base") + 512 * 1024));
  auto base = reg.Get("base");
  ASSERT_TRUE(base.ok()) << base.status();
  auto busy = reg.Get("other");
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kResourceExhausted) << busy.status();
  base->reset();
  auto other = reg.Get("other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(reg.Stats().evictions, 1u);
  EXPECT_FALSE((*other)->residency().streamed);
}

}  // namespace
}  // namespace hart::app

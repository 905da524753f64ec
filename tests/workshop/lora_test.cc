// LoRA adapters end to end: a PEFT adapter and the same adapter as a GGUF
// LoRA stored against a tiny base (shape-checked), `hart merge-lora`
// against numpy (B's q rows permuted as the GGUF base's), both import paths
// giving the same merged bytes, and an adapter for another base refused
// with the store unchanged.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/thread_pool.h"
#include "fmt/format.h"
#include "runtime/model.h"
#include "runtime/weight_source.h"
#include "store/store.h"
#include "workshop/lora.h"
#include "tests/cli/cli_runner.h"
#include "tests/workshop/store_suite.h"

namespace hart::workshop {
namespace {

using cli_test::Describe;
using cli_test::RunResult;
using cli_test::TempStore;
namespace fs = std::filesystem;

class Lora : public testing::StoreSuite {
 protected:
  static void SetUpTestSuite() {
    MakeSuiteStore("hart_lora_");
    auto sh = [](const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; };
    sh(fmt::format("/usr/bin/python3 {}/tests/fixtures/make_tiny_llama.py '{}/base' --seed 1 --layers 2 > /dev/null",
                   HART_SOURCE_DIR, *models_));
    sh(fmt::format("/usr/bin/python3 {}/tests/workshop/lora_reference.py make '{}/base/model.gguf' '{}/ad'",
                   HART_SOURCE_DIR, *models_, *models_));
    sh(fmt::format("/usr/bin/python3 {}/tests/workshop/lora_reference.py make '{}/base/model.gguf' '{}/wrong' --wrong",
                   HART_SOURCE_DIR, *models_, *models_));
    sh(fmt::format("/usr/bin/python3 {}/tests/fixtures/make_tiny_llama.py '{}/other' --seed 2 --layers 2 "
                   "--shape tiny-ffn768 > /dev/null",
                   HART_SOURCE_DIR, *models_));
    RunResult r = store_->Run({"ingest", *models_ + "/base/model.gguf", "--model", "base", "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    RunResult o = store_->Run({"ingest", *models_ + "/other/model.gguf", "--model", "other", "--license", "mit"});
    ASSERT_EQ(o.exit_code, 0) << Describe(o);
  }
};

TEST_F(Lora, PeftAndGgufAdaptersMergeLikeNumpy) {
  RunResult p = store_->Run({"--json", "lora", *models_ + "/ad/peft", "--base", "base", "--as", "peft"});
  ASSERT_EQ(p.exit_code, 0) << Describe(p);
  EXPECT_EQ(p.Json()["rank"], 8);
  EXPECT_EQ(p.Json()["pairs"], 6);
  RunResult g = store_->Run({"--json", "lora", *models_ + "/ad/adapter.gguf", "--base", "base", "--as", "gg"});
  ASSERT_EQ(g.exit_code, 0) << Describe(g);
  // The PEFT adapter converted (names mapped, q rows permuted) is the GGUF one.
  RunResult diff = store_->Run({"--json", "diff", "peft@1", "gg@1"});
  ASSERT_EQ(diff.exit_code, 0) << Describe(diff);
  EXPECT_TRUE(diff.Json()["rows"].empty()) << diff.out;
  EXPECT_EQ(diff.Json()["summary"]["changed"], 0) << diff.out;

  RunResult m = store_->Run({"--json", "merge-lora", "base", "peft@1:0.5", "--as", "merged"});
  ASSERT_EQ(m.exit_code, 0) << Describe(m);
  const std::string out = *models_ + "/merged.gguf";
  RunResult e = store_->Run({"export", "merged@1", "-o", out});
  ASSERT_EQ(e.exit_code, 0) << Describe(e);
  const std::string cmd = fmt::format(
      "/usr/bin/python3 {}/tests/workshop/lora_reference.py check '{}/base/model.gguf' '{}' '{}/ad' 0.5",
      HART_SOURCE_DIR, *models_, out, *models_);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  RunResult m2 = store_->Run({"--json", "merge-lora", "base", "gg:0.5", "--as", "merged"});
  ASSERT_EQ(m2.exit_code, 0) << Describe(m2);
  EXPECT_EQ(m2.Json()["new_bytes"], 0) << "the same merge from the GGUF adapter: the same bytes";
  RunResult rb = store_->Run({"--json", "rebuild", "merged@1"});
  ASSERT_EQ(rb.exit_code, 0) << Describe(rb);
  EXPECT_EQ(rb.Json()["identical"], true) << rb.out;
  // The merged version runs.
  RunResult run = store_->Run({"run", "merged@1", "Hello", "-n", "4", "--temp", "0"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
}

TEST_F(Lora, AnAdapterForAnotherBaseIsRefusedBeforeAnyWrite) {
  RunResult before = store_->Run({"--json", "ls"});
  RunResult r = store_->Run({"lora", *models_ + "/wrong/peft", "--base", "base"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("a LoRA for another base"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("blk.0.attn_q.weight"), std::string::npos) << r.err;
  RunResult bad = store_->Run({"merge-lora", "base", "base:2"});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_NE(bad.err.find("not a LoRA adapter"), std::string::npos) << bad.err;
  RunResult after = store_->Run({"--json", "ls"});
  EXPECT_EQ(after.out, before.out);
}

// `hart run BASE --lora A:S` applies the adapter in the forward pass; its
// greedy output is the materialized merge's (`merge-lora BASE A:S`), and
// two --lora flags add up.
TEST_F(Lora, RunWithLoraMatchesTheMergedVersion) {
  RunResult p = store_->Run({"lora", *models_ + "/ad/peft", "--base", "base", "--as", "rtl"});
  ASSERT_EQ(p.exit_code, 0) << Describe(p);
  RunResult m = store_->Run({"merge-lora", "base", "rtl@1:0.75", "--as", "rtmerged"});
  ASSERT_EQ(m.exit_code, 0) << Describe(m);
  auto greedy = [&](std::vector<std::string> args) {
    std::vector<std::string> cmd = {"run"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    for (const char* a : {"Hello world", "-n", "12", "--temp", "0"}) cmd.push_back(a);
    RunResult r = store_->Run(cmd);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return r.out;
  };
  const std::string merged = greedy({"rtmerged@1"});
  const std::string plain = greedy({"base"});
  const std::string lora = greedy({"base", "--lora", "rtl@1:0.75"});
  ASSERT_FALSE(merged.empty());
  EXPECT_EQ(lora, merged);
  EXPECT_NE(lora, plain) << "the adapter must change the output for this test to mean anything";
  EXPECT_EQ(greedy({"base", "--lora", "rtl:0.5", "--lora", "rtl@1:0.25"}), merged);
  // A streamed pass (under a memory budget) applies it the same.
  EXPECT_EQ(greedy({"base", "--lora", "rtl@1:0.75", "--mem-budget", "3M"}), merged);
}

TEST_F(Lora, RunRefusesAnAdapterForAnotherBase) {
  RunResult p = store_->Run({"lora", *models_ + "/ad/peft", "--base", "base", "--as", "rtl2"});
  ASSERT_EQ(p.exit_code, 0) << Describe(p);
  RunResult r = store_->Run({"run", "other", "Hello", "-n", "2", "--temp", "0", "--lora", "rtl2"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("blk.0.ffn_down.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("a LoRA for another base"), std::string::npos) << r.err;
  RunResult bad = store_->Run({"run", "base", "Hello", "-n", "2", "--lora", "rtl2:x"});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_NE(bad.err.find("x is not a number"), std::string::npos) << bad.err;
  RunResult notad = store_->Run({"run", "base", "Hello", "-n", "2", "--lora", "other"});
  EXPECT_EQ(notad.exit_code, 1) << Describe(notad);
  EXPECT_NE(notad.err.find("not a LoRA adapter"), std::string::npos) << notad.err;
}

// `hart run QBASE --lora A:S` on a quantized base (Q8_0, Q4_0). The runtime
// adds coef * B @ (A @ x) in float to the quantized matrix's product, i.e.
// it runs the weights dequant(W) + coef * B @ A. The reference is those
// weights materialized in F32 inside the store: the quantized version
// dequantized exactly (a linear merge of it alone, weight 1, to float32:
// 1 * w / 1 is w), then `merge-lora` of the adapter onto it (checked against
// numpy above). The adapter merged onto the original float base instead
// would mix in the quantization error of W itself, which is not what is
// tested here. What remains between the two is the quantized kernels' 8-bit
// quantization of activations (the F32 run keeps float activations) and
// float summation order, so the check is on logits: every position's within
// runtime/model_test's tolerance for quantized weights against exact ones
// (8e-2 of the largest logit), and several times closer to the reference
// than the same base without the adapter (the adapter is really applied).
// Greedy text is compared only between the runtime's own paths (resident
// and streamed under a budget: the same kernels, the same tokens); between
// the quantized and the F32 run a near-tie may flip a later token.
TEST_F(Lora, RunWithLoraOnQuantizedBasesMatchesTheDequantizedMerge) {
  RunResult p = store_->Run({"lora", *models_ + "/ad/peft", "--base", "base", "--as", "qad"});
  ASSERT_EQ(p.exit_code, 0) << Describe(p);
  auto greedy = [&](std::vector<std::string> args) {
    std::vector<std::string> cmd = {"run"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    for (const char* a : {"Hello world", "-n", "12", "--temp", "0"}) cmd.push_back(a);
    RunResult r = store_->Run(cmd);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return r.out;
  };
  const std::vector<int32_t> tokens = {1, 75, 104, 111, 111, 114, 35, 122, 114, 117, 111, 103};
  // Logits of every position of `tokens` for an exported version.
  auto logits = [&](const std::string& ref, std::vector<runtime::LoraTensor> lora) {
    const std::string path = fmt::format("{}/{}.gguf", *models_, ref);
    RunResult e = store_->Run({"export", ref + "@1", "-o", path});
    EXPECT_EQ(e.exit_code, 0) << Describe(e);
    std::vector<float> out;
    auto src = runtime::OpenFileWeights(path);
    EXPECT_TRUE(src.ok()) << src.status();
    if (!src.ok()) return out;
    ThreadPool pool(2);
    runtime::ModelOptions mo;
    mo.pool = &pool;
    mo.lora = std::move(lora);
    auto model = runtime::Model::Load(src->get(), mo);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return out;
    EXPECT_TRUE((*model)->Forward(tokens, /*all_logits=*/true, &out).ok());
    return out;
  };
  // The worst over positions of max |a - b| / max |b|.
  auto error = [&](const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    const size_t vocab = b.size() / tokens.size();
    for (size_t t = 0; t < tokens.size(); ++t) {
      double err = 0, scale = 1e-6;
      for (size_t i = t * vocab; i < (t + 1) * vocab; ++i) {
        err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
      }
      worst = std::max(worst, err / scale);
    }
    return worst;
  };
  for (const std::string type : {"q8_0", "q4_0"}) {
    SCOPED_TRACE(type);
    const std::string q = "base-" + type, deq = "deq-" + type, ref = "ref-" + type;
    RunResult qr = store_->Run({"--json", "quantize", "base", "--type", type, "--as", q});
    ASSERT_EQ(qr.exit_code, 0) << Describe(qr);
    RunResult shown = store_->Run({"--json", "show", q + "@1"});
    ASSERT_EQ(shown.exit_code, 0) << Describe(shown);
    const std::string upper = type == "q8_0" ? "Q8_0" : "Q4_0";
    for (const auto& t : shown.Json()["tensors"])
      if (t["name"] == "blk.0.attn_q.weight" || t["name"] == "blk.1.ffn_down.weight")
        EXPECT_EQ(t["dtype"], upper) << "the adapted tensors' base must be quantized";
    const std::string recipe = fmt::format("{}/{}.yaml", *models_, deq);
    {
      std::ofstream f(recipe);
      f << fmt::format("merge_method: linear\nmodels:\n  - {{model: {}@1, parameters: {{weight: 1.0}}}}\n"
                       "dtype: float32\n", q);
    }
    RunResult d = store_->Run({"merge", recipe, "--as", deq});
    ASSERT_EQ(d.exit_code, 0) << Describe(d);
    RunResult m = store_->Run({"merge-lora", deq + "@1", "qad@1:0.75", "--as", ref});
    ASSERT_EQ(m.exit_code, 0) << Describe(m);

    auto st = store::Store::Open(store_->dir());
    ASSERT_TRUE(st.ok()) << st.status();
    auto pairs = ReadLoraForRun(**st, q + "@1", "qad@1", 0.75);
    ASSERT_TRUE(pairs.ok()) << pairs.status();
    ASSERT_EQ(pairs->size(), 6u);
    const std::vector<float> want = logits(ref, {});
    const std::vector<float> with = logits(q, *pairs);
    const std::vector<float> without = logits(q, {});
    ASSERT_EQ(with.size(), want.size());
    ASSERT_EQ(without.size(), want.size());
    const double err = error(with, want), plain = error(without, want);
    std::printf("%s: --lora vs dequantized merge %.3g, without the adapter %.3g\n", type.c_str(), err, plain);
    EXPECT_LE(err, 8e-2);
    EXPECT_LE(err * 4, plain) << "the adapter must move the logits well beyond the kernels' error";

    // Through `hart run`: the adapter changes the text, and a streamed pass
    // under a memory budget applies it the same.
    const std::string lora = greedy({q + "@1", "--lora", "qad@1:0.75"});
    ASSERT_FALSE(lora.empty());
    EXPECT_NE(lora, greedy({q + "@1"}));
    EXPECT_EQ(greedy({q + "@1", "--lora", "qad@1:0.75", "--mem-budget", "3M"}), lora);
  }
}

}  // namespace
}  // namespace hart::workshop

// `hart merge` end to end on tiny generated GGUF models in a real store:
// every method against the independent numpy implementation
// (merge_reference.py), DARE determinism, passthrough storing no tensor
// bytes, quantized inputs, the merged version running, and bad recipes
// refused with the field named and the store left exactly as it was.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "core/status.h"
#include "fmt/format.h"
#include "formats/model_source.h"
#include "tests/cli/cli_runner.h"
#include "tests/workshop/store_suite.h"
#include "workshop/merge.h"

namespace hart::workshop {
namespace {

using cli_test::Describe;
using cli_test::RunResult;
using cli_test::TempStore;
namespace fs = std::filesystem;

class Merge : public testing::StoreSuite {
 protected:
  static void SetUpTestSuite() {
    MakeSuiteStore("hart_merge_models_");
    struct M {
      const char* name;
      const char* args;
    } ms[] = {{"a", "--seed 1 --layers 4"},
              {"b", "--seed 2 --layers 4"},
              {"c", "--seed 3 --layers 4"},
              {"h", "--seed 4 --layers 4 --type f16"},
              {"q", "--seed 5 --layers 4 --type q8_0"},
              {"qw", "--seed 6 --layers 4 --arch qwen2"},
              {"tied", "--seed 7 --layers 4 --tied"}};
    for (const M& m : ms) {
      const std::string dir = *models_ + "/" + m.name;
      const std::string cmd = fmt::format(
          "/usr/bin/python3 {}/tests/fixtures/make_tiny_llama.py '{}' {} > /dev/null", HART_SOURCE_DIR,
          dir, m.args);
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      RunResult r = store_->Run({"ingest", dir + "/model.gguf", "--model", m.name, "--license", "mit"});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
    }
    // b with blk.1.attn_q.weight of half the rows.
    const std::string cmd = fmt::format(
        "/usr/bin/python3 {}/tests/workshop/merge_reference.py reshape '{}/b/model.gguf' "
        "'{}/short.gguf' blk.1.attn_q.weight",
        HART_SOURCE_DIR, *models_, *models_);
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    RunResult r = store_->Run({"ingest", *models_ + "/short.gguf", "--model", "short", "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  static std::string Write(const std::string& name, const std::string& yaml) {
    const std::string path = *models_ + "/" + name + ".yaml";
    std::ofstream(path) << yaml;
    return path;
  }
  // Runs `hart merge` (JSON), exports the result and checks it with numpy.
  static nlohmann::json MergeAndCheck(const std::string& name, const std::string& yaml) {
    const std::string recipe = Write(name, yaml);
    RunResult r = store_->Run({"--json", "merge", recipe, "--as", name});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    if (r.exit_code != 0) return nullptr;
    nlohmann::json j = r.Json();
    const std::string out = *models_ + "/" + name + ".out.gguf";
    RunResult e = store_->Run({"export", j["ref"].get<std::string>(), "-o", out});
    EXPECT_EQ(e.exit_code, 0) << Describe(e);
    std::string cmd = fmt::format("/usr/bin/python3 {}/tests/workshop/merge_reference.py check '{}' '{}'",
                                  HART_SOURCE_DIR, recipe, out);
    for (const char* m : {"a", "b", "c", "h", "q"})
      cmd += fmt::format(" {0}='{1}/{0}/model.gguf' {0}@1='{1}/{0}/model.gguf'", m, *models_);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return j;
  }

};

TEST_F(Merge, LinearMatchesNumpy) {
  auto j = MergeAndCheck("lin", R"(
merge_method: linear
models:
  - model: a
    parameters: {weight: 0.6}
  - model: b
    parameters: {weight: 0.3}
  - model: c
    parameters:
      weight: [0.1, 0.5]
dtype: bfloat16
)");
  ASSERT_FALSE(j.is_null());
  EXPECT_EQ(j["method"], "linear");
  EXPECT_EQ(j["tensors_taken"], 0);
}

TEST_F(Merge, SlerpWithFilteredGradientsMatchesNumpy) {
  MergeAndCheck("slerp", R"(
slices:
  - sources:
      - model: a
        layer_range: [0, 4]
      - model: b
        layer_range: [0, 4]
merge_method: slerp
base_model: a
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
)");
}

TEST_F(Merge, TaskArithmeticMatchesNumpy) {
  MergeAndCheck("ta", R"(
merge_method: task_arithmetic
base_model: a
models:
  - model: b
    parameters: {weight: 0.7}
  - model: c
    parameters: {weight: -0.2}
parameters: {lambda: 0.9}
)");
}

TEST_F(Merge, TiesMatchesNumpy) {
  MergeAndCheck("ties", R"(
merge_method: ties
base_model: a
models:
  - model: a
  - model: b
    parameters: {weight: 0.7, density: 0.5}
  - model: c
    parameters: {weight: 0.5, density: 0.3}
dtype: float16
)");
}

TEST_F(Merge, DareLinearMatchesNumpy) {
  MergeAndCheck("darel", R"(
merge_method: dare_linear
base_model: a
models:
  - model: b
    parameters: {weight: 0.6, density: 0.4}
  - model: c
    parameters: {weight: 0.4, density: 0.7}
random_seed: 11
)");
}

TEST_F(Merge, DareTiesMatchesNumpyAndIsDeterministic) {
  const std::string yaml = R"(
merge_method: dare_ties
base_model: a
models:
  - model: b
    parameters: {weight: 0.6, density: 0.5}
  - model: c
    parameters: {weight: 0.4, density: 0.5}
parameters: {normalize: true}
random_seed: 3
)";
  auto first = MergeAndCheck("dare", yaml);
  ASSERT_FALSE(first.is_null());
  RunResult again = store_->Run({"--json", "merge", Write("dare2", yaml), "--as", "dare"});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  nlohmann::json j = again.Json();
  EXPECT_EQ(j["file_digest"], first["file_digest"]);
  EXPECT_EQ(j["new_bytes"], 0) << "the same seed gives the same bytes: every chunk deduplicated";
  // Another seed gives other bytes.
  std::string other = yaml;
  other.replace(other.find("random_seed: 3"), 14, "random_seed: 4");
  RunResult r = store_->Run({"--json", "merge", Write("dare3", other), "--as", "dare"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.Json()["file_digest"], first["file_digest"]);
  // The recorded recipe re-runs to the same file.
  RunResult rb = store_->Run({"--json", "rebuild", first["ref"].get<std::string>()});
  ASSERT_EQ(rb.exit_code, 0) << Describe(rb);
  EXPECT_EQ(rb.Json()["identical"], true) << rb.out;
}

TEST_F(Merge, PassthroughStacksLayersWithoutNewTensorBytes) {
  auto j = MergeAndCheck("stack", R"(
slices:
  - sources:
    - model: a
      layer_range: [0, 3]
  - sources:
    - model: b
      layer_range: [1, 4]
merge_method: passthrough
)");
  ASSERT_FALSE(j.is_null());
  EXPECT_EQ(j["layers"], 6);
  EXPECT_EQ(j["tensors_computed"], 0);
  // Only the GGUF header (metadata, tensor infos) is new: less than one chunk.
  EXPECT_LT(j["new_bytes"].get<uint64_t>(), 1u << 20);
  auto src = formats::OpenModel(*models_ + "/stack.out.gguf");
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->metadata["llama.block_count"], 6);
  RunResult rb = store_->Run({"--json", "rebuild", j["ref"].get<std::string>()});
  ASSERT_EQ(rb.exit_code, 0) << Describe(rb);
  EXPECT_EQ(rb.Json()["identical"], true) << rb.out;
  // The stacked model runs.
  RunResult run = store_->Run({"run", j["ref"].get<std::string>(), "Hello", "-n", "4", "--temp", "0"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
}

TEST_F(Merge, QuantizedInputsAreDequantizedToTheRecipeDtype) {
  MergeAndCheck("quant", R"(
merge_method: linear
models:
  - model: q
    parameters: {weight: 1}
  - model: h
    parameters: {weight: 1}
dtype: float16
)");
  RunResult r = store_->Run({"merge", Write("quant_nodtype", R"(
merge_method: linear
models:
  - model: q
    parameters: {weight: 1}
  - model: a
    parameters: {weight: 1}
)")});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("dtype: required"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Q8_0"), std::string::npos) << r.err;
}

TEST_F(Merge, MergeOfAModelWithItselfRunsLikeIt) {
  auto j = MergeAndCheck("self", R"(
merge_method: linear
models:
  - model: a
    parameters: {weight: 1}
  - model: a@1
    parameters: {weight: 1}
)");
  ASSERT_FALSE(j.is_null());
  RunResult base = store_->Run({"run", "a", "Hello", "-n", "8", "--temp", "0"});
  RunResult merged = store_->Run({"run", j["ref"].get<std::string>(), "Hello", "-n", "8", "--temp", "0"});
  ASSERT_EQ(base.exit_code, 0) << Describe(base);
  ASSERT_EQ(merged.exit_code, 0) << Describe(merged);
  EXPECT_EQ(merged.out, base.out);
}

// What a failed merge must leave unchanged: the catalog's versions and
// chunks, and every pack file's size.
std::string Snapshot(const TempStore& st) {
  std::string s;
  RunResult ls = st.Run({"--json", "ls"});
  s += ls.out;
  RunResult stats = st.Run({"--json", "stats"});
  s += stats.out;
  for (const auto& e : fs::directory_iterator(st.dir() + "/packs"))
    s += fmt::format("{} {}\n", e.path().filename().string(), fs::file_size(e.path()));
  return s;
}

TEST_F(Merge, BadRecipesNameTheFieldAndLeaveTheStoreAsItWas) {
  const std::string before = Snapshot(*store_);
  struct Case {
    const char* name;
    const char* yaml;
    const char* want;
  } cases[] = {
      {"missing_model", "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n"
                        "  - {model: nosuch, parameters: {weight: 1}}\n",
       "models[1].model"},
      {"missing_tensor", "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n"
                         "  - {model: tied, parameters: {weight: 1}}\n",
       "models[1]: tied@1 has no tensor 'output.weight'"},
      {"shape", "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n"
                "  - {model: short, parameters: {weight: 1}}\n",
       "models[1]: tensor 'blk.1.attn_q.weight' of short@1 is [128,256] but 'blk.1.attn_q.weight' of a@1 is [256,256]"},
      {"arch", "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n"
               "  - {model: qw, parameters: {weight: 1}}\n",
       "models[1].model: qw@1 is a 'qwen2' model but a@1 is 'llama'"},
      {"range", "merge_method: passthrough\nslices:\n  - sources:\n"
                "    - {model: a, layer_range: [2, 6]}\n",
       "slices[0].sources[0].layer_range: [2, 6] is out of bounds: a@1 has 4 layers"},
      {"method", "merge_method: model_stock\nmodels: [{model: a}]\n", "merge_method: unknown merge method"},
      {"param", "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1, t: 0.5}}\n",
       "models[0].parameters.t: unknown parameter for merge_method linear"},
      {"weight", "merge_method: ties\nbase_model: a\nmodels:\n  - {model: b, parameters: {density: 0.5}}\n",
       "models[0].parameters.weight: required by ties"},
  };
  for (const Case& c : cases) {
    RunResult r = store_->Run({"merge", Write(c.name, c.yaml)});
    EXPECT_NE(r.exit_code, 0) << c.name << Describe(r);
    EXPECT_NE(r.err.find(c.want), std::string::npos) << c.name << ": " << r.err;
  }
  EXPECT_EQ(Snapshot(*store_), before);
}

TEST_F(Merge, TensorsStreamAcrossBlocks) {
  // In-process, with 4 Ki-element blocks: every tensor of the tiny model
  // spans many blocks, so ties' radix passes, slerp's norms and DARE's
  // element indices cross block boundaries; the numpy check must still hold.
  SetMergeBlockElemsForTesting(4096);
  auto st = store::Store::Open(store_->dir());
  ASSERT_TRUE(st.ok()) << st.status();
  const std::string yaml = R"(
merge_method: dare_ties
base_model: a
models:
  - model: b
    parameters: {weight: 0.6, density: 0.5}
  - model: c
    parameters: {weight: 0.5, density: 0.8}
random_seed: 3
)";
  const std::string recipe = Write("blocks", yaml);
  DeriveOptions o;
  o.model = "blocks";
  auto r = RunMerge(**st, yaml, recipe, o);
  SetMergeBlockElemsForTesting(0);
  ASSERT_TRUE(r.ok()) << r.status();
  // Same bytes as the whole-tensor-block merge of the same recipe.
  auto again = RunMerge(**st, yaml, recipe, o);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(r->derive.file_digest, again->derive.file_digest);
  const std::string out = *models_ + "/blocks.out.gguf";
  RunResult e = store_->Run({"export", r->derive.ref, "-o", out});
  ASSERT_EQ(e.exit_code, 0) << Describe(e);
  std::string cmd = fmt::format("/usr/bin/python3 {}/tests/workshop/merge_reference.py check '{}' '{}'",
                                HART_SOURCE_DIR, recipe, out);
  for (const char* m : {"a", "b", "c"}) cmd += fmt::format(" {}='{}/{}/model.gguf'", m, *models_, m);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST_F(Merge, SameBytesWhateverTheThreadCount) {
  // ties (histograms per part, equal magnitudes budgeted across parts) and
  // dare_ties (seeded drops per element index) on one thread and three,
  // with blocks small enough that every tensor spans several: one file
  // digest per recipe (slerp's per-block sums: merge_parallel_test).
  SetMergeBlockElemsForTesting(4096);
  auto st = store::Store::Open(store_->dir());
  ASSERT_TRUE(st.ok()) << st.status();
  const std::string recipes[] = {R"(
merge_method: ties
base_model: a
models:
  - model: b
    parameters: {weight: 0.7, density: 0.4}
  - model: c
    parameters: {weight: 0.3, density: 0.6}
)", R"(
merge_method: dare_ties
base_model: a
models:
  - model: b
    parameters: {weight: 0.6, density: 0.5}
  - model: c
    parameters: {weight: 0.5, density: 0.8}
random_seed: 9
)"};
  int r_i = 0;
  for (const std::string& yaml : recipes) {
    const std::string recipe = Write(fmt::format("threads{}", r_i++), yaml);
    std::string digest;
    for (size_t threads : {1, 3}) {
      SetMergeThreadsForTesting(threads);
      DeriveOptions o;
      o.model = fmt::format("threads{}", threads);
      auto r = RunMerge(**st, yaml, recipe, o);
      ASSERT_TRUE(r.ok()) << r.status();
      if (digest.empty()) digest = r->derive.file_digest;
      EXPECT_EQ(r->derive.file_digest, digest) << threads << " threads\n" << yaml;
    }
  }
  SetMergeThreadsForTesting(0);
  SetMergeBlockElemsForTesting(0);
}

}  // namespace
}  // namespace hart::workshop

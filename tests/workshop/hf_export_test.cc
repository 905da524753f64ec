// `hart export --format hf` end to end through the real `hart` binary, on
// the tiny random models of tests/fixtures/make_tiny_llama.py, which writes
// the same weights both as a Hugging Face directory (HF names, HF q/k row
// order) and as a GGUF (llama.cpp names, llama/mistral q/k rows permuted):
//  - the F32 export of the GGUF version is the HF directory's tensors, byte
//    for byte (names, un-permutation, biases, q/k norms, tied embeddings,
//    Llama 3 rope scaling) for llama, mistral, qwen2 and qwen3;
//  - a compose that stacks blocks exports with config.json saying so, and
//    re-ingested, generates the same greedy tokens as the composed version
//    itself, and as an independent numpy HF forward pass over the exported
//    files (tests/workshop/hf_reference.py);
//  - a quantized version exports dequantized to BF16 (the decoded block
//    values rounded to nearest even) and runs the same in hart and in the
//    numpy reference;
//  - an architecture without an HF layout and a non-empty -o are refused
//    before anything is written.
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "../cli/cli_runner.h"
#include "../runtime/vocab_vectors.h"
#include "core/decode.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "runtime/weight_source.h"
#include "store/store.h"
#include "workshop/hf_export.h"
#include "workshop/hf_import.h"
#include "workshop/merge_math.h"

namespace hart::cli_test {
namespace {

std::string Fixture(const std::string& root, const std::string& name, const std::string& args) {
  std::string dir = root + "/" + name;
  std::string cmd = fmt::format("/usr/bin/python3 {}/tests/fixtures/make_tiny_llama.py '{}' {}", HART_SOURCE_DIR,
                                dir, args);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return dir;
}

// name -> raw bytes of every tensor of a safetensors file.
std::map<std::string, std::string> SafetensorsTensors(const std::string& path, std::map<std::string, std::string>* dtypes = nullptr) {
  std::string all = ReadAll(path);
  std::map<std::string, std::string> out;
  if (all.size() < 8) {
    ADD_FAILURE() << path << " is too short";
    return out;
  }
  uint64_t n = 0;
  std::memcpy(&n, all.data(), 8);
  nlohmann::json h = nlohmann::json::parse(all.substr(8, n));
  for (auto& [name, t] : h.items()) {
    if (name == "__metadata__") continue;
    uint64_t a = t["data_offsets"][0], b = t["data_offsets"][1];
    out[name] = all.substr(8 + n + a, b - a);
    if (dtypes) (*dtypes)[name] = t["dtype"];
  }
  return out;
}

struct GreedyRun {
  std::vector<int32_t> prompt;
  std::vector<int32_t> generated;
};

GreedyRun Greedy(runtime::WeightSource* src, const std::string& text) {
  using namespace runtime;
  GreedyRun r;
  auto tok = LoadTokenizer(*src);
  EXPECT_TRUE(tok.ok()) << Msg(tok.status());
  if (!tok.ok()) return r;
  r.prompt = (*tok)->Encode(text, (*tok)->add_bos_default(), true);
  ThreadPool pool(2);
  auto model = Model::Load(src, ModelOptions{.max_context = 64, .pool = &pool});
  EXPECT_TRUE(model.ok()) << Msg(model.status());
  if (!model.ok()) return r;
  GenerateOptions go;
  go.n_predict = 10;
  go.stop_at_eog = false;
  SamplerOptions so;
  so.temperature = 0;
  Sampler sampler(so);
  auto st = GenerateFromTokens(**model, tok->get(), r.prompt, go, sampler, [&](int32_t id, std::string_view) {
    if (id >= 0) r.generated.push_back(id);
    return true;
  });
  EXPECT_TRUE(st.ok()) << Msg(st.status());
  return r;
}

// The numpy HF forward pass over an exported directory.
std::vector<int32_t> Reference(const std::string& dir, const GreedyRun& run) {
  std::string cmd = fmt::format("/usr/bin/python3 {}/tests/workshop/hf_reference.py '{}' {}", HART_SOURCE_DIR, dir,
                                run.generated.size());
  for (int32_t t : run.prompt) cmd += fmt::format(" {}", t);
  cmd += " > '" + dir + ".ref.json'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return nlohmann::json::parse(ReadAll(dir + ".ref.json")).get<std::vector<int32_t>>();
}

class HfExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(MakeTempDir("hart_hf_export_"));
    for (const char* arch : {"llama", "mistral", "qwen2", "qwen3"})
      Fixture(*root_, arch, fmt::format("--arch {} --format hf --type f32 --layers 2 --also-gguf", arch));
    Fixture(*root_, "tied", "--arch llama --tied --format hf --type f32 --layers 2 --also-gguf");
    Fixture(*root_, "llamab", "--arch llama --seed 99 --format hf --type f32 --layers 2 --also-gguf");
    // Llama 3 rope scaling: the GGUF holds it as rope_freqs.weight only.
    Fixture(*root_, "llama3", "--arch llama --rope-scaling llama3 --format hf --type f32 --layers 2 --also-gguf");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*root_, ec);
    delete root_;
  }
  void SetUp() override { ASSERT_TRUE(store_.Init()); }
  static std::string Hf(const std::string& arch) { return *root_ + "/" + arch; }
  void Ingest(const std::string& path, const std::string& model) {
    RunResult r = store_.Run({"ingest", path, "--model", model, "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  RunResult ExportHf(const std::string& ref, const std::string& out, const std::string& dtype) {
    return store_.Run({"--json", "export", ref, "--format", "hf", "--dtype", dtype, "-o", out});
  }
  // Greedy tokens of a stored version, through the runtime.
  GreedyRun StoredGreedy(const std::string& ref) {
    auto st = store::Store::Open(store_.dir());
    EXPECT_TRUE(st.ok()) << Msg(st.status());
    if (!st.ok()) return {};
    std::shared_ptr<store::Store> shared(std::move(*st));
    auto w = runtime::OpenStoreWeights(shared, ref);
    EXPECT_TRUE(w.ok()) << Msg(w.status());
    if (!w.ok()) return {};
    return Greedy(w->get(), "Hello world");
  }
  // The test supplies the tokenizer: the fixture's tokenizer.json tokenizes
  // as the GGUF vocabulary does (the export writes none for an SPM vocab).
  void AddTokenizer(const std::string& dir) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(Hf("llama") + "/" + f, dir + "/" + f);
  }
  TempStore store_;
  static std::string* root_;
};
std::string* HfExport::root_ = nullptr;

TEST_F(HfExport, F32ExportIsTheHuggingFaceCheckpointByteForByte) {
  for (const char* arch : {"llama", "mistral", "qwen2", "qwen3", "llama3", "tied"}) {
    SCOPED_TRACE(arch);
    Ingest(Hf(arch) + "/gguf/model.gguf", arch);
    const std::string out = store_.root() + "/" + arch + "-hf";
    RunResult r = ExportHf(std::string(arch) + "@1", out, "f32");
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    nlohmann::json j = r.Json();
    EXPECT_EQ(j["format"], "hf");
    EXPECT_TRUE(j["tokenizer_from"].is_null());
    EXPECT_NE(j["tokenizer_note"].get<std::string>().find("no tokenizer written"), std::string::npos);
    auto want = SafetensorsTensors(Hf(arch) + "/model.safetensors");
    auto got = SafetensorsTensors(out + "/model.safetensors");
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [name, bytes] : want) {
      ASSERT_EQ(got.count(name), 1u) << name;
      EXPECT_TRUE(got[name] == bytes) << name;
    }
    if (std::string(arch) == "qwen2") {
      EXPECT_EQ(got.count("model.layers.1.self_attn.k_proj.bias"), 1u);
    }
    if (std::string(arch) == "qwen3") {
      EXPECT_EQ(got.count("model.layers.1.self_attn.k_norm.weight"), 1u);
    }
    if (std::string(arch) == "tied") {
      EXPECT_EQ(got.count("lm_head.weight"), 0u);
    }
    // config.json: every field the fixture's own config.json has, equal.
    nlohmann::json cfg = nlohmann::json::parse(ReadAll(out + "/config.json"));
    nlohmann::json orig = nlohmann::json::parse(ReadAll(Hf(arch) + "/config.json"));
    for (auto& [k, v] : orig.items()) {
      if (k == "rms_norm_eps" || k == "rope_theta") {
        EXPECT_FLOAT_EQ(cfg[k].get<double>(), v.get<double>()) << k;
      } else if (k == "rope_scaling") {
        ASSERT_TRUE(cfg[k].is_object()) << cfg.dump();
        for (auto& [sk, sv] : v.items()) {
          if (sv.is_number()) EXPECT_NEAR(cfg[k][sk].get<double>(), sv.get<double>(), 1e-5) << sk;
          else EXPECT_EQ(cfg[k][sk], sv) << sk;
        }
      } else {
        EXPECT_EQ(cfg[k], v) << k;
      }
    }
    EXPECT_EQ(cfg["bos_token_id"], 1);
    EXPECT_EQ(cfg["eos_token_id"], 2);
    nlohmann::json gen = nlohmann::json::parse(ReadAll(out + "/generation_config.json"));
    EXPECT_EQ(gen["eos_token_id"], 2);
    if (std::string(arch) == "llama3") {
      EXPECT_EQ(j["dropped"][0], "rope_freqs.weight");
      // The runtime reads that config.json as it read rope_freqs.weight.
      AddTokenizer(out);
      Ingest(out, "llama3-back");
      EXPECT_EQ(StoredGreedy("llama3-back@1").generated, StoredGreedy("llama3@1").generated);
    }
  }
}

TEST_F(HfExport, ComposedVersionExportsRunsTheSameAndMatchesTheReference) {
  Ingest(Hf("llama") + "/gguf/model.gguf", "tiny");
  // Four blocks from two: config.json must say four.
  RunResult c = store_.Run({"compose",
                            R"({"base": "tiny", "parts": [{"from": "tiny", "blocks": [0, 1]},)"
                            R"( {"from": "tiny@1", "blocks": [0, 1]}]})",
                            "--as", "stacked"});
  ASSERT_EQ(c.exit_code, 0) << Describe(c);
  const std::string out = store_.root() + "/stacked-hf";
  RunResult plain = store_.Run({"export", "stacked", "--format", "hf", "--dtype", "f32", "-o", out});
  ASSERT_EQ(plain.exit_code, 0) << Describe(plain);
  EXPECT_NE(plain.out.find("as a Hugging Face model"), std::string::npos) << plain.out;
  EXPECT_NE(plain.out.find("no tokenizer written"), std::string::npos) << plain.out;

  nlohmann::json cfg = nlohmann::json::parse(ReadAll(out + "/config.json"));
  RunResult show = store_.Run({"--json", "show", "stacked@1"});
  ASSERT_EQ(show.exit_code, 0) << Describe(show);
  nlohmann::json md = show.Json()["version"]["metadata"];
  EXPECT_EQ(md["llama.block_count"], 4);
  EXPECT_EQ(cfg["num_hidden_layers"], 4);
  EXPECT_EQ(cfg["hidden_size"], md["llama.embedding_length"]);
  EXPECT_EQ(cfg["intermediate_size"], md["llama.feed_forward_length"]);
  EXPECT_EQ(cfg["num_attention_heads"], md["llama.attention.head_count"]);
  EXPECT_EQ(cfg["num_key_value_heads"], md["llama.attention.head_count_kv"]);
  EXPECT_EQ(cfg["max_position_embeddings"], md["llama.context_length"]);
  EXPECT_FLOAT_EQ(cfg["rope_theta"].get<double>(), md["llama.rope.freq_base"].get<double>());
  EXPECT_FLOAT_EQ(cfg["rms_norm_eps"].get<double>(), md["llama.attention.layer_norm_rms_epsilon"].get<double>());
  EXPECT_EQ(cfg["head_dim"], 64);
  EXPECT_EQ(cfg["vocab_size"], 259);
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["tie_word_embeddings"], false);
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_TRUE(cfg["rope_scaling"].is_null());
  std::map<std::string, std::string> dtypes;
  auto tensors = SafetensorsTensors(out + "/model.safetensors", &dtypes);
  EXPECT_EQ(tensors.count("model.layers.3.mlp.down_proj.weight"), 1u);
  EXPECT_EQ(tensors.count("model.layers.4.mlp.down_proj.weight"), 0u);
  EXPECT_EQ(dtypes["model.layers.3.self_attn.q_proj.weight"], "F32");
  // Block 2 is block 0 again.
  EXPECT_TRUE(tensors["model.layers.2.self_attn.q_proj.weight"] == tensors["model.layers.0.self_attn.q_proj.weight"]);

  // Re-ingested (tokenizer supplied), it generates what the composed version does.
  AddTokenizer(out);
  Ingest(out, "back");
  const GreedyRun want = StoredGreedy("stacked@1");
  ASSERT_EQ(want.generated.size(), 10u);
  const GreedyRun got = StoredGreedy("back@1");
  EXPECT_EQ(got.prompt, want.prompt);
  EXPECT_EQ(got.generated, want.generated);
  EXPECT_EQ(Reference(out, want), want.generated);
  RunResult run = store_.Run({"run", "back", "Hello world", "-n", "6", "--temp", "0"});
  RunResult run0 = store_.Run({"run", "stacked", "Hello world", "-n", "6", "--temp", "0"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_EQ(run.out, run0.out);
}

TEST_F(HfExport, QuantizedVersionExportsDequantizedToBf16) {
  Ingest(Hf("llama") + "/gguf/model.gguf", "tiny");
  ASSERT_EQ(store_.Run({"quantize", "tiny", "--type", "q8_0", "--as", "tq"}).exit_code, 0);
  const std::string out = store_.root() + "/tq-hf";
  RunResult r = ExportHf("tq", out, "bf16");  // bf16 is the default; said explicitly here
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json cfg = nlohmann::json::parse(ReadAll(out + "/config.json"));
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  std::map<std::string, std::string> dtypes;
  auto tensors = SafetensorsTensors(out + "/model.safetensors", &dtypes);
  EXPECT_EQ(dtypes["model.layers.0.self_attn.v_proj.weight"], "BF16");
  EXPECT_EQ(dtypes["model.norm.weight"], "BF16");
  // v_proj (not permuted): the Q8_0 blocks decoded, each rounded to BF16.
  std::string gguf = store_.root() + "/tq.gguf";
  ASSERT_EQ(store_.Run({"export", "tq", "-o", gguf}).exit_code, 0);
  auto src = formats::ReadGguf(gguf);
  ASSERT_TRUE(src.ok()) << src.status();
  for (size_t i = 0; i < src->tensors.size(); ++i) {
    if (src->tensors[i].name != "blk.0.attn_v.weight") continue;
    ASSERT_EQ(src->tensors[i].dtype, DType::kQ8_0);
    auto b = src->TensorBytes(i);
    std::vector<float> f(*NumElements(src->tensors[i].shape));
    ASSERT_TRUE(DecodeToF32(DType::kQ8_0, b, f).ok());
    std::string want(f.size() * 2, '\0');
    for (size_t e = 0; e < f.size(); ++e) {
      uint16_t h = workshop::F32ToBF16(f[e]);
      std::memcpy(&want[2 * e], &h, 2);
    }
    EXPECT_TRUE(tensors["model.layers.0.self_attn.v_proj.weight"] == want);
  }
  // The BF16 weights, re-ingested, run in hart as in the numpy reference.
  AddTokenizer(out);
  Ingest(out, "tqb");
  const GreedyRun got = StoredGreedy("tqb@1");
  ASSERT_EQ(got.generated.size(), 10u);
  EXPECT_EQ(Reference(out, got), got.generated);
}

// A GGUF ingested with --parent naming the HF checkpoint it was converted
// from: its exports, and those of versions derived from it, carry that
// checkpoint's tokenizer files, and run as they are.
TEST_F(HfExport, TokenizerIsCopiedFromTheLineage) {
  Ingest(Hf("llama"), "orig");  // the HF directory, with tokenizer.json
  RunResult in = store_.Run({"ingest", Hf("llama") + "/gguf/model.gguf", "--model", "conv", "--license", "mit",
                             "--parent", "orig@1"});
  ASSERT_EQ(in.exit_code, 0) << Describe(in);
  ASSERT_EQ(store_.Run({"quantize", "conv", "--type", "q8_0", "--as", "cq"}).exit_code, 0);
  const std::string out = store_.root() + "/cq-hf";
  RunResult r = ExportHf("cq", out, "bf16");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  EXPECT_EQ(j["tokenizer_from"], "orig@1");
  EXPECT_TRUE(j["tokenizer_note"].is_null());
  EXPECT_EQ(ReadAll(out + "/tokenizer.json"), ReadAll(Hf("llama") + "/tokenizer.json"));
  EXPECT_EQ(ReadAll(out + "/tokenizer_config.json"), ReadAll(Hf("llama") + "/tokenizer_config.json"));
  Ingest(out, "cq-back");  // no tokenizer added by the test
  const GreedyRun got = StoredGreedy("cq-back@1");
  ASSERT_EQ(got.generated.size(), 10u);
  EXPECT_EQ(got.prompt, StoredGreedy("cq@1").prompt);
  EXPECT_EQ(Reference(out, got), got.generated);

  // A tokenizer.json with ids past the embedding is passed over, and said so.
  const std::string big = store_.root() + "/bigtok";
  fs::create_directories(big);
  for (const char* f : {"model.safetensors", "config.json", "tokenizer_config.json"})
    fs::copy_file(Hf("llama") + "/" + f, big + "/" + f);
  nlohmann::json tok = nlohmann::json::parse(ReadAll(Hf("llama") + "/tokenizer.json"));
  tok["added_tokens"].push_back({{"id", 5000}, {"content", "<extra>"}, {"special", true}});
  { std::ofstream(big + "/tokenizer.json") << tok.dump(); }
  Ingest(big, "bigtok");
  ASSERT_EQ(store_.Run({"ingest", Hf("llama") + "/gguf/model.gguf", "--model", "conv2", "--license", "mit",
                        "--parent", "bigtok@1"}).exit_code, 0);
  r = ExportHf("conv2", store_.root() + "/conv2-hf", "bf16");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  j = r.Json();
  EXPECT_TRUE(j["tokenizer_from"].is_null());
  EXPECT_NE(j["tokenizer_note"].get<std::string>().find("bigtok@1's tokenizer.json names token id 5000, past the "
                                                         "259 rows"),
            std::string::npos)
      << j["tokenizer_note"];
  EXPECT_FALSE(fs::exists(store_.root() + "/conv2-hf/tokenizer.json"));
}

TEST_F(HfExport, BadInputIsRefusedBeforeAnythingIsWritten) {
  const std::string gemma = Fixture(store_.root(), "gemma", "--arch gemma2 --type f32 --layers 1");
  Ingest(gemma + "/model.gguf", "gem");
  const std::string out = store_.root() + "/gem-hf";
  RunResult r = ExportHf("gem", out, "bf16");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("architecture 'gemma2'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));

  Ingest(Hf("llama") + "/gguf/model.gguf", "tiny");
  const std::string full = store_.root() + "/full";
  fs::create_directories(full);
  { std::ofstream(full + "/keep.txt") << "mine"; }
  r = ExportHf("tiny", full, "bf16");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("exists and is not empty"), std::string::npos) << r.err;
  EXPECT_EQ(ReadAll(full + "/keep.txt"), "mine");
  EXPECT_FALSE(fs::exists(full + "/model.safetensors"));

  r = store_.Run({"export", "tiny", "--format", "hf", "--dtype", "q8_0", "-o", store_.root() + "/x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("q8_0"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(store_.root() + "/x"));
  r = store_.Run({"export", "tiny", "--format", "hf", "--verify", "-o", store_.root() + "/v"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--verify"), std::string::npos) << r.err;
  Ingest(Hf("llama"), "already-hf");
  r = ExportHf("already-hf", store_.root() + "/h", "bf16");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already-hf@1 as a Hugging Face model: it is a safetensors version"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(store_.root() + "/v"));
  EXPECT_FALSE(fs::exists(store_.root() + "/h"));
  // An empty directory is fine.
  const std::string empty = store_.root() + "/empty";
  fs::create_directories(empty);
  r = ExportHf("tiny", empty, "f16");
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  std::map<std::string, std::string> dtypes;
  SafetensorsTensors(empty + "/model.safetensors", &dtypes);
  EXPECT_EQ(dtypes["lm_head.weight"], "F16");
}

}  // namespace
}  // namespace hart::cli_test

namespace hart::cli_test {
namespace {

// The tokenizer.json written from a byte-level BPE GGUF vocabulary tokenizes
// every test string of llama.cpp's vocabulary vectors into the expected ids,
// as the GGUF vocabulary itself does; a SentencePiece vocabulary is refused
// with the reason.
TEST(HfExportTokenizer, ByteLevelBpeVocabulariesRoundTripThroughTokenizerJson) {
  using runtime::testing::VocabDir;
  const std::string dir = VocabDir();
  int checked = 0;
  for (const char* name : {"gpt-2", "deepseek-llm", "deepseek-coder", "falcon", "mpt", "refact", "starcoder"}) {
    SCOPED_TRACE(name);
    const std::string path = fmt::format("{}/ggml-vocab-{}.gguf", dir, name);
    auto md = formats::ReadGgufMetadata(path);
    ASSERT_TRUE(md.ok()) << md.status();
    auto files = workshop::TokenizerFilesFromGguf(*md, 2048);
    ASSERT_TRUE(files.ok()) << files.status();
    auto hf = runtime::Tokenizer::FromHfJson(files->tokenizer_json, files->tokenizer_config_json, "", name);
    ASSERT_TRUE(hf.ok()) << hf.status();
    auto gguf = runtime::Tokenizer::FromGguf(*md, name);
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    EXPECT_EQ((*hf)->bos_id(), (*gguf)->bos_id());
    EXPECT_EQ((*hf)->eos_id(), (*gguf)->eos_id());
    EXPECT_EQ((*hf)->add_bos_default(), (*gguf)->add_bos_default());
    for (const auto& c : runtime::testing::ReadVectors(name)) {
      EXPECT_EQ((*hf)->Encode(c.text, false), c.ids) << runtime::testing::Escaped(c.text);
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
  // And back: that tokenizer.json as GGUF metadata (hart convert's path)
  // tokenizes the vectors as the original vocabulary does.
  for (const char* name : {"gpt-2", "deepseek-llm", "starcoder"}) {
    SCOPED_TRACE(name);
    auto md = formats::ReadGgufMetadata(fmt::format("{}/ggml-vocab-{}.gguf", dir, name));
    ASSERT_TRUE(md.ok()) << md.status();
    auto files = workshop::TokenizerFilesFromGguf(*md, 2048);
    ASSERT_TRUE(files.ok()) << files.status();
    formats::GgufMetadata back;
    ASSERT_TRUE(workshop::TokenizerGgufMetadata(files->tokenizer_json, files->tokenizer_config_json, name, &back).ok());
    EXPECT_EQ(back.GetString("tokenizer.ggml.pre"), md->GetString("tokenizer.ggml.pre").value_or("default"));
    auto tok = runtime::Tokenizer::FromGguf(back, name);
    ASSERT_TRUE(tok.ok()) << tok.status();
    auto orig = runtime::Tokenizer::FromGguf(*md, name);
    ASSERT_TRUE(orig.ok()) << orig.status();
    EXPECT_EQ((*tok)->bos_id(), (*orig)->bos_id());
    EXPECT_EQ((*tok)->add_bos_default(), (*orig)->add_bos_default());
    for (const auto& c : runtime::testing::ReadVectors(name))
      EXPECT_EQ((*tok)->Encode(c.text, false), c.ids) << runtime::testing::Escaped(c.text);
  }
  auto spm = formats::ReadGgufMetadata(dir + "/ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(spm.ok());
  auto refused = workshop::TokenizerFilesFromGguf(*spm, 2048);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("'llama'"), std::string::npos) << refused.status();
}

}  // namespace
}  // namespace hart::cli_test

namespace hart::cli_test {
namespace {

// GGUF name -> bytes of every tensor of a GGUF file.
std::map<std::string, std::string> GgufTensors(const std::string& path) {
  std::map<std::string, std::string> out;
  auto src = formats::ReadGguf(path);
  EXPECT_TRUE(src.ok()) << src.status();
  if (!src.ok()) return out;
  for (size_t i = 0; i < src->tensors.size(); ++i) {
    auto b = src->TensorBytes(i);
    out[src->tensors[i].name] = std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

// HF checkpoints as workshop inputs: `hart convert` gives the GGUF layout of
// a checkpoint ingested from its HF directory. make_tiny_llama.py writes the
// same weights both ways, so the converted tensors must be the fixture's
// GGUF tensors byte for byte (llama.cpp's q/k permutation included), the
// tokenizer must tokenize as the fixture's GGUF vocabulary, and merges and
// composes of converted versions equal those of the GGUF originals.
class HfConvert : public HfExport {};

TEST_F(HfConvert, ConvertedCheckpointIsTheGgufAndMergesAsIt) {
  for (const char* arch : {"llama", "qwen2", "llama3", "llamab"}) {
    SCOPED_TRACE(arch);
    Ingest(Hf(arch), std::string(arch) + "-hf");
    // (quantize, merge and compose also convert an HF input themselves: hf_inputs_test.cc)
    RunResult c = store_.Run({"--json", "convert", std::string(arch) + "-hf", "--as", std::string(arch) + "-conv"});
    ASSERT_EQ(c.exit_code, 0) << Describe(c);
    nlohmann::json j = c.Json();
    // Only the permuted q/k (llama) and rope_freqs (llama3) are new tensor bytes.
    const std::string conv = store_.root() + "/" + arch + "-conv.gguf";
    ASSERT_EQ(store_.Run({"export", std::string(arch) + "-conv", "-o", conv}).exit_code, 0);
    auto got = GgufTensors(conv);
    auto want = GgufTensors(Hf(arch) + "/gguf/model.gguf");
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [name, bytes] : want) {
      ASSERT_EQ(got.count(name), 1u) << name;
      EXPECT_TRUE(got[name] == bytes) << name;
    }
    EXPECT_EQ(j["computed_tensors"], std::string(arch) == "qwen2" ? 0 : std::string(arch) == "llama3" ? 5 : 4);
    // It runs as the fixture's GGUF does, tokenizer included.
    auto file = runtime::OpenFileWeights(Hf(arch) + "/gguf/model.gguf");
    ASSERT_TRUE(file.ok()) << Msg(file.status());
    const GreedyRun want_run = Greedy(file->get(), "Hello world");
    const GreedyRun got_run = StoredGreedy(std::string(arch) + "-conv@1");
    EXPECT_EQ(got_run.prompt, want_run.prompt);
    EXPECT_EQ(got_run.generated, want_run.generated);
    // Its HF export finds the checkpoint's tokenizer through the lineage.
    const std::string back = store_.root() + "/" + arch + "-back";
    RunResult e = ExportHf(std::string(arch) + "-conv", back, "f32");
    ASSERT_EQ(e.exit_code, 0) << Describe(e);
    EXPECT_EQ(e.Json()["tokenizer_from"], std::string(arch) + "-hf@1");
    EXPECT_EQ(ReadAll(back + "/tokenizer.json"), ReadAll(Hf(arch) + "/tokenizer.json"));
    RunResult rb = store_.Run({"--json", "rebuild", std::string(arch) + "-conv@1"});
    ASSERT_EQ(rb.exit_code, 0) << Describe(rb);
    EXPECT_TRUE(rb.Json()["identical"].get<bool>());
  }
  // A linear merge and a compose of converted checkpoints are those of the GGUFs.
  Ingest(Hf("llama") + "/gguf/model.gguf", "g");
  const std::string yaml_conv = store_.root() + "/conv.yaml", yaml_g = store_.root() + "/g.yaml";
  auto recipe = [](const std::string& a, const std::string& b) {
    return fmt::format("merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 0.7}}\n"
                       "  - model: {}\n    parameters: {{weight: 0.3}}\ndtype: float32\n",
                       a, b);
  };
  { std::ofstream(yaml_conv) << recipe("llama-conv", "llamab-conv"); }
  Ingest(Hf("llamab") + "/gguf/model.gguf", "gb");
  { std::ofstream(yaml_g) << recipe("g", "gb"); }
  RunResult m1 = store_.Run({"merge", yaml_conv, "--as", "m-conv"});
  ASSERT_EQ(m1.exit_code, 0) << Describe(m1);
  RunResult m2 = store_.Run({"merge", yaml_g, "--as", "m-g"});
  ASSERT_EQ(m2.exit_code, 0) << Describe(m2);
  const std::string e1 = store_.root() + "/m-conv.gguf", e2 = store_.root() + "/m-g.gguf";
  ASSERT_EQ(store_.Run({"export", "m-conv", "-o", e1}).exit_code, 0);
  ASSERT_EQ(store_.Run({"export", "m-g", "-o", e2}).exit_code, 0);
  auto t1 = GgufTensors(e1), t2 = GgufTensors(e2);
  ASSERT_EQ(t1.size(), t2.size());
  for (const auto& [name, bytes] : t2) EXPECT_TRUE(t1[name] == bytes) << name;
  RunResult cc = store_.Run({"compose", "--base", "llama-conv", "--blocks", "qwen2-conv:0-1"});
  EXPECT_NE(cc.exit_code, 0);  // another architecture: refused as for GGUF inputs
}

TEST_F(HfConvert, WhatCannotBeConvertedIsRefusedBeforeAnythingIsStored) {
  const std::string gemma = Fixture(store_.root(), "gemma-hf", "--arch gemma2 --format hf --type f32 --layers 1");
  const std::string notok = store_.root() + "/notok";
  fs::create_directories(notok);
  for (const char* f : {"model.safetensors", "config.json"}) fs::copy_file(Hf("llama") + "/" + f, notok + "/" + f);
  Ingest(gemma, "gem");
  Ingest(notok, "notok");
  Ingest(Hf("llama") + "/gguf/model.gguf", "g");
  auto versions = [&] { return store_.Run({"sql", "--format", "csv", "SELECT count(*) FROM versions"}).out; };
  const std::string before = versions();
  EXPECT_EQ(before, "count(*)\n3\n");
  auto refused = [&](const std::string& ref, const std::string& needle) {
    RunResult r = store_.Run({"convert", ref});
    EXPECT_NE(r.exit_code, 0) << Describe(r);
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in\n" << r.err;
  };
  refused("gem", "model_type 'gemma2' does not convert here");
  // More tokens than embedding rows.
  const std::string big = store_.root() + "/bigvocab";
  fs::create_directories(big);
  for (const char* f : {"model.safetensors", "config.json", "tokenizer_config.json"})
    fs::copy_file(Hf("llama") + "/" + f, big + "/" + f);
  nlohmann::json tok = nlohmann::json::parse(ReadAll(Hf("llama") + "/tokenizer.json"));
  tok["model"]["vocab"]["extra"] = 300;
  { std::ofstream(big + "/tokenizer.json") << tok.dump(); }
  Ingest(big, "bigvocab");
  const std::string before2 = versions();
  RunResult bv = store_.Run({"convert", "bigvocab"});
  EXPECT_NE(bv.exit_code, 0);
  EXPECT_NE(bv.err.find("tokenizer.json has 301 tokens, more than the 259 rows"), std::string::npos) << bv.err;
  EXPECT_EQ(versions(), before2);
  refused("notok", "notok@1 has no tokenizer.json");
  refused("g", "g@1 is already a GGUF version");
  refused("nosuch", "nosuch");
  EXPECT_EQ(versions(), before2);
}

}  // namespace
}  // namespace hart::cli_test

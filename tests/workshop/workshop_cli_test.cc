// The workshop end to end through the real `hart` binary on a tiny random
// llama (tests/fixtures/make_tiny_llama.py, F32): quantize, compose and
// rebuild; lineage in show, similar and SQL; exported GGUFs; the quantized
// version runs and its greedy output equals the runtime's on the same
// weights dequantized to F32; bad input refused before anything is stored.
#include <cstdlib>
#include <cstring>

#include "../cli/cli_runner.h"
#include "core/decode.h"
#include "fmt/format.h"
#include "formats/gguf.h"

namespace hart::cli_test {
namespace {

class Workshop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("hart_workshop_"));
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_tiny_llama.py '" + *dir_ +
                      "' --type f32 --layers 2";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(store_.Init());
    RunResult r = store_.Run({"ingest", Gguf(), "--model", "tiny", "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  static std::string Gguf() { return *dir_ + "/model.gguf"; }
  // Versions in the store, by ref.
  std::vector<std::string> Refs() const {
    RunResult r = store_.Run({"sql", "--format", "csv", "SELECT ref FROM versions ORDER BY id"});
    std::vector<std::string> out;
    size_t pos = r.out.find('\n');  // header
    while (pos != std::string::npos && pos + 1 < r.out.size()) {
      size_t end = r.out.find('\n', pos + 1);
      out.push_back(r.out.substr(pos + 1, end - pos - 1));
      pos = end;
    }
    return out;
  }
  nlohmann::json Show(const std::string& ref) const {
    RunResult r = store_.Run({"--json", "show", ref});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return r.Json();
  }
  std::string Export(const std::string& ref) const {
    std::string out = store_.root() + "/" + ref + ".gguf";
    RunResult r = store_.Run({"export", ref, "-o", out});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return out;
  }
  // The tensor's bytes in a GGUF file.
  static std::vector<uint8_t> TensorOf(const std::string& path, const std::string& name) {
    auto src = formats::ReadGguf(path);
    EXPECT_TRUE(src.ok()) << src.status();
    if (!src.ok()) return {};
    for (size_t i = 0; i < src->tensors.size(); ++i)
      if (src->tensors[i].name == name) {
        auto b = src->TensorBytes(i);
        return {b.begin(), b.end()};
      }
    ADD_FAILURE() << "no tensor " << name << " in " << path;
    return {};
  }
  // The numpy reference's quantization of an F32 tensor of the original.
  std::vector<uint8_t> Reference(const std::string& type, const std::string& name, int row) const {
    std::vector<uint8_t> f32 = TensorOf(Gguf(), name);
    std::string in = store_.root() + "/ref.f32", out = store_.root() + "/ref.bin";
    FILE* f = std::fopen(in.c_str(), "wb");
    std::fwrite(f32.data(), 1, f32.size(), f);
    std::fclose(f);
    std::string cmd = fmt::format("/usr/bin/python3 -W ignore {}/tests/workshop/quant_reference.py {} '{}' {} '{}'",
                                  HART_SOURCE_DIR, type, in, row, out);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::string s = ReadAll(out);
    return {s.begin(), s.end()};
  }
  static std::map<std::string, std::string> Dtypes(const nlohmann::json& show) {
    std::map<std::string, std::string> out;
    for (const auto& t : show["tensors"]) out[t["name"]] = t["dtype"];
    return out;
  }
  TempStore store_;
  static std::string* dir_;
};
std::string* Workshop::dir_ = nullptr;

TEST_F(Workshop, QuantizeQ8_0RecordsLineageAndEqualsTheReference) {
  RunResult r = store_.Run({"--json", "quantize", "tiny", "--type", "q8_0", "--as", "tq"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  EXPECT_EQ(j["version"], "tq@1");
  EXPECT_GT(j["computed_tensors"].get<int>(), 0);
  EXPECT_GT(j["taken_tensors"].get<int>(), 0);  // norms stay as they were
  EXPECT_GT(j["peak_rss_bytes"].get<uint64_t>(), 0u);

  nlohmann::json show = Show("tq@1");
  EXPECT_EQ(show["version"]["parent"], "tiny@1");
  ASSERT_TRUE(show["derivation"].is_object()) << show.dump();
  EXPECT_EQ(show["derivation"]["method"], "quantize");
  EXPECT_EQ(show["derivation"]["parameters"]["type"], "q8_0");
  EXPECT_EQ(show["derivation"]["inputs"][0]["ref"], "tiny@1");
  auto dt = Dtypes(show);
  EXPECT_EQ(dt["blk.0.attn_q.weight"], "Q8_0");
  EXPECT_EQ(dt["token_embd.weight"], "Q8_0");
  EXPECT_EQ(dt["blk.0.attn_norm.weight"], "F32");
  EXPECT_EQ(Show("tiny@1")["derived"][0], "tq@1");

  // The exported GGUF parses, says Q8_0 (llama_ftype 7), and its bytes are
  // the numpy reference's.
  std::string path = Export("tq@1");
  auto meta = formats::ReadGgufMetadata(path);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->GetInt("general.file_type"), 7);
  EXPECT_EQ(meta->GetInt("general.quantization_version"), 2);
  for (const char* name : {"blk.1.ffn_down.weight", "token_embd.weight"}) {
    int row = std::string(name).find("ffn_down") != std::string::npos ? 512 : 256;
    EXPECT_TRUE(TensorOf(path, name) == Reference("q8_0", name, row)) << name;
  }

  // Lineage is queryable in SQL.
  RunResult q = store_.Run({"sql", "--format", "csv", "SELECT ref, method, inputs FROM derivations"});
  ASSERT_EQ(q.exit_code, 0) << Describe(q);
  EXPECT_NE(q.out.find("tq@1,quantize,tiny@1"), std::string::npos) << q.out;
  RunResult sim = store_.Run({"similar", "tq@1"});
  ASSERT_EQ(sim.exit_code, 0) << Describe(sim);
  EXPECT_NE(sim.out.find("tq@1 was derived from tiny@1"), std::string::npos) << sim.out;

  // Rebuild gives the same file digest.
  RunResult rb = store_.Run({"--json", "rebuild", "tq@1"});
  ASSERT_EQ(rb.exit_code, 0) << Describe(rb);
  EXPECT_TRUE(rb.Json()["identical"].get<bool>());
}

TEST_F(Workshop, QuantizedVersionRunsLikeItsWeightsDequantized) {
  RunResult r = store_.Run({"quantize", "tiny", "--type", "q8_0", "--as", "tq"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // The same weights as F32: every Q8_0 tensor of the export decoded by core.
  std::string q = Export("tq@1");
  auto src = formats::ReadGguf(q);
  ASSERT_TRUE(src.ok()) << src.status();
  auto bytes = formats::ReadGgufMetadata(q);
  ASSERT_TRUE(bytes.ok());
  std::vector<formats::TensorDesc> descs = src->tensors;
  std::vector<std::vector<uint8_t>> data(descs.size());
  for (size_t i = 0; i < descs.size(); ++i) {
    auto b = src->TensorBytes(i);
    if (descs[i].dtype == DType::kQ8_0) {
      auto n = NumElements(descs[i].shape);
      std::vector<float> f(*n);
      ASSERT_TRUE(DecodeToF32(DType::kQ8_0, b, f).ok());
      data[i].resize(f.size() * 4);
      std::memcpy(data[i].data(), f.data(), data[i].size());
      descs[i].dtype = DType::kF32;
    } else {
      data[i].assign(b.begin(), b.end());
    }
  }
  std::string deq = store_.root() + "/dequantized.gguf";
  ASSERT_TRUE(formats::WriteGguf(deq, *bytes, descs,
                                 [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
                                   return std::span<const uint8_t>(data[i]);
                                 })
                  .ok());
  RunResult stored = store_.Run({"run", "tq@1", "Once upon", "-n", "8", "--temp", "0"});
  ASSERT_EQ(stored.exit_code, 0) << Describe(stored);
  RunResult f32 = RunHart({"run", deq, "Once upon", "-n", "8", "--temp", "0"});
  ASSERT_EQ(f32.exit_code, 0) << Describe(f32);
  EXPECT_EQ(stored.out, f32.out);
  EXPECT_FALSE(stored.out.empty());
}

TEST_F(Workshop, PresetQ4_K_MChoosesPerTensorAndRuns) {
  RunResult r = store_.Run({"--json", "quantize", "tiny", "--type", "q4_k_m", "--as", "tk"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto dt = Dtypes(Show("tk@1"));
  EXPECT_EQ(dt["output.weight"], "Q6_K");
  EXPECT_EQ(dt["token_embd.weight"], "Q4_K");
  // use_more_bits with two layers: the last one gets Q6_K.
  EXPECT_EQ(dt["blk.0.attn_v.weight"], "Q4_K");
  EXPECT_EQ(dt["blk.1.attn_v.weight"], "Q6_K");
  EXPECT_EQ(dt["blk.0.ffn_down.weight"], "Q4_K");
  EXPECT_EQ(dt["blk.1.ffn_down.weight"], "Q6_K");
  EXPECT_EQ(dt["blk.0.attn_q.weight"], "Q4_K");
  std::string path = Export("tk@1");
  auto meta = formats::ReadGgufMetadata(path);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->GetInt("general.file_type"), 15);
  EXPECT_TRUE(TensorOf(path, "output.weight") == Reference("q6_k", "output.weight", 256));
  EXPECT_TRUE(TensorOf(path, "blk.0.attn_q.weight") == Reference("q4_k", "blk.0.attn_q.weight", 256));
  RunResult run = store_.Run({"run", "tk@1", "Hello", "-n", "4", "--temp", "0"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  RunResult q5 = store_.Run({"quantize", "tiny", "--type", "q5_k_m", "--keep", "output*"});
  ASSERT_EQ(q5.exit_code, 0) << Describe(q5);
  auto d5 = Dtypes(Show("tiny-q5_k_m@1"));
  EXPECT_EQ(d5["output.weight"], "F32");
  EXPECT_EQ(d5["blk.0.attn_q.weight"], "Q5_K");
  EXPECT_EQ(d5["blk.1.attn_v.weight"], "Q6_K");
}

TEST_F(Workshop, ComposeStoresNoTensorBytesAndRebuilds) {
  // Blocks swapped, then stacked to four.
  RunResult r = store_.Run({"--json", "compose", "--base", "tiny@1", "--blocks", "tiny@1:1-1",
                            "--blocks", "tiny@1:0-0", "--as", "swapped"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  nlohmann::json j = r.Json();
  EXPECT_EQ(j["computed_tensors"], 0);
  // New bytes: at most the file's header and padding, none of its tensors.
  EXPECT_LE(j["new_bytes"].get<uint64_t>(), j["file_bytes"].get<uint64_t>() - j["output_bytes"].get<uint64_t>());
  RunResult stacked = store_.Run({"--json", "compose",
                                  R"({"base": "tiny", "parts": [{"from": "tiny", "blocks": [0, 1]},)"
                                  R"( {"from": "tiny@1", "blocks": [0, 1]}]})",
                                  "--as", "stacked"});
  ASSERT_EQ(stacked.exit_code, 0) << Describe(stacked);
  nlohmann::json sj = stacked.Json();
  EXPECT_LE(sj["new_bytes"].get<uint64_t>(), sj["file_bytes"].get<uint64_t>() - sj["output_bytes"].get<uint64_t>());
  nlohmann::json st = Show("stacked@1");
  EXPECT_EQ(st["version"]["metadata"]["llama.block_count"], 4);
  EXPECT_EQ(Dtypes(st).count("blk.3.attn_q.weight"), 1u);
  EXPECT_EQ(st["derivation"]["parameters"]["parts"][0]["from"], "tiny@1");
  RunResult run = store_.Run({"run", "stacked", "Hello", "-n", "4", "--temp", "0"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  RunResult rb = store_.Run({"rebuild", "stacked@1"});
  EXPECT_EQ(rb.exit_code, 0) << Describe(rb);
  EXPECT_NE(rb.out.find("same file digest"), std::string::npos) << rb.out;
}

TEST_F(Workshop, BadInputIsRefusedAndLeavesTheStoreAsItWas) {
  const std::vector<std::string> before = Refs();
  auto refused = [&](std::vector<std::string> args, const std::string& needle) {
    RunResult r = store_.Run(args);
    EXPECT_NE(r.exit_code, 0) << Describe(r);
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in\n" << r.err;
  };
  refused({"quantize", "tiny", "--type", "q3_x"}, "type: unknown quantization type 'q3_x'");
  refused({"quantize", "nosuch", "--type", "q8_0"}, "nosuch");
  refused({"compose", "--base", "tiny", "--blocks", "tiny:0-7"},
          "parts[0].blocks: [0, 7] is out of bounds: tiny@1 has blocks 0..1");
  refused({"compose", "--base", "tiny", "--blocks", "nosuch:0-1"}, "parts[0].from");
  refused({"compose", "--base", "tiny", "--tensor", "tiny:no.such.weight"}, "tiny@1 has no tensor 'no.such.weight'");
  refused({"compose", R"({"base": "tiny", "parts": [{"from": "tiny", "layers": [0, 1]}]})"},
          "parts[0]: unknown field 'layers'");
  refused({"rebuild", "tiny@1"}, "was ingested, not derived");
  ASSERT_EQ(store_.Run({"quantize", "tiny", "--type", "q8_0", "--as", "tq"}).exit_code, 0);
  refused({"quantize", "tq", "--type", "q4_0"}, "quantize starts from F32, F16 or BF16");

  // A NaN in a weight: refused naming the tensor, nothing stored.
  std::string bad = store_.root() + "/nan.gguf";
  fs::copy_file(Gguf(), bad);
  auto src = formats::ReadGguf(Gguf());
  ASSERT_TRUE(src.ok());
  uint64_t off = 0;
  for (const auto& t : src->tensors)
    if (t.name == "blk.1.attn_k.weight") off = t.offset + 4 * 1000;
  ASSERT_GT(off, 0u);
  {
    FILE* f = std::fopen(bad.c_str(), "r+b");
    std::fseek(f, static_cast<long>(off), SEEK_SET);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::fwrite(&nan, 4, 1, f);
    std::fclose(f);
  }
  ASSERT_EQ(store_.Run({"ingest", bad, "--model", "nan", "--license", "mit"}).exit_code, 0);
  const std::vector<std::string> with_nan = Refs();
  refused({"quantize", "nan", "--type", "q4_k"}, "tensor 'blk.1.attn_k.weight'");
  RunResult again = store_.Run({"quantize", "nan", "--type", "q4_k"});
  EXPECT_NE(again.err.find("element 1000 is NaN"), std::string::npos) << again.err;
  EXPECT_EQ(Refs(), with_nan);
  EXPECT_EQ(before.size() + 2, with_nan.size());  // tq and nan, nothing else
  // No scratch file is left behind.
  std::error_code ec;
  size_t scratch = 0;
  for (const auto& e : fs::directory_iterator(store_.dir() + "/tmp", ec)) (void)e, ++scratch;
  EXPECT_EQ(scratch, 0u);
  RunResult verify = store_.Run({"verify"});
  EXPECT_EQ(verify.exit_code, 0) << Describe(verify);
}

}  // namespace
}  // namespace hart::cli_test

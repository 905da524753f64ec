// HF (safetensors + config.json) versions taken straight by quantize,
// merge and compose, through the real `hart` binary and a real store, on the
// tiny random checkpoints of tests/fixtures/make_tiny_llama.py:
//  - quantize q8_0 of an HF version is, byte for byte (file digest), the
//    quantize of its explicitly converted GGUF layout; the conversion is
//    stored once and reused; the derivations view shows the convert step,
//    and `hart rebuild` of the quantized version gives the same digest;
//  - a linear merge and a slerp of two HF versions are the same merges of
//    the versions converted by hand in another store;
//  - a compose across an HF and a GGUF version has the tensors of the same
//    compose over the fixture's own GGUFs;
//  - an HF version with an unsupported tokenizer, an unknown quantization
//    type, a compose or merge of two architectures, a merge layer_range out
//    of bounds and a compose naming a missing tensor, all with HF inputs,
//    leave the store exactly as it was (versions, models, derivations,
//    audit and event rows, tombstones, chunks, pack file sizes): they are
//    checked against the inputs' conversions built in memory, before any
//    is stored. Not covered here: an I/O fault (or a cancel) while the
//    method writes after its conversions were stored; the store has no
//    primitive to roll several ingests back as one, so those conversions
//    are deleted again (workshop::UndoConversions), which leaves the model
//    rows, number tombstones, `version.deleted` events and dead pack bytes.
#include <sqlite3.h>

#include <fstream>

#include "../cli/cli_runner.h"
#include "fmt/format.h"
#include "formats/gguf.h"

namespace hart::cli_test {
namespace {

std::string Fixture(const std::string& root, const std::string& name, const std::string& args) {
  std::string dir = root + "/" + name;
  std::string cmd = fmt::format("/usr/bin/python3 {}/tests/fixtures/make_tiny_llama.py '{}' {}", HART_SOURCE_DIR,
                                dir, args);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return dir;
}

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

class HfInputs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(MakeTempDir("hart_hf_inputs_"));
    Fixture(*root_, "a", "--arch llama --format hf --type f32 --layers 2 --also-gguf");
    Fixture(*root_, "b", "--arch llama --seed 99 --format hf --type f32 --layers 2 --also-gguf");
    Fixture(*root_, "q", "--arch qwen2 --format hf --type f32 --layers 2");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*root_, ec);
    delete root_;
  }
  void SetUp() override { ASSERT_TRUE(store_.Init()); }
  static std::string Hf(const std::string& name) { return *root_ + "/" + name; }
  static void Ingest(const TempStore& st, const std::string& path, const std::string& model) {
    RunResult r = st.Run({"ingest", path, "--model", model, "--license", "mit"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  static nlohmann::json Ok(const TempStore& st, std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    RunResult r = st.Run(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return r.exit_code == 0 ? r.Json() : nlohmann::json::object();
  }
  static std::string Sql(const TempStore& st, const std::string& q) {
    RunResult r = st.Run({"sql", "--format", "csv", q});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return r.out;
  }
  // What a failed operation must leave as it was: every version, model,
  // derivation and chunk, and the pack bytes.
  static std::string Snapshot(const TempStore& st) {
    std::string s = Sql(st,
                        "SELECT (SELECT group_concat(ref) FROM (SELECT ref FROM versions ORDER BY id)) AS versions, "
                        "(SELECT group_concat(name) FROM (SELECT name FROM models ORDER BY id)) AS models, "
                        "(SELECT count(*) FROM derivations) AS derivations, "
                        "(SELECT count(*) FROM chunks) AS chunks, (SELECT sum(size) FROM chunks) AS chunk_bytes");
    // Rows the query views do not show: audit, events (outbox), number
    // tombstones; read from the catalog itself.
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((st.dir() + "/catalog.sqlite").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    for (const char* table : {"audit", "outbox", "version_tombstone", "model", "version", "derivation"}) {
      sqlite3_stmt* q = nullptr;
      const std::string sql = fmt::format("SELECT count(*) FROM {}", table);
      EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
      if (q && sqlite3_step(q) == SQLITE_ROW)
        s += fmt::format("{} {}\n", table, sqlite3_column_int64(q, 0));
      sqlite3_finalize(q);
    }
    sqlite3_close(db);
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(st.dir() + "/packs", ec))
      if (e.is_regular_file()) s += fmt::format("{} {}\n", e.path().string(), e.file_size());
    return s;
  }
  static std::string Recipe(const std::string& method, const std::string& a, const std::string& b) {
    if (method == "linear")
      return fmt::format("merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 0.7}}\n"
                         "  - model: {}\n    parameters: {{weight: 0.3}}\ndtype: float32\n",
                         a, b);
    return fmt::format("slices:\n  - sources:\n      - model: {0}\n        layer_range: [0, 2]\n"
                       "      - model: {1}\n        layer_range: [0, 2]\nmerge_method: slerp\nbase_model: {0}\n"
                       "parameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.7]\n    - value: 0.4\n"
                       "dtype: float32\n",
                       a, b);
  }
  std::string WriteRecipe(const TempStore& st, const std::string& name, const std::string& text) {
    const std::string path = st.root() + "/" + name + ".yaml";
    std::ofstream(path) << text;
    return path;
  }
  TempStore store_;
  static std::string* root_;
};
std::string* HfInputs::root_ = nullptr;

TEST_F(HfInputs, QuantizeOfAnHfVersionIsQuantizeOfItsConversion) {
  Ingest(store_, Hf("a"), "a");
  nlohmann::json q = Ok(store_, {"quantize", "a", "--type", "q8_0", "--as", "qa"});
  ASSERT_EQ(q["conversions"].size(), 1u) << q.dump();
  EXPECT_EQ(q["conversions"][0]["hf"], "a@1");
  EXPECT_EQ(q["conversions"][0]["converted"], "a-gguf@1");
  EXPECT_TRUE(q["conversions"][0]["created"].get<bool>());
  EXPECT_EQ(q["version"], "qa@1");
  // A second operation reuses the stored conversion.
  nlohmann::json q4 = Ok(store_, {"quantize", "a", "--type", "q4_0"});
  ASSERT_EQ(q4["conversions"].size(), 1u);
  EXPECT_FALSE(q4["conversions"][0]["created"].get<bool>());
  EXPECT_EQ(q4["conversions"][0]["converted"], "a-gguf@1");
  EXPECT_EQ(q4["version"], "a-q4_0@1");  // named after the model the user named
  // The lineage: HF -> convert-hf -> quantize.
  EXPECT_EQ(Sql(store_, "SELECT ref, method, inputs FROM derivations ORDER BY version_id"),
            "ref,method,inputs\na-gguf@1,convert-hf,a@1\nqa@1,quantize,a-gguf@1\na-q4_0@1,quantize,a-gguf@1\n");
  // Byte for byte the quantize of a conversion made by hand.
  Ok(store_, {"convert", "a", "--as", "byhand"});
  nlohmann::json h = Ok(store_, {"quantize", "byhand", "--type", "q8_0", "--as", "qh"});
  EXPECT_TRUE(h["conversions"].empty());
  ASSERT_FALSE(q["file_digest"].get<std::string>().empty());
  EXPECT_EQ(q["file_digest"], h["file_digest"]);
  for (const char* ref : {"qa@1", "a-gguf@1"}) {
    nlohmann::json rb = Ok(store_, {"rebuild", ref});
    EXPECT_TRUE(rb.value("identical", false)) << ref << " " << rb.dump();
  }
  // Its GGUF export is the hand-made one's.
  const std::string e1 = store_.root() + "/qa.gguf", e2 = store_.root() + "/qh.gguf";
  ASSERT_EQ(store_.Run({"export", "qa", "-o", e1}).exit_code, 0);
  ASSERT_EQ(store_.Run({"export", "qh", "-o", e2}).exit_code, 0);
  EXPECT_EQ(Sha256File(e1), Sha256File(e2));
}

TEST_F(HfInputs, MergesOfHfVersionsAreMergesOfTheirConversions) {
  Ingest(store_, Hf("a"), "a");
  Ingest(store_, Hf("b"), "b");
  // The same merges over conversions made by hand, in a store of their own.
  TempStore other;
  ASSERT_TRUE(other.Init());
  Ingest(other, Hf("a"), "a");
  Ingest(other, Hf("b"), "b");
  Ok(other, {"convert", "a", "--as", "ac"});
  Ok(other, {"convert", "b", "--as", "bc"});
  for (const char* method : {"linear", "slerp"}) {
    SCOPED_TRACE(method);
    const std::string m = std::string("m-") + method;
    nlohmann::json got = Ok(store_, {"merge", WriteRecipe(store_, m, Recipe(method, "a", "b")), "--as", m});
    nlohmann::json want = Ok(other, {"merge", WriteRecipe(other, m, Recipe(method, "ac", "bc")), "--as", m});
    ASSERT_FALSE(want.value("file_digest", "").empty());
    EXPECT_EQ(got["file_digest"], want["file_digest"]);
    EXPECT_EQ(got["inputs"], nlohmann::json({"a-gguf@1", "b-gguf@1"}));
    // Converted by the first merge, reused by the second.
    ASSERT_EQ(got["conversions"].size(), 2u) << got.dump();
    for (const auto& c : got["conversions"])
      EXPECT_EQ(c["created"].get<bool>(), std::string(method) == "linear") << c.dump();
    nlohmann::json rb = Ok(store_, {"rebuild", m + "@1"});
    EXPECT_TRUE(rb.value("identical", false)) << rb.dump();
  }
  EXPECT_EQ(Sql(store_, "SELECT ref, method, inputs FROM derivations ORDER BY version_id"),
            "ref,method,inputs\na-gguf@1,convert-hf,a@1\nb-gguf@1,convert-hf,b@1\n"
            "m-linear@1,merge,\"a-gguf@1,b-gguf@1\"\nm-slerp@1,merge,\"a-gguf@1,b-gguf@1\"\n");
}

TEST_F(HfInputs, ComposeAcrossAnHfAndAGgufVersion) {
  Ingest(store_, Hf("a"), "a");
  Ingest(store_, Hf("b") + "/gguf/model.gguf", "gb");
  Ingest(store_, Hf("a") + "/gguf/model.gguf", "ga");
  nlohmann::json c = Ok(store_, {"compose", "--base", "a", "--blocks", "a:0-0", "--blocks", "gb:1-1", "--blocks",
                                 "a:1-1", "--as", "mix"});
  ASSERT_EQ(c["conversions"].size(), 1u) << c.dump();
  EXPECT_EQ(c["conversions"][0]["converted"], "a-gguf@1");
  EXPECT_EQ(c["computed_tensors"], 0);
  nlohmann::json g = Ok(store_, {"compose", "--base", "ga", "--blocks", "ga:0-0", "--blocks", "gb:1-1", "--blocks",
                                 "ga:1-1", "--as", "mixg"});
  const std::string e1 = store_.root() + "/mix.gguf", e2 = store_.root() + "/mixg.gguf";
  ASSERT_EQ(store_.Run({"export", "mix", "-o", e1}).exit_code, 0);
  ASSERT_EQ(store_.Run({"export", "mixg", "-o", e2}).exit_code, 0);
  auto t1 = GgufTensors(e1), t2 = GgufTensors(e2);
  ASSERT_EQ(t1.size(), t2.size());
  ASSERT_TRUE(t1.count("blk.2.attn_q.weight"));
  for (const auto& [name, bytes] : t2) EXPECT_TRUE(t1[name] == bytes) << name;
  auto md = formats::ReadGgufMetadata(e1);
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->GetInt("llama.block_count").value_or(0), 3);
  EXPECT_EQ(Sql(store_, "SELECT inputs FROM derivations WHERE ref = 'mix@1'"), "inputs\n\"a-gguf@1,gb@1\"\n");
}

TEST_F(HfInputs, AFailureLeavesTheStoreAsItWas) {
  // A byte-level BPE tokenizer.json turned into a WordPiece one: not convertible.
  const std::string bad = store_.root() + "/badtok";
  fs::create_directories(bad);
  for (const char* f : {"model.safetensors", "config.json", "tokenizer_config.json"})
    fs::copy_file(Hf("a") + "/" + f, bad + "/" + f);
  nlohmann::json tok = nlohmann::json::parse(ReadAll(Hf("a") + "/tokenizer.json"));
  tok["model"]["type"] = "WordPiece";
  { std::ofstream(bad + "/tokenizer.json") << tok.dump(); }
  Ingest(store_, bad, "badtok");
  Ingest(store_, Hf("a"), "a");
  Ingest(store_, Hf("b"), "b");
  Ingest(store_, Hf("q"), "q");
  const std::string before = Snapshot(store_);
  auto refused = [&](std::vector<std::string> args, const std::string& needle) {
    RunResult r = store_.Run(args);
    EXPECT_NE(r.exit_code, 0) << Describe(r);
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in\n" << r.err;
    EXPECT_EQ(Snapshot(store_), before);
  };
  refused({"quantize", "badtok", "--type", "q8_0"}, "'WordPiece' cannot be converted");
  refused({"quantize", "badtok", "--type", "q8_0"}, "input badtok (a Hugging Face version, converted");
  // The good input is not converted either: every conversion is checked first.
  refused({"merge", WriteRecipe(store_, "mixed", Recipe("linear", "a", "badtok"))}, "WordPiece");
  refused({"compose", "--base", "a", "--blocks", "badtok:0-1"}, "WordPiece");
  // Refused before any input is converted.
  refused({"quantize", "a", "--type", "q9_9"}, "unknown quantization type 'q9_9'");
  // Both inputs convert, but the method refuses what they are: checked
  // against the conversions built in memory, nothing stored.
  refused({"compose", "--base", "a", "--blocks", "q:0-1"}, "is architecture 'qwen2'");
  refused({"compose", "--base", "a", "--blocks", "q:0-1"}, "checked before anything was stored");
  refused({"merge", WriteRecipe(store_, "arch", Recipe("linear", "a", "q"))},
          "models of different architectures do not merge");
  refused({"merge", WriteRecipe(store_, "range",
                                "slices:\n  - sources:\n      - model: a\n        layer_range: [0, 5]\n"
                                "      - model: b\n        layer_range: [0, 5]\nmerge_method: slerp\n"
                                "base_model: a\nparameters:\n  t: 0.5\ndtype: float32\n")},
          "layer_range: [0, 5] is out of bounds: a-gguf@1 has 2 layers");
  refused({"compose", "--base", "a", "--tensor", "b:nope.weight"}, "has no tensor 'nope.weight'");
  refused({"compose", "--base", "a", "--blocks", "b:0-7"}, "[0, 7] is out of bounds");
  // And the next operation converts afresh, as the first version of its
  // model (no tombstone took number 1).
  nlohmann::json q = Ok(store_, {"quantize", "a", "--type", "q8_0"});
  ASSERT_EQ(q["conversions"].size(), 1u);
  EXPECT_TRUE(q["conversions"][0]["created"].get<bool>());
  EXPECT_EQ(q["conversions"][0]["converted"], "a-gguf@1");
}

}  // namespace
}  // namespace hart::cli_test

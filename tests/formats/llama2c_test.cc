// llama2.c checkpoints: the real stories260K model from ../shared, and small
// checkpoints written here (a separate classifier, broken headers, wrong
// sizes, tokenizer files that do not fit).
#include "formats/llama2c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/status.h"
#include "tests/temp_dir.h"
#include "formats/model_source.h"

namespace hart::formats {
namespace {

namespace fs = std::filesystem;

std::string StoriesDir() { return std::string(HART_SOURCE_DIR) + "/../shared/testdata/tinystories"; }

std::string TempDir(const std::string& name) {
  std::string d = hart::testing::ProcessTempDir("hart_llama2c") + "/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string I32(int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string F32(float v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

// dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab 5 (negative: own
// classifier), seq 4; float i at position i, so offsets show in the values.
std::string Checkpoint(std::array<int32_t, 7> h = {8, 12, 2, 2, 1, -5, 4}) {
  std::string s;
  for (int32_t v : h) s += I32(v);
  const int64_t d = h[0], f = h[1], L = h[2], kv = h[0] * h[4] / h[3], vocab = std::abs(h[5]), hs = h[0] / h[3];
  int64_t n = vocab * d + L * (2 * d + 2 * d * d + 2 * kv * d + 3 * f * d) + d + h[6] * hs;
  if (h[5] < 0) n += vocab * d;
  for (int64_t i = 0; i < n; ++i) s += F32(static_cast<float>(i));
  return s;
}

std::string Tokenizer(int n, int32_t max_len = 6) {
  std::string s = I32(max_len);
  for (int i = 0; i < n; ++i) {
    std::string t = i == 0 ? "<unk>" : i == 1 ? "\n<s>\n" : i == 2 ? "\n</s>\n" : std::string(1, static_cast<char>('a' + i));
    s += F32(-static_cast<float>(i)) + I32(static_cast<int32_t>(t.size())) + t;
  }
  return s;
}

TEST(Llama2c, ReadsStories260K) {
  if (!fs::exists(StoriesDir() + "/stories260K.bin")) GTEST_SKIP() << "no " << StoriesDir();
  auto src = OpenModel(StoriesDir() + "/stories260K.bin");  // tok512.bin found beside it
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  EXPECT_EQ(src->format, Format::kLlama2c);
  EXPECT_EQ(src->name_hint, "stories260K");
  EXPECT_EQ(src->architecture, "llama");
  EXPECT_EQ(src->metadata["llama2c"]["dim"], 64);
  EXPECT_EQ(src->metadata["llama2c"]["n_kv_heads"], 4);
  EXPECT_EQ(src->metadata["llama2c"]["shared_classifier"], true);
  EXPECT_EQ(src->metadata["tokenizer"]["file"], "tok512.bin");
  EXPECT_EQ(src->metadata["tokenizer"]["tokens"], 512);
  ASSERT_EQ(src->files.size(), 2u);
  EXPECT_EQ(src->files[0].name, "stories260K.bin");
  EXPECT_EQ(src->files[1].name, "tok512.bin");
  // Embedding, 9 tensors per layer x 5, final norm, two freq_cis; no output.weight.
  ASSERT_EQ(src->tensors.size(), 1u + 45 + 1 + 2);
  EXPECT_EQ(src->tensors[0].name, "token_embd.weight");
  EXPECT_EQ(src->tensors[0].shape, (Shape{512, 64}));
  EXPECT_EQ(src->tensors[0].offset, 28u);
  std::map<std::string, const TensorDesc*> by;
  for (const auto& t : src->tensors) by[t.name] = &t;
  ASSERT_TRUE(by.count("blk.4.attn_k.weight"));
  EXPECT_EQ(by["blk.4.attn_k.weight"]->shape, (Shape{32, 64}));
  EXPECT_EQ(by["blk.2.ffn_down.weight"]->shape, (Shape{64, 172}));
  EXPECT_EQ(by["blk.2.ffn_gate.weight"]->shape, (Shape{172, 64}));
  EXPECT_EQ(by["freq_cis_imag"]->shape, (Shape{512, 4}));
  EXPECT_EQ(by.count("output.weight"), 0u);
  // wq of layer 1 starts after the embedding, 5 rms_att and layer 0's wq.
  EXPECT_EQ(by["blk.1.attn_q.weight"]->offset, 28u + 4 * (512 * 64 + 5 * 64 + 64 * 64));
  // rms_att of layer 0 as run.c reads it: all ones is not what training left.
  auto norm = src->TensorBytes(static_cast<size_t>(by["blk.0.attn_norm.weight"] - src->tensors.data()));
  float first;
  std::memcpy(&first, norm.data(), 4);
  EXPECT_TRUE(std::isfinite(first));
  EXPECT_TRUE(ValidateSource(*src).ok());
}

TEST(Llama2c, SeparateClassifierAndExplicitTokenizer) {
  const std::string d = TempDir("sep");
  WriteBytes(d + "/m.bin", Checkpoint());
  fs::create_directories(d + "/vocab");
  WriteBytes(d + "/vocab/my.tok", Tokenizer(5));
  auto none = OpenModel(d + "/m.bin");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Msg(none.status()).find("--tokenizer"), std::string_view::npos) << Msg(none.status());
  auto src = OpenModel(d + "/m.bin", {.tokenizer = d + "/vocab/my.tok"});
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  EXPECT_EQ(src->metadata["llama2c"]["shared_classifier"], false);
  EXPECT_EQ(src->metadata["llama2c"]["vocab_size"], 5);
  ASSERT_EQ(src->tensors.back().name, "output.weight");
  EXPECT_EQ(src->tensors.back().offset + src->tensors.back().nbytes, src->files[0].map->size());
  EXPECT_EQ(src->files[1].name, "my.tok");
  // The layout covers the header and every tensor, in order.
  uint64_t pos = 0;
  for (const Segment& s : src->files[0].layout) {
    EXPECT_EQ(s.offset, pos);
    pos += s.size;
  }
  EXPECT_EQ(pos, src->files[0].map->size());
}

TEST(Llama2c, ADirectoryWithOneCheckpoint) {
  const std::string d = TempDir("dir");
  WriteBytes(d + "/model.bin", Checkpoint());
  WriteBytes(d + "/tokenizer.bin", Tokenizer(5));
  auto src = OpenModel(d);
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  EXPECT_EQ(src->format, Format::kLlama2c);
  EXPECT_EQ(src->files[1].name, "tokenizer.bin");
}

TEST(Llama2c, FindsTheTokenizerBeside) {
  const std::string d = TempDir("find");
  WriteBytes(d + "/m.bin", Checkpoint());
  WriteBytes(d + "/tok9.bin", Tokenizer(9));  // another vocabulary size: not this model's
  WriteBytes(d + "/tok5.bin", Tokenizer(5));
  auto one = FindLlama2cTokenizer(d + "/m.bin", 5);
  ASSERT_TRUE(one.ok()) << Msg(one.status());
  EXPECT_EQ(*one, d + "/tok5.bin");
  WriteBytes(d + "/tok5b.bin", Tokenizer(5));
  auto two = FindLlama2cTokenizer(d + "/m.bin", 5);
  ASSERT_FALSE(two.ok());
  EXPECT_NE(Msg(two.status()).find("several"), std::string_view::npos);
  WriteBytes(d + "/tokenizer.bin", Tokenizer(5));  // llama2.c's default name wins
  auto def = FindLlama2cTokenizer(d + "/m.bin", 5);
  ASSERT_TRUE(def.ok()) << Msg(def.status());
  EXPECT_EQ(*def, d + "/tokenizer.bin");
}

TEST(Llama2c, BadHeadersAndSizesAreDataErrors) {
  const std::string d = TempDir("bad");
  WriteBytes(d + "/tok.bin", Tokenizer(5));
  struct Case {
    std::string name, bytes, want;
  };
  const std::string good = Checkpoint();
  std::vector<Case> cases = {
      {"truncated", good.substr(0, good.size() - 1), "truncated"},
      {"extra", good + "x", "describe"},
      {"short", good.substr(0, 20), "header"},
      {"heads", Checkpoint({8, 12, 2, 3, 1, -5, 4}), "n_heads"},
      {"kv", Checkpoint({8, 12, 2, 2, 4, -5, 4}), "n_kv_heads"},
      {"zero_layers", Checkpoint({8, 12, 0, 2, 1, -5, 4}), "n_layers"},
      {"dim", I32(1 << 30) + good.substr(4), "dim"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = d + "/" + c.name + ".bin";
    WriteBytes(path, c.bytes);
    auto src = ReadLlama2c(path, d + "/tok.bin");
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.status().code(), absl::StatusCode::kDataLoss) << Msg(src.status());
    EXPECT_NE(Msg(src.status()).find(path + ": offset "), std::string_view::npos) << Msg(src.status());
    EXPECT_NE(Msg(src.status()).find(c.want), std::string_view::npos) << Msg(src.status());
    // Without --tokenizer: a plausible header of the wrong size still gets
    // the size error; other bytes are no llama2.c checkpoint at all.
    auto open = OpenModel(path);
    EXPECT_FALSE(open.ok());
    const bool sized = c.name == "truncated" || c.name == "extra";
    EXPECT_NE(Msg(open.status()).find(sized ? c.want : "unrecognized"), std::string_view::npos)
        << Msg(open.status());
  }
}

TEST(Llama2c, BadTokenizersAreDataErrors) {
  const std::string d = TempDir("badtok");
  WriteBytes(d + "/m.bin", Checkpoint());
  const std::string good = Tokenizer(5);
  struct Case {
    std::string name, bytes, want;
  };
  std::string long_token = good;
  std::memcpy(long_token.data() + 4 + 4, "\x40\0\0\0", 4);  // token 0's length 64 > max 6
  std::string nan = good;
  const float q = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data() + 4, &q, 4);
  std::vector<Case> cases = {
      {"fewer", Tokenizer(4), "ends after 4 of 5 tokens"},
      {"more", Tokenizer(6), "bytes after the 5 tokens"},
      {"cut", good.substr(0, good.size() - 1), "token 4: bytes"},
      {"max_len", I32(0) + good.substr(4), "max_token_length"},
      {"length", long_token, "token 0: length"},
      {"score", nan, "token 0: score"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = d + "/" + c.name + ".tok";
    WriteBytes(path, c.bytes);
    auto src = ReadLlama2c(d + "/m.bin", path);
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.status().code(), absl::StatusCode::kDataLoss) << Msg(src.status());
    EXPECT_NE(Msg(src.status()).find(path + ": offset "), std::string_view::npos) << Msg(src.status());
    EXPECT_NE(Msg(src.status()).find(c.want), std::string_view::npos) << Msg(src.status());
  }
}

TEST(Llama2c, TokenizerOptionOnlyForLlama2c) {
  const std::string d = TempDir("opt");
  WriteBytes(d + "/tok.bin", Tokenizer(5));
  WriteBytes(d + "/m.gguf", "GGUF" + std::string(40, '\0'));
  auto r = OpenModel(d + "/m.gguf", {.tokenizer = d + "/tok.bin"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Msg(r.status()).find("llama2.c checkpoints only"), std::string_view::npos) << Msg(r.status());
}

// A legacy PyTorch pickle or a zip never reads as a llama2.c header, even
// when its size happens to be what its first bytes would describe.
TEST(Llama2c, NeverClaimsPyTorchFiles) {
  for (std::string head : {std::string("\x80\x02\x8a\x0a", 4), std::string("PK\x03\x04", 4)}) {
    std::string h = head + Checkpoint().substr(4, 24);
    EXPECT_FALSE(LooksLikeLlama2c({reinterpret_cast<const uint8_t*>(h.data()), h.size()}, 1 << 20));
  }
}

// The fuzz corpus and any crashers kept from fuzzing parse or fail cleanly.
TEST(Llama2c, FuzzCorpusParsesOrFailsCleanly) {
  for (const char* sub : {"/fuzz/regressions/llama2c", "/fuzz/corpus/llama2c"}) {
    const std::string dir = std::string(HART_SOURCE_DIR) + sub;
    if (!fs::exists(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      std::ifstream f(e.path(), std::ios::binary);
      std::string b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(b.data()), b.size());
      auto h = ParseLlama2cHeader(bytes, b.size(), e.path().string());
      if (!h.ok()) EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss);
      auto v = ParseLlama2cTokenizer(bytes, 5, e.path().string());
      if (!v.ok()) EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss);
    }
  }
}

}  // namespace
}  // namespace hart::formats

// Tokenizers from Hugging Face tokenizer.json files. The files are written
// here from the GGUF test vocabularies (tokens, merges, token types, the
// pre-tokenizer family's Split expressions), in the layouts the HF converters
// produce: byte-level BPE as gpt2 / llama-3 / deepseek (Split + ByteLevel),
// and SentencePiece-style BPE as llama-2 (byte_fallback, Prepend/Replace
// normalizers; or a Metaspace pre-tokenizer), whose merges come from the
// GGUF scores. Loaded through Tokenizer::FromHfJson they must reproduce the
// published .inp/.out vectors exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <tuple>

#include "core/status.h"
#include "formats/gguf.h"
#include "nlohmann/json.hpp"
#include "runtime/chat_template.h"
#include "runtime/pretokenize.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_unicode.h"
#include "vocab_vectors.h"

namespace hart::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Escaped;
using testing::ReadVectors;
using testing::VectorCase;
using testing::VocabDir;

constexpr const char* kSpace = "\xE2\x96\x81";

struct HfFiles {
  std::string tokenizer;
  std::string config;
};

enum class MergeForm { kString, kPair };
enum class SpaceForm { kNormalizers, kMetaspace };

// tokenizer.json + tokenizer_config.json for a GGUF vocabulary.
HfFiles ConvertGguf(const formats::GgufMetadata& md, MergeForm merge_form, SpaceForm space_form) {
  const auto tokens = *md.GetStringArray("tokenizer.ggml.tokens");
  const auto types = md.GetIntArray("tokenizer.ggml.token_type").value_or(std::vector<int64_t>(tokens.size(), 1));
  const std::string model = *md.GetString("tokenizer.ggml.model");
  const bool spm = model == "llama";
  std::string name = md.GetString("general.name").value_or("");
  for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const bool phi3 = name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos;

  json vocab = json::object(), added = json::array();
  std::map<std::string, int64_t> id_of;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t type = types[i];
    if (type == 2 || type == 3 || type == 4) {  // unknown, control, user-defined
      const bool special = type != 4;
      bool rstrip = false;
      if (phi3) {  // Phi-3's tokenizer.json: added tokens eat the spaces after them
        rstrip = tokens[i] != "<unk>" && tokens[i] != "<s>" && tokens[i] != "<|endoftext|>";
      }
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", rstrip}, {"normalized", false}, {"special", special}});
      if (type == 2) vocab[tokens[i]] = i;  // <unk> is in the model's vocabulary too
      continue;
    }
    if (vocab.contains(tokens[i])) continue;  // a duplicate keeps its first id, as GGUF loading does
    vocab[tokens[i]] = i;
    id_of[tokens[i]] = static_cast<int64_t>(i);
  }

  std::vector<std::pair<std::string, std::string>> merges;
  if (spm) {
    // SentencePiece has scores, not merges: every split of a piece into two
    // pieces is a merge, ordered by the merged piece's score (then the
    // parts' ids), as HF's SentencePiece converter orders them.
    const auto scores = *md.GetFloatArray("tokenizer.ggml.scores");
    std::vector<std::tuple<double, int64_t, int64_t, std::string, std::string>> all;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (types[i] != 1) continue;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        k += unicode::Utf8LenFromLead(static_cast<uint8_t>(t[k]));
        if (k >= t.size()) break;
        auto a = id_of.find(t.substr(0, k)), b = id_of.find(t.substr(k));
        if (a == id_of.end() || b == id_of.end()) continue;
        all.emplace_back(-scores[i], a->second, b->second, a->first, b->first);
      }
    }
    std::sort(all.begin(), all.end());
    for (auto& m : all) merges.emplace_back(std::get<3>(m), std::get<4>(m));
  } else {
    const auto gguf_merges = md.GetStringArray("tokenizer.ggml.merges");
    for (const std::string& m : *gguf_merges) {
      const size_t sp = m.find(' ', 1);
      merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
  }
  json jm = json::array();
  for (const auto& [a, b] : merges) {
    if (merge_form == MergeForm::kPair) jm.push_back(json::array({a, b}));
    else jm.push_back(a + " " + b);
  }

  json root = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added}};
  json m = {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab}, {"merges", jm}};
  json config = json::object();
  if (spm) {
    m["unk_token"] = "<unk>";
    m["byte_fallback"] = true;
    m["fuse_unk"] = true;
    if (space_form == SpaceForm::kNormalizers) {
      root["normalizer"] = {{"type", "Sequence"},
                            {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", kSpace}},
                                                         {{"type", "Replace"},
                                                          {"pattern", {{"String", " "}}},
                                                          {"content", kSpace}}})}};
      root["pre_tokenizer"] = nullptr;
    } else {
      root["normalizer"] = nullptr;
      root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"},
                               {"split", false}};
    }
    root["decoder"] = {{"type", "Sequence"},
                       {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", kSpace}}},
                                                  {"content", " "}},
                                                 {{"type", "ByteFallback"}}, {{"type", "Fuse"}}})}};
    root["post_processor"] = {{"type", "TemplateProcessing"},
                              {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                      {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}};
    config = {{"bos_token", {{"content", tokens[md.GetInt("tokenizer.ggml.bos_token_id").value_or(1)]}, {"lstrip", false}}},
              {"eos_token", tokens[md.GetInt("tokenizer.ggml.eos_token_id").value_or(2)]},
              {"add_bos_token", true}, {"add_eos_token", false}};
  } else {
    const std::string pre = md.GetString("tokenizer.ggml.pre").value_or("default");
    const auto* patterns = PreTokenizer::PatternsForName(pre);
    EXPECT_NE(patterns, nullptr) << pre;
    json pts = json::array();
    if (patterns != nullptr && *patterns == *PreTokenizer::PatternsForName("gpt-2")) {
      // GPT-2's own file: ByteLevel with its built-in expression.
      root["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                               {"use_regex", true}};
    } else {
      for (const std::string& p : patterns ? *patterns : std::vector<std::string>{})
        pts.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}, {"invert", false}});
      pts.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                     {"use_regex", false}});
      root["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", pts}};
    }
    root["normalizer"] = nullptr;
    root["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                       {"use_regex", true}};
    root["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false},
                              {"use_regex", true}};
    if (auto eos = md.GetInt("tokenizer.ggml.eos_token_id")) config["eos_token"] = tokens[*eos];
    if (auto bos = md.GetInt("tokenizer.ggml.bos_token_id")) config["bos_token"] = tokens[*bos];
    if (auto add = md.GetBool("tokenizer.ggml.add_bos_token")) config["add_bos_token"] = *add;
  }
  root["model"] = m;
  return {root.dump(), config.dump()};
}

struct Case {
  const char* vocab;
  MergeForm merges;
  SpaceForm spaces;
};

class HfVocabVectors : public ::testing::TestWithParam<Case> {};

TEST_P(HfVocabVectors, EncodeMatchesPublishedIds) {
  const Case& c = GetParam();
  const std::string name = c.vocab;
  const std::string path = VocabDir() + "/ggml-vocab-" + name + ".gguf";
  if (!fs::exists(path + ".inp")) GTEST_SKIP() << "no test vectors at " << VocabDir();
  auto md = formats::ReadGgufMetadata(path);
  ASSERT_TRUE(md.ok()) << Msg(md.status());
  const HfFiles files = ConvertGguf(*md, c.merges, c.spaces);
  auto tok = Tokenizer::FromHfJson(files.tokenizer, files.config, "", name);
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  auto gguf = Tokenizer::FromGguf(*md, path);
  ASSERT_TRUE(gguf.ok()) << Msg(gguf.status());
  EXPECT_EQ((*tok)->kind(), (*gguf)->kind());
  EXPECT_EQ((*tok)->bos_id(), (*gguf)->bos_id());
  EXPECT_EQ((*tok)->eos_id(), (*gguf)->eos_id());
  EXPECT_EQ((*tok)->add_bos_default(), (*gguf)->add_bos_default());
  if ((*tok)->kind() == TokenizerKind::kBpe) EXPECT_EQ((*tok)->pre(), PreTokenizer::NameForPatterns(
      *PreTokenizer::PatternsForName((*gguf)->pre())));

  const auto cases = ReadVectors(name);
  ASSERT_GT(cases.size(), 30u);
  int failed = 0;
  for (const VectorCase& v : cases) {
    const std::vector<int32_t> got = (*tok)->Encode(v.text, /*add_bos=*/false);
    if (got != v.ids) ++failed;
    EXPECT_EQ(got, v.ids) << name << ": \"" << Escaped(v.text) << "\"";
    EXPECT_EQ((*tok)->Decode(got), (*gguf)->Decode(got)) << name << ": \"" << Escaped(v.text) << "\"";
  }
  EXPECT_EQ(failed, 0) << name << ": " << failed << " of " << cases.size() << " strings differ";

  // With BOS and special tokens parsed, as `hart run` encodes a prompt.
  for (int32_t id = 0; id < (*gguf)->vocab_size(); ++id) {
    const TokenType t = (*gguf)->GetTokenType(id);
    if (t != TokenType::kControl || (*gguf)->TokenText(id).empty()) continue;
    const std::string text = " Hi" + (*gguf)->TokenText(id) + "there  2024\n";
    EXPECT_EQ((*tok)->Encode(text, true, true), (*gguf)->Encode(text, true, true)) << name << ": " << Escaped(text);
    break;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Vocabs, HfVocabVectors,
    ::testing::Values(Case{"llama-spm", MergeForm::kString, SpaceForm::kNormalizers},
                      Case{"phi-3", MergeForm::kPair, SpaceForm::kMetaspace},
                      Case{"gpt-2", MergeForm::kPair, SpaceForm::kNormalizers},
                      Case{"deepseek-coder", MergeForm::kString, SpaceForm::kNormalizers},
                      Case{"deepseek-llm", MergeForm::kPair, SpaceForm::kNormalizers},
                      Case{"falcon", MergeForm::kString, SpaceForm::kNormalizers},
                      Case{"starcoder", MergeForm::kPair, SpaceForm::kNormalizers},
                      Case{"mpt", MergeForm::kString, SpaceForm::kNormalizers},
                      Case{"refact", MergeForm::kString, SpaceForm::kNormalizers}),
    [](const auto& info) {
      std::string s = info.param.vocab;
      for (char& ch : s)
        if (ch == '-') ch = '_';
      return s;
    });

// A minimal byte-level file: the 256 byte characters plus one merge.
json TinyByteLevel() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[unicode::ByteToBpeChar(static_cast<uint8_t>(b))] = b;
  vocab["ab"] = 256;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"added_tokens", json::array({{{"id", 257}, {"content", "<|im_start|>"}, {"special", true}},
                                        {{"id", 258}, {"content", "<|im_end|>"}, {"special", true}},
                                        {{"id", 259}, {"content", "<|endoftext|>"}, {"special", true}}})}};
}

TEST(HfTokenizer, UnknownModelTypeNamesFileAndField) {
  for (const char* type : {"Unigram", "WordLevel", "WordPiece"}) {
    json j = TinyByteLevel();
    j["model"]["type"] = type;
    auto tok = Tokenizer::FromHfJson(j.dump(), "", "", "/ckpt");
    ASSERT_FALSE(tok.ok()) << type;
    const std::string msg(tok.status().message());
    EXPECT_NE(msg.find("/ckpt: tokenizer.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.type"), std::string::npos) << msg;
    EXPECT_NE(msg.find(type), std::string::npos) << msg;
  }
}

TEST(HfTokenizer, BadFilesAreErrors) {
  EXPECT_FALSE(Tokenizer::FromHfJson("{not json", "", "", "d").ok());
  json j = TinyByteLevel();
  j["pre_tokenizer"] = nullptr;
  auto tok = Tokenizer::FromHfJson(j.dump(), "", "", "d");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(std::string(tok.status().message()).find("pre_tokenizer"), std::string::npos);
  j = TinyByteLevel();
  auto bad_cfg = Tokenizer::FromHfJson(j.dump(), R"({"eos_token": "<nope>"})", "", "d");
  ASSERT_FALSE(bad_cfg.ok());
  EXPECT_NE(std::string(bad_cfg.status().message()).find("tokenizer_config.json: eos_token"), std::string::npos)
      << bad_cfg.status();
}

TEST(HfTokenizer, ConfigGivesEosTemplateAndEndOfGeneration) {
  const json cfg = {{"eos_token", "<|im_end|>"},
                    {"bos_token", nullptr},
                    {"chat_template", "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                                      "{% endfor %}"}};
  auto tok = Tokenizer::FromHfJson(TinyByteLevel().dump(), cfg.dump(), R"({"eos_token_id": [259, 258]})", "d");
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  EXPECT_EQ((*tok)->eos_id(), 258);
  EXPECT_EQ((*tok)->bos_id(), kNoToken);
  EXPECT_FALSE((*tok)->add_bos_default());
  EXPECT_TRUE((*tok)->IsEog(258));
  EXPECT_TRUE((*tok)->IsEog(259));
  EXPECT_EQ((*tok)->pre(), "gpt-2");
  EXPECT_EQ((*tok)->Encode("<|im_start|>abc", false, true), (std::vector<int32_t>{257, 256, 'c'}));
  auto format = DetectChatFormat(**tok, "qwen2");
  ASSERT_TRUE(format.ok());
  EXPECT_EQ(*format, ChatFormat::kChatml);
}

TEST(HfTokenizer, UnknownSplitExpressionRunsAsGiven) {
  json j = TinyByteLevel();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", "b"}}},
                                                        {"behavior", "Isolated"}},
                                                       {{"type", "ByteLevel"}, {"use_regex", false}}})}};
  auto tok = Tokenizer::FromHfJson(j.dump(), "", "", "d");
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  EXPECT_EQ((*tok)->pre(), "tokenizer.json");
  // "b" is cut out before merges, so "ab" cannot merge.
  EXPECT_EQ((*tok)->Encode("ab", false), (std::vector<int32_t>{'a', 'b'}));
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  auto removed = Tokenizer::FromHfJson(j.dump(), "", "", "d");
  ASSERT_FALSE(removed.ok());
  EXPECT_NE(std::string(removed.status().message()).find("behavior"), std::string::npos);
}

}  // namespace
}  // namespace hart::runtime

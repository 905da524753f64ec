#include "runtime/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/status.h"
#include "formats/gguf.h"
#include "runtime/pretokenize.h"
#include "vocab_vectors.h"

namespace hart::runtime {
namespace {

namespace fs = std::filesystem;
using testing::Escaped;
using testing::ReadVectors;
using testing::VectorCase;
using testing::VocabDir;

// Tokenizers are loaded once per vocabulary; loading the 100k-token ones
// takes a good part of a second.
const Tokenizer* LoadVocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  const std::string path = VocabDir() + "/ggml-vocab-" + name + ".gguf";
  auto md = formats::ReadGgufMetadata(path);
  EXPECT_TRUE(md.ok()) << Msg(md.status());
  if (!md.ok()) return nullptr;
  auto tok = Tokenizer::FromGguf(*md, path);
  EXPECT_TRUE(tok.ok()) << Msg(tok.status());
  if (!tok.ok()) return nullptr;
  return (cache[name] = std::move(*tok)).get();
}

class VocabVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabVectors, EncodeMatchesPublishedIds) {
  const std::string name = GetParam();
  if (!fs::exists(VocabDir() + "/ggml-vocab-" + name + ".gguf.inp")) {
    GTEST_SKIP() << "no test vectors at " << VocabDir();
  }
  const Tokenizer* tok = LoadVocab(name);
  ASSERT_NE(tok, nullptr);
  const auto cases = ReadVectors(name);
  ASSERT_GT(cases.size(), 30u);
  int failed = 0;
  for (const VectorCase& c : cases) {
    const std::vector<int32_t> got = tok->Encode(c.text, /*add_bos=*/false);
    if (got != c.ids) ++failed;
    EXPECT_EQ(got, c.ids) << name << ": \"" << Escaped(c.text) << "\"";
  }
  EXPECT_EQ(failed, 0) << name << ": " << failed << " of " << cases.size() << " strings differ";
}

TEST_P(VocabVectors, DecodeInvertsEncode) {
  const std::string name = GetParam();
  if (!fs::exists(VocabDir() + "/ggml-vocab-" + name + ".gguf.inp")) GTEST_SKIP();
  const Tokenizer* tok = LoadVocab(name);
  ASSERT_NE(tok, nullptr);
  if (tok->kind() == TokenizerKind::kWordPiece) GTEST_SKIP() << "WordPiece normalizes text";
  for (const VectorCase& c : ReadVectors(name)) {
    EXPECT_EQ(tok->Decode(tok->Encode(c.text, false)), c.text) << name << ": " << Escaped(c.text);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, VocabVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-coder",
                                           "deepseek-llm", "falcon", "mpt", "refact", "starcoder",
                                           "bert-bge"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) if (c == '-') c = '_';
                           return s;
                         });

// Splits worked out by hand from the published expressions.
std::vector<std::string> SplitWith(std::string_view pre, std::string_view text) {
  auto p = PreTokenizer::ForName(pre);
  EXPECT_TRUE(p.ok()) << Msg(p.status());
  std::vector<std::string> out;
  if (!p.ok()) return out;
  for (std::string_view s : p->Split(text)) out.emplace_back(s);
  return out;
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, Llama3Splits) {
  // Contractions match in any case, before the letter rule.
  EXPECT_EQ(SplitWith("llama-bpe", "I'M here, they'RE"),
            (Pieces{"I", "'M", " here", ",", " they", "'RE"}));
  // Digits go in runs of at most three.
  EXPECT_EQ(SplitWith("llama-bpe", "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(SplitWith("llama-bpe", "a 12345"), (Pieces{"a", " ", "123", "45"}));
  // A letter run takes one leading non-letter, non-digit, non-newline; after
  // a space, "_" is punctuation and the space goes with it.
  EXPECT_EQ(SplitWith("llama-bpe", "$hello _world"), (Pieces{"$hello", " _", "world"}));
  // Whitespace before a word stays one short of the word; the last space joins it.
  EXPECT_EQ(SplitWith("llama-bpe", "a   b"), (Pieces{"a", "  ", " b"}));
  // Trailing whitespace is one piece.
  EXPECT_EQ(SplitWith("llama-bpe", "a  "), (Pieces{"a", "  "}));
  // Newline runs with the spaces before them; punctuation keeps trailing newlines.
  EXPECT_EQ(SplitWith("llama-bpe", "x  \n\ny"), (Pieces{"x", "  \n\n", "y"}));
  EXPECT_EQ(SplitWith("llama-bpe", "end.\n\nNext"), (Pieces{"end", ".\n\n", "Next"}));
  // Unicode letters are letters; emoji are "other" and group with a leading space.
  EXPECT_EQ(SplitWith("llama-bpe", "Führer déjà"), (Pieces{"Führer", " déjà"}));
  EXPECT_EQ(SplitWith("llama-bpe", "hi 😀😁!"), (Pieces{"hi", " 😀😁!"}));
  // Tabs: whitespace not followed by non-space.
  EXPECT_EQ(SplitWith("llama-bpe", "\t\tx"), (Pieces{"\t", "\tx"}));
  EXPECT_EQ(SplitWith("llama-bpe", "Hello world"), (Pieces{"Hello", " world"}));
}

TEST(PreTokenizer, Qwen2SplitsDigitsSingly) {
  EXPECT_EQ(SplitWith("qwen2", "abc 2024!"), (Pieces{"abc", " ", "2", "0", "2", "4", "!"}));
  EXPECT_EQ(SplitWith("qwen2", "we'll 12"), (Pieces{"we", "'ll", " ", "1", "2"}));
  EXPECT_EQ(SplitWith("qwen2", "中文字 text"), (Pieces{"中文字", " text"}));
  EXPECT_EQ(SplitWith("qwen2", "a\r\n\r\nb"), (Pieces{"a", "\r\n\r\n", "b"}));
}

TEST(PreTokenizer, PiecesCoverInvalidUtf8) {
  const std::string text = "ab\xff\xfe cd\xe2\x82";  // stray bytes and a truncated sequence
  std::string joined;
  for (const std::string& s : SplitWith("llama-bpe", text)) joined += s;
  EXPECT_EQ(joined, text);
}

TEST(PreTokenizer, EveryFamilyCompiles) {
  for (const char* pre : {"default", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder",
                          "deepseek-v3", "falcon", "mpt", "refact", "starcoder", "gpt-4o", "tekken",
                          "poro-chat", "dbrx", "smaug-bpe"}) {
    auto p = PreTokenizer::ForName(pre);
    EXPECT_TRUE(p.ok()) << pre << ": " << Msg(p.status());
  }
  EXPECT_FALSE(PreTokenizer::ForName("no-such-family").ok());
}

TEST(Tokenizer, SpecialTokensOnlyWhenAsked) {
  const Tokenizer* tok = LoadVocab("phi-3");
  ASSERT_NE(tok, nullptr);
  const int32_t user = *tok->TokenId("<|user|>");
  const int32_t end = *tok->TokenId("<|end|>");
  auto with = tok->Encode("<|user|>\nHi<|end|>", true, /*parse_special=*/true);
  ASSERT_GE(with.size(), 4u);
  EXPECT_EQ(with.front(), tok->bos_id());
  EXPECT_EQ(with[1], user);
  EXPECT_EQ(with.back(), end);
  // Phi-3's added tokens swallow the newline after them.
  EXPECT_EQ(tok->Decode(with, /*render_special=*/true), "<s><|user|>Hi<|end|>");
  auto without = tok->Encode("<|user|>\nHi<|end|>", false, false);
  EXPECT_EQ(std::count(without.begin(), without.end(), user), 0);
  EXPECT_EQ(tok->Decode(without), "<|user|>\nHi<|end|>");
  EXPECT_TRUE(tok->IsEog(end));
  EXPECT_TRUE(tok->IsEog(tok->eos_id()));
  EXPECT_FALSE(tok->IsEog(user));
}

TEST(Tokenizer, SpecialIdsFromMetadata) {
  const Tokenizer* spm = LoadVocab("llama-spm");
  ASSERT_NE(spm, nullptr);
  EXPECT_EQ(spm->kind(), TokenizerKind::kSpm);
  EXPECT_EQ(spm->bos_id(), 1);
  EXPECT_EQ(spm->eos_id(), 2);
  EXPECT_TRUE(spm->add_bos_default());
  EXPECT_EQ(spm->vocab_size(), 32000);
  const Tokenizer* bert = LoadVocab("bert-bge");
  ASSERT_NE(bert, nullptr);
  auto ids = bert->Encode("hello", true);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
  const Tokenizer* gpt2 = LoadVocab("gpt-2");
  ASSERT_NE(gpt2, nullptr);
  EXPECT_EQ(gpt2->eos_id(), 50256);
  EXPECT_TRUE(gpt2->IsEog(50256));
  EXPECT_EQ(gpt2->pre(), "gpt-2");
}

TEST(Tokenizer, StreamingAssemblesSplitCharacters) {
  const Tokenizer* tok = LoadVocab("llama-spm");
  ASSERT_NE(tok, nullptr);
  const std::string text = "Hi 🦙 — ok";  // the llama is four byte tokens in this vocabulary
  auto ids = tok->Encode(text, true);
  int byte_pieces = 0;
  for (int32_t id : ids) byte_pieces += tok->GetTokenType(id) == TokenType::kByte;
  EXPECT_GE(byte_pieces, 4);
  StreamDecoder dec(*tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string part = dec.Push(id);
    // Every chunk is whole UTF-8: no chunk ends inside a character.
    if (!part.empty()) {
      const auto last = static_cast<unsigned char>(part.back());
      EXPECT_TRUE(last < 0x80 || (last & 0xC0) == 0x80) << Escaped(part);
    }
    streamed += part;
  }
  streamed += dec.Flush();
  EXPECT_EQ(streamed, text);

  const Tokenizer* bpe = LoadVocab("gpt-2");
  ASSERT_NE(bpe, nullptr);
  StreamDecoder bdec(*bpe);
  std::string bstreamed;
  for (int32_t id : bpe->Encode(text, false)) bstreamed += bdec.Push(id);
  EXPECT_EQ(bstreamed + bdec.Flush(), text);
}

TEST(Tokenizer, InvalidUtf8RoundTripsThroughByteLevelBpe) {
  const Tokenizer* tok = LoadVocab("gpt-2");
  ASSERT_NE(tok, nullptr);
  const std::string text = "ok\xff\xc3(\xe2\x82";
  EXPECT_EQ(tok->Decode(tok->Encode(text, false)), text);
  const Tokenizer* spm = LoadVocab("llama-spm");
  ASSERT_NE(spm, nullptr);
  EXPECT_EQ(spm->Decode(spm->Encode(text, false)), text);
}

TEST(Tokenizer, Encodes100KBQuickly) {
  std::string text;
  const std::string para =
      "The quick brown fox jumps over the lazy dog; it's 2024, über-naïve café visits cost "
      "$3.50 (or €3). 中文字符 and emoji 🦙🚀 mixed with code: for (int i = 0; i < n; ++i) {}\n";
  while (text.size() < 100 * 1024) text += para;
  for (const char* name : {"llama-spm", "gpt-2", "deepseek-llm", "bert-bge"}) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->Encode(text, true);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %zu bytes -> %zu tokens in %.3f s\n", name, text.size(), ids.size(), s);
    EXPECT_GT(ids.size(), text.size() / 10);
    EXPECT_LT(s, 2.0) << name;  // well under a second unloaded; slack for a busy CI machine
  }
}

TEST(Tokenizer, RandomBytesRoundTripAndNeverCrash) {
  std::mt19937 rng(42);
  for (const char* name : {"llama-spm", "gpt-2", "deepseek-llm", "mpt", "bert-bge"}) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    for (int iter = 0; iter < 200; ++iter) {
      std::string text(rng() % 64, '\0');
      for (char& c : text) {
        // Any byte that can occur in UTF-8, valid sequences or not. The 13
        // that never can (C0, C1, F5..FF) are left out: byte-level
        // vocabularies may lack them (GPT-NeoX) or give their symbols to
        // added tokens (deepseek's "\xc3\xbc" is both U+00FC and byte FC).
        const unsigned b = iter % 2 ? rng() % 256
                                    : static_cast<unsigned char>(" \t\nab'1\xc3\xa9\xe2\x80\x94\xf0\x9f"[rng() % 17]);
        c = static_cast<char>(b == 0xC0 || b == 0xC1 || b >= 0xF5 ? 'x' : b);
      }
      const auto ids = tok->Encode(text, iter % 3 == 0, iter % 5 == 0);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->vocab_size());
      if (tok->kind() != TokenizerKind::kWordPiece &&
          text.find("\xe2\x96\x81") == std::string::npos && iter % 5 != 0) {
        EXPECT_EQ(tok->Decode(ids), text) << name << ": " << Escaped(text);
      }
    }
  }
}

TEST(Tokenizer, LongRunsStayFast) {
  // One 200 KB word, 200 KB of spaces and of newlines: no pre-tokenizer
  // backtracking blow-up, and every byte accounted for.
  for (const std::string& text : {std::string(200000, 'a'), std::string(200000, ' '),
                                  std::string(200000, '\n'), std::string(100000, '7')}) {
    for (const char* name : {"gpt-2", "deepseek-coder", "llama-spm"}) {
      const Tokenizer* tok = LoadVocab(name);
      ASSERT_NE(tok, nullptr);
      const auto t0 = std::chrono::steady_clock::now();
      const auto ids = tok->Encode(text, false);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_LT(s, 3.0) << name;
      EXPECT_EQ(tok->Decode(ids), text) << name;
    }
  }
  auto p = PreTokenizer::ForName("llama-bpe");
  ASSERT_TRUE(p.ok());
  size_t covered = 0;
  const std::string spaces(200000, ' ');
  for (std::string_view piece : p->Split(spaces + "x")) covered += piece.size();
  EXPECT_EQ(covered, spaces.size() + 1);
}

formats::GgufMetadata MiniVocab(std::string model) {
  formats::GgufMetadata md;
  auto str = [](std::string s) {
    return formats::GgufValue{formats::GgufType::kString, std::move(s)};
  };
  md.entries.push_back({"tokenizer.ggml.model", str(std::move(model))});
  formats::GgufArray toks{formats::GgufType::kString, {}};
  for (const char* t : {"<unk>", "<s>", "</s>", "a", "b", "ab"}) toks.items.push_back(str(t));
  md.entries.push_back({"tokenizer.ggml.tokens", {formats::GgufType::kArray, toks}});
  return md;
}

TEST(Tokenizer, FromGgufFileNamesTheFile) {
  auto missing = Tokenizer::FromGgufFile(::testing::TempDir() + "/no-such.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(Msg(missing.status()).find("no-such.gguf"), std::string_view::npos);
  if (!fs::exists(VocabDir())) GTEST_SKIP();
  auto tok = Tokenizer::FromGgufFile(VocabDir() + "/ggml-vocab-starcoder.gguf");
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  EXPECT_EQ((*tok)->pre(), "starcoder");
}

TEST(Tokenizer, RejectsBadMetadata) {
  EXPECT_TRUE(Tokenizer::FromGguf(MiniVocab("llama")).ok());
  auto unknown = Tokenizer::FromGguf(MiniVocab("t5x"), "m.gguf");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(Msg(unknown.status()).find("tokenizer.ggml.model"), std::string_view::npos);
  // gpt2 without merges.
  auto no_merges = Tokenizer::FromGguf(MiniVocab("gpt2"), "m.gguf");
  ASSERT_FALSE(no_merges.ok());
  EXPECT_NE(Msg(no_merges.status()).find("tokenizer.ggml.merges"), std::string_view::npos);
  // A special id out of range.
  auto md = MiniVocab("llama");
  md.entries.push_back({"tokenizer.ggml.bos_token_id", {formats::GgufType::kUint32, uint64_t{99}}});
  auto bad_id = Tokenizer::FromGguf(md, "m.gguf");
  ASSERT_FALSE(bad_id.ok());
  EXPECT_NE(Msg(bad_id.status()).find("bos_token_id"), std::string_view::npos);
  // Scores shorter than the vocabulary.
  auto md2 = MiniVocab("llama");
  formats::GgufArray scores{formats::GgufType::kFloat32, {}};
  scores.items.push_back({formats::GgufType::kFloat32, 0.5});
  md2.entries.push_back({"tokenizer.ggml.scores", {formats::GgufType::kArray, scores}});
  EXPECT_FALSE(Tokenizer::FromGguf(md2, "m.gguf").ok());
  // No tokens at all.
  formats::GgufMetadata empty;
  empty.entries.push_back({"tokenizer.ggml.model", {formats::GgufType::kString, std::string("llama")}});
  EXPECT_FALSE(Tokenizer::FromGguf(empty, "m.gguf").ok());
}

// llama.cpp's converters write 0xFFFFFFFF (or int32 -1) for a special token
// the model lacks; such keys count as absent, every other id out of range is
// still refused.
TEST(Tokenizer, MinusOneSpecialIdsMeanNone) {
  auto md = MiniVocab("llama");
  const uint64_t none = 0xFFFFFFFF;
  for (const char* key : {"tokenizer.ggml.seperator_token_id", "tokenizer.ggml.padding_token_id",
                          "tokenizer.ggml.cls_token_id", "tokenizer.ggml.mask_token_id",
                          "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    md.entries.push_back({key, {formats::GgufType::kUint32, none}});
  md.entries.push_back({"tokenizer.ggml.unknown_token_id", {formats::GgufType::kInt32, int64_t{-1}}});
  auto tok = Tokenizer::FromGguf(md, "m.gguf");
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  EXPECT_EQ((*tok)->sep_id(), kNoToken);
  EXPECT_EQ((*tok)->pad_id(), kNoToken);
  EXPECT_EQ((*tok)->eot_id(), kNoToken);
  EXPECT_EQ((*tok)->bos_id(), 1);  // cls -1 leaves the SentencePiece default
  EXPECT_EQ((*tok)->unk_id(), 0);
  EXPECT_TRUE((*tok)->IsEog(2));
  EXPECT_FALSE((*tok)->IsEog(5));
  for (auto [type, value] : {std::pair{formats::GgufType::kUint32, uint64_t{0xFFFFFFFE}},
                             std::pair{formats::GgufType::kUint32, uint64_t{6}}}) {
    auto bad = MiniVocab("llama");
    bad.entries.push_back({"tokenizer.ggml.seperator_token_id", {type, value}});
    auto r = Tokenizer::FromGguf(bad, "m.gguf");
    ASSERT_FALSE(r.ok()) << value;
    EXPECT_NE(Msg(r.status()).find("m.gguf: tokenizer.ggml.seperator_token_id: not a token id below 6"),
              std::string_view::npos) << Msg(r.status());
  }
  auto neg = MiniVocab("llama");
  neg.entries.push_back({"tokenizer.ggml.eos_token_id", {formats::GgufType::kInt32, int64_t{-2}}});
  EXPECT_FALSE(Tokenizer::FromGguf(neg, "m.gguf").ok());
}

// llama2.c's tok512.bin (../shared/testdata/tinystories): SentencePiece
// merges by score over its vocabulary, byte fallback for what it lacks.
TEST(Tokenizer, Llama2cVocabulary) {
  const std::string path = VocabDir() + "/../tinystories/tok512.bin";
  if (!fs::exists(path)) GTEST_SKIP() << "no " << path;
  const std::string bytes = testing::Slurp(path);
  std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  auto tok = Tokenizer::FromLlama2c(file, 512, path);
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  EXPECT_EQ((*tok)->vocab_size(), 512);
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_EQ((*tok)->unk_id(), 0);
  EXPECT_TRUE((*tok)->add_bos_default());
  EXPECT_EQ((*tok)->TokenText(259), "\xE2\x96\x81t");  // " t" in the file
  const auto ids = (*tok)->Encode("Once upon a time", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  for (std::string s : {"Once upon a time", "Lily saw a big, red ball.", "caf\xC3\xA9 \xE4\xB8\x96\n2"})
    EXPECT_EQ((*tok)->Decode((*tok)->Encode(s, true)), s);
  // The vocabulary size must be the checkpoint's.
  EXPECT_FALSE(Tokenizer::FromLlama2c(file, 511, path).ok());
  // Tokens 1 and 2 must be <s> and </s>.
  std::string swapped = bytes;
  const size_t at = swapped.find("\n<s>\n");
  ASSERT_NE(at, std::string::npos);
  swapped.replace(at, 5, "\n<x>\n");
  auto bad = Tokenizer::FromLlama2c({reinterpret_cast<const uint8_t*>(swapped.data()), swapped.size()}, 512, path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Msg(bad.status()).find("<s> and </s>"), std::string_view::npos) << Msg(bad.status());
}

TEST(Tokenizer, SpmMergesByScoreWithByteFallback) {
  auto md = MiniVocab("llama");
  // Add "▁" so the space prefix has a token, and byte tokens for 'z'.
  formats::GgufArray& toks = std::get<formats::GgufArray>(md.entries[1].value.value);
  toks.items.push_back({formats::GgufType::kString, std::string("\xE2\x96\x81")});
  toks.items.push_back({formats::GgufType::kString, std::string("<0x7A>")});
  formats::GgufArray types{formats::GgufType::kInt32, {}};
  for (int64_t t : {2, 3, 3, 1, 1, 1, 1, 6}) types.items.push_back({formats::GgufType::kInt32, t});
  md.entries.push_back({"tokenizer.ggml.token_type", {formats::GgufType::kArray, types}});
  auto tok = Tokenizer::FromGguf(md);
  ASSERT_TRUE(tok.ok()) << Msg(tok.status());
  // "▁abz": ▁, ab (merged), z via its byte token.
  EXPECT_EQ((*tok)->Encode("abz", true), (std::vector<int32_t>{1, 6, 5, 7}));
  EXPECT_EQ((*tok)->Decode((*tok)->Encode("abz", true)), "abz");
}

// Generated text continues the prompt: "The dog" + " was a big, red ball."
// keeps the space before "was" (SentencePiece drops the leading space only at
// the start of the whole text and after special tokens), as llama.cpp prints.
TEST(Tokenizer, ContinuationKeepsItsLeadingSpace) {
  const Tokenizer* tok = LoadVocab("llama-spm");
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> prompt = tok->Encode("The dog", true);
  const std::vector<int32_t> all = tok->Encode("The dog was a big, red ball.", true);
  ASSERT_GT(all.size(), prompt.size());
  ASSERT_TRUE(std::equal(prompt.begin(), prompt.end(), all.begin()));
  const std::vector<int32_t> rest(all.begin() + prompt.size(), all.end());

  EXPECT_EQ(tok->Decode(rest, false, prompt), " was a big, red ball.");
  EXPECT_EQ(tok->Decode(prompt) + tok->Decode(rest, false, prompt), "The dog was a big, red ball.");
  StreamDecoder dec(*tok, false, prompt);
  std::string streamed;
  for (int32_t id : rest) streamed += dec.Push(id);
  EXPECT_EQ(streamed + dec.Flush(), " was a big, red ball.");

  // At the start of the text, and after a special token (a prompt of BOS
  // alone, a chat turn's header), the leading space is still dropped.
  EXPECT_EQ(tok->Decode(rest), "was a big, red ball.");
  const std::vector<int32_t> bos_only = {tok->bos_id()};
  EXPECT_EQ(tok->Decode(rest, false, bos_only), "was a big, red ball.");
  StreamDecoder fresh(*tok, false, bos_only);
  std::string s2;
  for (int32_t id : rest) s2 += fresh.Push(id);
  EXPECT_EQ(s2 + fresh.Flush(), "was a big, red ball.");
}

}  // namespace
}  // namespace hart::runtime

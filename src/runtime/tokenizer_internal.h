// Internals shared by tokenizer.cc and the per-model encoders
// (tokenizer_spm.cc, tokenizer_bpe.cc, tokenizer_wordpiece.cc).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/pretokenize.h"
#include "runtime/tokenizer.h"

namespace hart::runtime {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct Vocab {
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<TokenType> type;
  StringIdMap to_id;  // empty texts are not in it
  size_t max_token_len = 0;
  // SentencePiece byte-fallback tokens (<0x41>, or the byte itself when a
  // vocabulary spells it so); kNoToken where the vocabulary has none.
  std::array<int32_t, 256> byte_token{};

  int32_t Find(std::string_view s) const {
    auto it = to_id.find(s);
    return it == to_id.end() ? kNoToken : it->second;
  }
  int32_t size() const { return static_cast<int32_t>(text.size()); }
};

// SentencePiece BPE as llama.cpp's llm_tokenizer_spm: start from characters,
// repeatedly merge the adjacent pair whose concatenation is the vocabulary
// entry of best score (leftmost on ties); characters left unmerged that are
// not tokens become their byte tokens. `text` has spaces already as U+2581.
void EncodeSpm(const Vocab& v, std::string_view text, std::vector<int32_t>* out);

// Byte-level BPE: pre-tokenize, map bytes to GPT-2 characters, merge by rank.
class BpeEncoder {
 public:
  // merges: "left right" lines of tokenizer.ggml.merges; rank = line index.
  BpeEncoder(PreTokenizer pre, const std::vector<std::string>& merges);
  void Encode(const Vocab& v, std::string_view text, std::vector<int32_t>* out) const;
  // Approximate heap bytes of the merge ranks (Tokenizer::memory_bytes).
  uint64_t memory_bytes() const;

 private:
  int Rank(std::string_view left, std::string_view right, std::string* key) const;
  PreTokenizer pre_;
  StringIdMap ranks_;
};

// WordPiece as BERT: clean, lowercase and strip accents (NFD), split on
// whitespace and around punctuation and CJK ideographs, then greedy longest
// match per word. Word-initial tokens carry the U+2581 prefix in GGUF
// vocabularies (continuations lost their "##"). A word that cannot be
// covered becomes `unk`.
void EncodeWordPiece(const Vocab& v, int32_t unk, bool lowercase, bool strip_accents,
                     std::string_view text, std::vector<int32_t>* out);

struct TokenizerImpl {
  TokenizerKind kind = TokenizerKind::kSpm;
  std::string pre;
  Vocab vocab;
  std::optional<BpeEncoder> bpe;

  int32_t bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken;
  int32_t unk = kNoToken, sep = kNoToken, pad = kNoToken;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool lowercase = true;       // WordPiece normalizer
  bool strip_accents = true;   // WordPiece normalizer

  // CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first: the order
  // in which their texts are cut out of the input.
  std::vector<int32_t> special;
  std::vector<uint8_t> lstrip, rstrip;  // per token: eat spaces on that side
  std::vector<std::string> piece;       // per token: the bytes it stands for
  std::unordered_set<int32_t> eog;
  std::string chat_template;  // Jinja text, "" when the model has none
};

// Fills to_id, max_token_len and byte_token from text and type.
void IndexVocab(Vocab* v);

// Common last step of every loader, once vocab, ids and flags are set: end
// of generation ids (plus the known end-of-turn texts, which become
// CONTROL), the special-token cut order, strip flags sized to the
// vocabulary, and each token's decoded piece.
void FinishTokenizer(TokenizerImpl* t);

// tokenizer_llama2c.cc: a llama2.c checkpoint's tokenizer file, named in
// the source's metadata and read as its companion file, and the
// checkpoint's vocabulary size, into `in` (llama2c_file, llama2c_vocab_size,
// origin naming the file).
absl::Status ReadLlama2cTokenizerInputs(const WeightSource& source, TokenizerInputs* in);

}  // namespace hart::runtime

// Tokenizer: text <-> token ids for the vocabularies GGUF files carry
// (tokenizer.ggml.*): SentencePiece-style "llama" (score merges, byte
// fallback), byte-level BPE "gpt2" (merge ranks, per-family pre-tokenizer
// named by tokenizer.ggml.pre) and WordPiece "bert"; and for Hugging Face
// tokenizer.json files of model type BPE, mapped onto the same two BPE
// encoders (tokenizer_hf.cc). Behaviour follows
// llama.cpp's llama-vocab so that ids match the published test vectors and
// the HF tokenizers the models were trained with.
//
// Invariants: ids are in [0, vocab_size()); Encode never fails (invalid UTF-8
// is tokenized byte by byte); a Tokenizer is immutable once built and safe to
// use from several threads at once (no caches: every call works on its own
// locals and reads the tables only), so one Tokenizer can be shared by every
// loaded model whose weights carry the same tokenizer (TokenizerInputs'
// digest; app::ModelRegistry shares them so).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/gguf.h"

namespace hart::runtime {

class WeightSource;

enum class TokenizerKind { kSpm, kBpe, kWordPiece };

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3,
  kUserDefined = 4, kUnused = 5, kByte = 6,
};

inline constexpr int32_t kNoToken = -1;

struct TokenizerImpl;

class Tokenizer {
 public:
  // `source` names the file in error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const formats::GgufMetadata& md,
                                                             std::string_view source = "gguf");
  // ReadGgufMetadata(path) then FromGguf.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGgufFile(const std::string& path);
  // A Hugging Face tokenizer.json (model.type "BPE": byte-level as gpt2,
  // llama-3, qwen2; or SentencePiece-style with byte_fallback and U+2581
  // spaces as llama-2), with the texts of tokenizer_config.json (bos/eos,
  // add_bos_token, chat_template) and generation_config.json (eos_token_id)
  // when present ("" when absent). `dir` names the files in errors.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfJson(std::string_view tokenizer_json,
                                                               std::string_view tokenizer_config_json,
                                                               std::string_view generation_config_json,
                                                               std::string_view dir);
  // A llama2.c tokenizer file (formats/llama2c.h) of `vocab_size` tokens:
  // SentencePiece-style (merges by score, <0xXX> byte fallback, a space in
  // front of the text) with <unk>, <s>, </s> at ids 0, 1, 2. `source` names
  // the file in errors.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromLlama2c(std::span<const uint8_t> file,
                                                                int64_t vocab_size, std::string_view source);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // add_bos: prepend BOS (WordPiece: [CLS] ... [SEP]). parse_special: text of
  // CONTROL tokens ("<|eot_id|>") becomes that token; USER_DEFINED tokens are
  // always matched, as HF's added tokens are.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos,
                              bool parse_special = false) const;

  // The bytes of a token: byte tokens (<0x0A>, byte-level BPE symbols) give
  // single bytes, so one piece may be part of a UTF-8 sequence; concatenate
  // pieces (or use StreamDecoder) before treating them as text. CONTROL and
  // UNKNOWN tokens give "" unless render_special. Out-of-range ids give "".
  std::string_view TokenToPiece(int32_t id, bool render_special = false) const;

  // Concatenated pieces. For SentencePiece vocabularies with add_space_prefix
  // the space Encode put in front of the text and after each special token
  // is dropped again (as HF's decode does), so Decode(Encode(s)) == s for
  // text the vocabulary covers.
  std::string Decode(std::span<const int32_t> ids, bool render_special = false) const;
  // Decode of `ids` that continue `context` (the prompt before them): the
  // SentencePiece space is dropped only at the start of the whole text and
  // after special tokens, so a continuation keeps the space that separates
  // it from the prompt ("The dog" + " was"), as llama.cpp prints it.
  std::string Decode(std::span<const int32_t> ids, bool render_special,
                     std::span<const int32_t> context) const;
  // Whether the next text piece after `context` loses its leading space.
  bool StripsLeadingSpaceAfter(std::span<const int32_t> context) const;

  TokenizerKind kind() const;
  // tokenizer.ggml.pre ("" for SentencePiece and WordPiece).
  const std::string& pre() const;
  int32_t vocab_size() const;
  const std::string& TokenText(int32_t id) const;  // as stored in the vocabulary
  TokenType GetTokenType(int32_t id) const;
  std::optional<int32_t> TokenId(std::string_view text) const;  // exact vocabulary entry

  int32_t bos_id() const;  // kNoToken when the vocabulary has none
  int32_t eos_id() const;
  int32_t eot_id() const;
  int32_t unk_id() const;
  int32_t sep_id() const;
  int32_t pad_id() const;
  // Whether the model expects BOS in front of a prompt (tokenizer.ggml.add_bos_token).
  bool add_bos_default() const;
  // SentencePiece's space in front of the text (Decode drops it again).
  bool add_space_prefix() const;
  // The Jinja chat template (tokenizer.chat_template or tokenizer_config.json's
  // chat_template); "" when the model has none.
  const std::string& chat_template() const;
  // End of generation: EOS, EOT, EOM and the end-of-turn tokens of the
  // known chat formats (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, ...).
  bool IsEog(int32_t id) const;

  // Approximate heap bytes this tokenizer holds (vocabulary texts, scores
  // and types, the text->id index, decoded pieces, merge ranks, special-token
  // tables), counted with glibc's allocation granularity; computed once when
  // built. The compiled pre-tokenizer expressions (a few KiB) are left out.
  uint64_t memory_bytes() const { return memory_bytes_; }

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
  std::unique_ptr<TokenizerImpl> impl_;
  uint64_t memory_bytes_ = 0;
};

// Exactly what a model's tokenizer is built from, read from its weights, and
// a digest of it: two sources with equal digests build equal tokenizers, so
// one can serve both (a fine-tune keeps its base's tokenizer).
struct TokenizerInputs {
  enum class Kind { kGguf, kHfJson, kLlama2c };
  Kind kind = Kind::kGguf;
  // kGguf: the source's metadata (borrowed: the source outlives this).
  const formats::GgufMetadata* gguf = nullptr;
  // kHfJson: the texts of tokenizer.json, tokenizer_config.json and
  // generation_config.json ("" when absent).
  std::string tokenizer_json, tokenizer_config_json, generation_config_json;
  // kLlama2c: the tokenizer file's bytes and the checkpoint's vocabulary size.
  std::string llama2c_file;
  int64_t llama2c_vocab_size = 0;
  // Names the files in errors; not part of the digest.
  std::string origin;
  // Hex SHA-256 over the kind and every input above that BuildTokenizer
  // reads (for GGUF: GgufTokenizerDigest).
  std::string digest;
};

// Reads the inputs of `source`'s tokenizer: its GGUF metadata, a llama2.c
// checkpoint's tokenizer file, else the checkpoint's tokenizer.json (+
// tokenizer_config.json, generation_config.json). Unimplemented when the
// source has none of them.
absl::StatusOr<TokenizerInputs> ReadTokenizerInputs(const WeightSource& source);
absl::StatusOr<std::unique_ptr<Tokenizer>> BuildTokenizer(const TokenizerInputs& in);
// ReadTokenizerInputs then BuildTokenizer.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const WeightSource& source);

// Hex SHA-256 over what Tokenizer::FromGguf reads of `md`: every
// tokenizer.* key with its type and value, in file order, and whether
// general.name marks a phi-3 vocabulary (whose added tokens eat the spaces
// after them). Other keys (architecture, sizes, general.*) do not enter it.
std::string GgufTokenizerDigest(const formats::GgufMetadata& md);

// Turns a stream of generated ids into complete UTF-8 text: bytes of a
// character split over several tokens are held back until the character is
// whole, so every returned string can be printed as it comes.
class StreamDecoder {
 public:
  // `context`: the tokens before the stream (the prompt), so generated text
  // is decoded as their continuation (see Tokenizer::Decode); empty when the
  // stream is the start of the text.
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false,
                         std::span<const int32_t> context = {})
      : tok_(tok), render_special_(render_special), strip_(tok.StripsLeadingSpaceAfter(context)) {}
  // Text that became complete with this token (possibly "").
  std::string Push(int32_t id);
  // Whatever is held back at the end (an incomplete sequence is returned
  // as is, so no byte is lost).
  std::string Flush();

 private:
  const Tokenizer& tok_;
  bool render_special_;
  bool strip_;  // drop the leading space of the next text piece (see Decode)
  std::string pending_;
};

}  // namespace hart::runtime

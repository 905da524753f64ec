// Pre-tokenizers of byte-level BPE vocabularies: the regular expressions
// that cut text into words before merges, one list per model family as
// tokenizer.ggml.pre names it. Each expression of a list splits every piece
// left by the previous one; the text between matches stays a piece of its own
// (HF's Split with behaviour Isolated), so the pieces always cover the text.
//
// The published expressions use \p{L}, \p{N}, (?i:...) and lookahead, which
// std::regex lacks. They run unchanged on ICU's regex engine (libicu, in
// Debian and kept current with Unicode), chosen over hand-written splitters
// so each family's list can be checked against its tokenizer.json by eye;
// ICU also gives the NFD normalization and general categories WordPiece needs.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hart::runtime {

struct PreTokenizerImpl;

class PreTokenizer {
 public:
  // For a tokenizer.ggml.pre value; "" means "default". Unknown names are an
  // error (a wrong split silently degrades every generation).
  static absl::StatusOr<PreTokenizer> ForName(std::string_view pre);
  // For explicit expressions in HF syntax (\s means Unicode White_Space).
  static absl::StatusOr<PreTokenizer> FromPatterns(const std::vector<std::string>& patterns,
                                                   bool ignore_merges = false);
  // The expressions of a family (as ForName uses them); nullptr for an
  // unknown name. Tests write them into tokenizer.json files.
  static const std::vector<std::string>* PatternsForName(std::string_view pre);
  // The family name whose expressions are exactly `patterns`, in order
  // (how a tokenizer.json's Split list is recognized); "" when none is.
  static std::string NameForPatterns(const std::vector<std::string>& patterns);

  // Consecutive pieces of `text` (views into it) that together cover it.
  // Invalid UTF-8 bytes are kept, each as a character of its own.
  std::vector<std::string_view> Split(std::string_view text) const;

  // Whether the family tokenizes a whole word that is itself a token as that
  // token without merging (tokenizer.json "ignore_merges": llama 3, tekken).
  bool ignore_merges() const { return ignore_merges_; }

 private:
  std::shared_ptr<const PreTokenizerImpl> impl_;
  bool ignore_merges_ = false;
};

}  // namespace hart::runtime

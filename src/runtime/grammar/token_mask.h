// Token masking for constrained sampling with any tokenizer, and OpenAI's
// logit_bias, as runtime::LogitsProcessor implementations.
//
// TokenIndex holds each vocabulary token's bytes as the generated text sees
// them (byte tokens give one byte, SentencePiece pieces their spaces, merged
// tokens several grammar symbols, possibly part of a UTF-8 character) in a
// trie. GrammarProcessor walks that trie from the grammar's current state
// each step, feeding a byte per edge and pruning a subtree as soon as no
// stack survives, so a step costs the trie nodes the grammar allows, not
// vocab x token length. End-of-generation tokens are allowed only where the
// value is complete; control, unknown and user-defined tokens (no text, or a
// text the grammar did not see) never are. With a token budget (max_tokens,
// or the context left) the mask also keeps, near the end, only tokens after
// which the value can still be completed in the tokens that remain.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/generate.h"
#include "runtime/grammar/json_grammar.h"
#include "runtime/tokenizer.h"

namespace hart::runtime::grammar {

class TokenIndex {
 public:
  enum Kind : uint8_t { kText, kEog, kBanned };
  // `bytes[i]`: token i's text; `kinds[i]` how it is treated.
  TokenIndex(std::vector<std::string> bytes, std::vector<Kind> kinds);
  static std::shared_ptr<const TokenIndex> FromTokenizer(const Tokenizer& tok);

  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  Kind kind(int32_t id) const { return kinds_[id]; }

 private:
  friend class GrammarProcessor;
  // A trie, flat: node n's children are edges [child_begin[n], child_begin[n+1]),
  // its tokens ids [tok_begin[n], tok_begin[n+1]).
  struct Trie {
    std::vector<uint32_t> child_begin, tok_begin;
    std::vector<uint8_t> edge_byte;
    std::vector<uint32_t> edge_node;
    std::vector<int32_t> tok_ids;
    void Build(const std::vector<std::string>& bytes, std::vector<int32_t> ids);
  };
  std::vector<std::string> bytes_;
  std::vector<Kind> kinds_;
  std::vector<int32_t> eog_;           // end-of-generation tokens
  std::vector<int32_t> space_first_;   // text tokens whose bytes start with ' '
  Trie all_;                           // every text token
  // Inside a string, tokens of whole UTF-8 characters without '"', '\\' or
  // control bytes leave the state as it was: they are allowed as a block,
  // and only the rest (`special_`) is walked.
  std::vector<int32_t> plain_;
  Trie special_;
  size_t max_len_ = 0;
};

class GrammarProcessor : public LogitsProcessor {
 public:
  // strip_first_space: the generated text drops the leading space of its
  // first piece (runtime::Tokenizer::StripsLeadingSpaceAfter(prompt)).
  // budget: tokens this generation may sample at most; < 0: unbounded.
  GrammarProcessor(std::shared_ptr<const JsonGrammar> grammar, std::shared_ptr<const TokenIndex> index,
                   bool strip_first_space, int64_t budget);

  absl::Status Apply(std::span<float> logits) override;
  absl::Status Accept(int32_t token) override;
  bool Finished() const override;

  // Feeds bytes the output already holds (what opened a call before this
  // processor took over); false, and nothing changed, when the grammar
  // does not accept them.
  bool Prime(std::string_view bytes);
  // The bytes accepted so far.
  const std::string& text() const { return text_; }
  // Ids the last Apply allowed (for tests).
  std::vector<int32_t> Allowed() const;

 private:
  void Walk(const TokenIndex::Trie& t, uint32_t node, size_t depth, const State& st);
  std::shared_ptr<const JsonGrammar> g_;
  std::shared_ptr<const TokenIndex> ix_;
  bool strip_pending_;
  int64_t budget_;
  int64_t accepted_ = 0;
  bool ended_ = false;
  State state_;
  std::string text_;
  std::vector<State> scratch_;  // one per trie depth
  std::vector<std::pair<int32_t, uint64_t>> cand_;  // allowed token, bytes still needed after it
  std::vector<uint8_t> allowed_;
};

// A grammar that applies only after a trigger: free text until the output
// ends with `trigger` (tool_choice "auto": "<tool_call>"), then the grammar
// (the call object) until it is complete, then free again (the model closes
// the call and may open another). `piece(id)` is a token's text as the
// output shows it (special tokens included, e.g. an added <tool_call>);
// strip_after_trigger: the text after it drops a leading space (a
// SentencePiece vocabulary after a special token).
class TriggeredGrammarProcessor : public LogitsProcessor {
 public:
  TriggeredGrammarProcessor(std::shared_ptr<const JsonGrammar> grammar, std::shared_ptr<const TokenIndex> index,
                            std::string trigger, std::function<std::string(int32_t)> piece,
                            bool strip_after_special, int64_t budget);
  absl::Status Apply(std::span<float> logits) override;
  absl::Status Accept(int32_t token) override;
  bool Finished() const override { return false; }
  bool active() const { return active_ != nullptr; }

 private:
  std::shared_ptr<const JsonGrammar> g_;
  std::shared_ptr<const TokenIndex> ix_;
  std::string trigger_;
  std::function<std::string(int32_t)> piece_;
  bool strip_after_special_;
  int64_t budget_;
  int64_t accepted_ = 0;
  std::string tail_;  // the end of the free text, to find the trigger
  std::unique_ptr<GrammarProcessor> active_;
};

// A grammar that applies when the output opens with a call (tool_choice
// "auto" in families whose call is the whole reply: llama 3.1, mistral).
// The output is free text unless its first visible characters (after
// whitespace) are `tag` (<|python_tag|>, [TOOL_CALLS]), after which the
// grammar applies, or `json_open` ({, [), the grammar's own first byte,
// from which it applies. While that is undecided, a token is allowed only
// when the output stays a possible text, a possible start of the tag, or a
// valid start of the grammar (and the output does not end on a bare start of
// the tag); once the call is complete, Finished() (the
// reply is the call). `piece(id)` is a token's text with special tokens
// rendered.
class OpeningGrammarProcessor : public LogitsProcessor {
 public:
  OpeningGrammarProcessor(std::shared_ptr<const JsonGrammar> grammar, std::shared_ptr<const TokenIndex> index,
                          std::string tag, std::string json_open, std::function<std::string(int32_t)> piece,
                          bool strip_after_special, int64_t budget);
  absl::Status Apply(std::span<float> logits) override;
  absl::Status Accept(int32_t token) override;
  bool Finished() const override { return active_ != nullptr && active_->Finished(); }
  bool active() const { return active_ != nullptr; }

 private:
  enum Verdict { kText, kUndecided, kCall, kBad };
  // What the output would be with `head` (its leading whitespace dropped);
  // for kCall, the grammar's part of it in *rest.
  Verdict Judge(std::string_view head, std::string_view* rest) const;
  std::shared_ptr<const JsonGrammar> g_;
  std::shared_ptr<const TokenIndex> ix_;
  std::string tag_, open_;
  std::function<std::string(int32_t)> piece_;
  bool strip_after_special_;
  int64_t budget_;
  int64_t accepted_ = 0;
  bool text_ = false;  // decided: free text
  std::string head_;   // the output so far, while undecided
  std::unique_ptr<GrammarProcessor> active_;
};

// OpenAI's logit_bias: added to the token's logit; -100 bans it, +100
// (beside a finite rest) all but forces it.
class LogitBiasProcessor : public LogitsProcessor {
 public:
  explicit LogitBiasProcessor(std::map<int32_t, float> bias) : bias_(std::move(bias)) {}
  absl::Status Apply(std::span<float> logits) override;
  absl::Status Accept(int32_t) override { return absl::OkStatus(); }

 private:
  std::map<int32_t, float> bias_;
};

}  // namespace hart::runtime::grammar

#include "runtime/grammar/token_mask.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/status.h"

namespace hart::runtime::grammar {
namespace {

// Whole UTF-8 characters (as the string state checks them), none of them
// '"', '\\' or a control byte: inside a string such a token changes nothing.
bool PlainInString(std::string_view s) {
  static const std::shared_ptr<const JsonGrammar> g = [] {
    JsonGrammar::Builder bb;
    auto id = bb.Schema(nlohmann::json{{"type", "string"}});
    return *bb.Build(*id);
  }();
  static const State inside = [] {
    State st = g->Start(), tmp;
    g->AdvanceBytes(&st, "\"", &tmp);
    return st;
  }();
  State st = inside, tmp;
  return g->AdvanceBytes(&st, s, &tmp) && st.frames == inside.frames && st.ends == inside.ends;
}

}  // namespace

TokenIndex::TokenIndex(std::vector<std::string> bytes, std::vector<Kind> kinds)
    : bytes_(std::move(bytes)), kinds_(std::move(kinds)) {
  kinds_.resize(bytes_.size(), kBanned);
  std::vector<int32_t> order;
  for (int32_t i = 0; i < size(); ++i) {
    if (kinds_[i] == kEog) eog_.push_back(i);
    if (kinds_[i] == kText && bytes_[i].empty()) kinds_[i] = kBanned;
    if (kinds_[i] != kText) continue;
    order.push_back(i);
    if (bytes_[i][0] == ' ') space_first_.push_back(i);
    max_len_ = std::max(max_len_, bytes_[i].size());
  }
  all_.Build(bytes_, order);
  std::vector<int32_t> special;
  for (int32_t id : order) (PlainInString(bytes_[id]) ? plain_ : special).push_back(id);
  special_.Build(bytes_, std::move(special));
}

void TokenIndex::Trie::Build(const std::vector<std::string>& bytes, std::vector<int32_t> order) {
  // Sorted by bytes, the trie comes out in preorder: a stack of the nodes
  // on the path of the previous token.
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes[a] < bytes[b]; });
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> children;
    std::vector<int32_t> toks;
  };
  std::vector<Node> nodes(1);
  std::vector<uint32_t> path = {0};  // path[d]: the node at depth d of the previous token
  std::string_view prev;
  for (int32_t id : order) {
    const std::string& s = bytes[id];
    size_t common = 0;
    while (common < s.size() && common < prev.size() && s[common] == prev[common]) ++common;
    path.resize(common + 1);
    for (size_t d = common; d < s.size(); ++d) {
      const uint32_t child = static_cast<uint32_t>(nodes.size());
      nodes.emplace_back();
      nodes[path[d]].children.push_back({static_cast<uint8_t>(s[d]), child});
      path.push_back(child);
    }
    nodes[path[s.size()]].toks.push_back(id);
    prev = s;
  }
  child_begin.reserve(nodes.size() + 1);
  tok_begin.reserve(nodes.size() + 1);
  for (const Node& n : nodes) {
    child_begin.push_back(static_cast<uint32_t>(edge_byte.size()));
    tok_begin.push_back(static_cast<uint32_t>(tok_ids.size()));
    for (auto [b, c] : n.children) edge_byte.push_back(b), edge_node.push_back(c);
    tok_ids.insert(tok_ids.end(), n.toks.begin(), n.toks.end());
  }
  child_begin.push_back(static_cast<uint32_t>(edge_byte.size()));
  tok_begin.push_back(static_cast<uint32_t>(tok_ids.size()));
}

std::shared_ptr<const TokenIndex> TokenIndex::FromTokenizer(const Tokenizer& tok) {
  std::vector<std::string> bytes(tok.vocab_size());
  std::vector<Kind> kinds(tok.vocab_size(), kText);
  for (int32_t i = 0; i < tok.vocab_size(); ++i) {
    const TokenType t = tok.GetTokenType(i);
    if (tok.IsEog(i)) {
      kinds[i] = kEog;
    } else if (t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined ||
               t == TokenType::kUnused) {
      kinds[i] = kBanned;
    } else {
      bytes[i] = std::string(tok.TokenToPiece(i, /*render_special=*/false));
    }
  }
  return std::make_shared<TokenIndex>(std::move(bytes), std::move(kinds));
}

GrammarProcessor::GrammarProcessor(std::shared_ptr<const JsonGrammar> grammar,
                                   std::shared_ptr<const TokenIndex> index, bool strip_first_space,
                                   int64_t budget)
    : g_(std::move(grammar)), ix_(std::move(index)), strip_pending_(strip_first_space), budget_(budget) {
  state_ = g_->Start();
  scratch_.resize(ix_->max_len_ + 2);
}

void GrammarProcessor::Walk(const TokenIndex::Trie& t, uint32_t node, size_t depth, const State& st) {
  if (t.tok_begin[node] != t.tok_begin[node + 1]) {
    const uint64_t need = budget_ >= 0 ? g_->Remaining(st) : 0;
    for (uint32_t k = t.tok_begin[node]; k < t.tok_begin[node + 1]; ++k) cand_.push_back({t.tok_ids[k], need});
  }
  State& next = scratch_[depth + 1];
  for (uint32_t e = t.child_begin[node]; e < t.child_begin[node + 1]; ++e) {
    if (!g_->Advance(st, t.edge_byte[e], &next)) continue;
    Walk(t, t.edge_node[e], depth + 1, next);
  }
}

absl::Status GrammarProcessor::Apply(std::span<float> logits) {
  cand_.clear();
  if (!ended_ && !g_->Done(state_)) {
    if (g_->InStringContent(state_)) {
      const uint64_t need = budget_ >= 0 ? g_->Remaining(state_) : 0;
      for (int32_t id : ix_->plain_) cand_.push_back({id, need});
      Walk(ix_->special_, 0, 0, state_);
    } else {
      Walk(ix_->all_, 0, 0, state_);
    }
    if (strip_pending_) {
      // The first piece loses its leading space: judge those tokens by the rest.
      std::erase_if(cand_, [&](const auto& c) { return ix_->bytes(c.first)[0] == ' '; });
      State s, tmp;
      for (int32_t id : ix_->space_first_) {
        const std::string& b = ix_->bytes(id);
        if (b.size() < 2) continue;
        s = state_;
        if (g_->AdvanceBytes(&s, std::string_view(b).substr(1), &tmp))
          cand_.push_back({id, budget_ >= 0 ? g_->Remaining(s) : 0});
      }
    }
  }
  const bool can_end = g_->Done(state_) || g_->CanEnd(state_);
  if (budget_ >= 0) {
    // Tokens after this one: each of the bytes still needed has a one-byte
    // token of its own at worst. Near the budget keep only tokens that leave
    // the value completable; if none does (the budget was too small from the
    // start), the output will end cut off, finish_reason "length".
    const int64_t after = budget_ - accepted_ - 1;
    const bool any_fits = std::any_of(cand_.begin(), cand_.end(), [&](const auto& c) {
      return static_cast<int64_t>(c.second) <= after;
    });
    if (any_fits)
      std::erase_if(cand_, [&](const auto& c) { return static_cast<int64_t>(c.second) > after; });
  }
  allowed_.assign(logits.size(), 0);
  size_t n = 0;
  for (const auto& [id, need] : cand_)
    if (static_cast<size_t>(id) < logits.size()) allowed_[id] = 1, ++n;
  if (can_end)
    for (int32_t id : ix_->eog_)
      if (static_cast<size_t>(id) < logits.size()) allowed_[id] = 1, ++n;
  if (n == 0) {
    const size_t from = text_.size() > 40 ? text_.size() - 40 : 0;
    return absl::FailedPreconditionError(fmt::format(
        "structured output: no token of the vocabulary continues the JSON after byte {} (...{})", text_.size(),
        text_.substr(from)));
  }
  constexpr float kNeg = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i)
    if (!allowed_[i]) logits[i] = kNeg;
  return absl::OkStatus();
}

absl::Status GrammarProcessor::Accept(int32_t token) {
  if (token < 0 || token >= ix_->size()) return absl::InvalidArgumentError(fmt::format("token {} out of range", token));
  if (ix_->kind(token) == TokenIndex::kEog) {
    if (!g_->Done(state_) && !g_->CanEnd(state_))
      return absl::FailedPreconditionError("structured output: end of generation before the JSON is complete");
    ended_ = true;
    ++accepted_;
    return absl::OkStatus();
  }
  std::string_view b = ix_->bytes(token);
  if (ix_->kind(token) != TokenIndex::kText || b.empty())
    return absl::FailedPreconditionError(fmt::format("structured output: token {} has no text", token));
  if (strip_pending_ && b[0] == ' ') b.remove_prefix(1);
  strip_pending_ = false;
  State tmp;
  if (!g_->AdvanceBytes(&state_, b, &tmp))
    return absl::FailedPreconditionError(fmt::format(
        "structured output: token {} ('{}') does not continue the JSON after byte {}", token, std::string(b),
        text_.size()));
  text_.append(b);
  ++accepted_;
  return absl::OkStatus();
}

bool GrammarProcessor::Prime(std::string_view bytes) {
  State s = state_, tmp;
  if (!g_->AdvanceBytes(&s, bytes, &tmp)) return false;
  state_ = std::move(s);
  text_.append(bytes);
  strip_pending_ = strip_pending_ && bytes.empty();
  return true;
}

bool GrammarProcessor::Finished() const { return ended_ || g_->Done(state_); }

std::vector<int32_t> GrammarProcessor::Allowed() const {
  std::vector<int32_t> out;
  for (size_t i = 0; i < allowed_.size(); ++i)
    if (allowed_[i]) out.push_back(static_cast<int32_t>(i));
  return out;
}

TriggeredGrammarProcessor::TriggeredGrammarProcessor(std::shared_ptr<const JsonGrammar> grammar,
                                                     std::shared_ptr<const TokenIndex> index, std::string trigger,
                                                     std::function<std::string(int32_t)> piece,
                                                     bool strip_after_special, int64_t budget)
    : g_(std::move(grammar)),
      ix_(std::move(index)),
      trigger_(std::move(trigger)),
      piece_(std::move(piece)),
      strip_after_special_(strip_after_special),
      budget_(budget) {}

absl::Status TriggeredGrammarProcessor::Apply(std::span<float> logits) {
  return active_ ? active_->Apply(logits) : absl::OkStatus();
}

absl::Status TriggeredGrammarProcessor::Accept(int32_t token) {
  ++accepted_;
  if (active_) {
    RETURN_IF_ERROR(active_->Accept(token));
    if (active_->Finished()) active_.reset();
    return absl::OkStatus();
  }
  const TokenIndex::Kind kind = token >= 0 && token < ix_->size() ? ix_->kind(token) : TokenIndex::kBanned;
  tail_ += piece_(token);
  if (tail_.size() > 4 * trigger_.size()) tail_.erase(0, tail_.size() - 2 * trigger_.size());
  if (!trigger_.empty() && tail_.ends_with(trigger_)) {
    tail_.clear();
    // After a special token a SentencePiece text loses its leading space.
    const bool strip = strip_after_special_ && kind == TokenIndex::kBanned;
    const int64_t left = budget_ < 0 ? -1 : std::max<int64_t>(0, budget_ - accepted_);
    active_ = std::make_unique<GrammarProcessor>(g_, ix_, strip, left);
  }
  return absl::OkStatus();
}

OpeningGrammarProcessor::OpeningGrammarProcessor(std::shared_ptr<const JsonGrammar> grammar,
                                                 std::shared_ptr<const TokenIndex> index, std::string tag,
                                                 std::string json_open, std::function<std::string(int32_t)> piece,
                                                 bool strip_after_special, int64_t budget)
    : g_(std::move(grammar)),
      ix_(std::move(index)),
      tag_(std::move(tag)),
      open_(std::move(json_open)),
      piece_(std::move(piece)),
      strip_after_special_(strip_after_special),
      budget_(budget) {}

namespace {
std::string_view TrimLeft(std::string_view s) {
  size_t i = s.find_first_not_of(" \t\r\n");
  return i == std::string_view::npos ? std::string_view() : s.substr(i);
}
}  // namespace

OpeningGrammarProcessor::Verdict OpeningGrammarProcessor::Judge(std::string_view head, std::string_view* rest) const {
  head = TrimLeft(head);
  if (head.empty()) return kUndecided;
  std::string_view body;
  if (!tag_.empty() && head.size() <= tag_.size() && std::string_view(tag_).starts_with(head)) {
    if (head.size() < tag_.size()) return kUndecided;  // maybe the tag (or, for "[", the array)
    body = {};
  } else if (!tag_.empty() && head.starts_with(tag_)) {
    body = TrimLeft(head.substr(tag_.size()));
  } else if (!open_.empty() && head.starts_with(open_)) {
    body = head;
  } else {
    return kText;
  }
  State s = g_->Start(), tmp;
  if (!g_->AdvanceBytes(&s, body, &tmp)) return kBad;
  if (rest) *rest = body;
  return kCall;
}

absl::Status OpeningGrammarProcessor::Apply(std::span<float> logits) {
  if (active_) return active_->Apply(logits);
  if (text_) return absl::OkStatus();
  // Undecided: ban the tokens that would open a call wrongly.
  constexpr float kNeg = -std::numeric_limits<float>::infinity();
  const bool blank = TrimLeft(head_).empty();
  std::string h;
  for (int32_t id = 0; id < ix_->size() && static_cast<size_t>(id) < logits.size(); ++id) {
    const TokenIndex::Kind kind = ix_->kind(id);
    if (kind == TokenIndex::kEog) {
      // Not ended on a bare start of the tag ("[", "<|py"): it opens a call or turns into text.
      if (!blank) logits[id] = kNeg;
      continue;
    }
    std::string special;
    std::string_view b;
    if (kind == TokenIndex::kText) {
      b = ix_->bytes(id);
    } else {
      special = piece_(id);
      b = special;
    }
    // Only a piece whose first visible byte may open a call needs a look.
    std::string_view first = blank ? TrimLeft(b) : TrimLeft(head_);
    if (first.empty()) continue;
    const char c = first[0];
    if ((tag_.empty() || c != tag_[0]) && (open_.empty() || c != open_[0])) continue;
    h.assign(head_).append(b);
    if (Judge(h, nullptr) == kBad) logits[id] = kNeg;
  }
  return absl::OkStatus();
}

absl::Status OpeningGrammarProcessor::Accept(int32_t token) {
  ++accepted_;
  if (active_) return active_->Accept(token);
  if (text_) return absl::OkStatus();
  const TokenIndex::Kind kind = token >= 0 && token < ix_->size() ? ix_->kind(token) : TokenIndex::kBanned;
  if (kind == TokenIndex::kEog) return absl::OkStatus();
  head_ += kind == TokenIndex::kText ? std::string(ix_->bytes(token)) : piece_(token);
  std::string_view body;
  switch (Judge(head_, &body)) {
    case kUndecided: return absl::OkStatus();
    case kText:
      text_ = true;
      head_.clear();
      return absl::OkStatus();
    case kBad:
      return absl::FailedPreconditionError(fmt::format("tool call: token {} does not continue the call after '{}'",
                                                       token, head_));
    case kCall: break;
  }
  const int64_t left = budget_ < 0 ? -1 : std::max<int64_t>(0, budget_ - accepted_);
  // Right after a special tag a SentencePiece text loses its leading space.
  const bool strip = strip_after_special_ && body.empty() && kind != TokenIndex::kText;
  active_ = std::make_unique<GrammarProcessor>(g_, ix_, strip, left);
  if (!active_->Prime(body)) return absl::InternalError("tool call: the judged opening did not prime the grammar");
  return absl::OkStatus();
}

absl::Status LogitBiasProcessor::Apply(std::span<float> logits) {
  for (const auto& [id, bias] : bias_) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
    if (bias <= -100) {
      logits[id] = -std::numeric_limits<float>::infinity();
    } else {
      logits[id] += bias;
    }
  }
  return absl::OkStatus();
}

}  // namespace hart::runtime::grammar

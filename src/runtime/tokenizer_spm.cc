#include <queue>

#include "runtime/tokenizer_internal.h"
#include "runtime/tokenizer_unicode.h"

namespace hart::runtime {
namespace {

struct Symbol {
  int prev;
  int next;
  size_t start;  // byte offset in the text
  size_t n;      // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of left + right when queued; a mismatch marks it stale
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

// SentencePiece never segments into control, unknown, byte or unused pieces.
bool Mergeable(TokenType t) {
  return t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUndefined;
}

}  // namespace

void EncodeSpm(const Vocab& v, std::string_view text, std::vector<int32_t>* out) {
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  // Symbols are characters; each byte of malformed UTF-8 is a symbol of its
  // own, so a stray lead byte never swallows the U+2581 after it.
  for (size_t off = 0; off < text.size();) {
    size_t n;
    unicode::DecodeUtf8(text, off, &n);
    const int i = static_cast<int>(sym.size());
    sym.push_back({i - 1, off + n == text.size() ? -1 : i + 1, off, n});
    off += n;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = sym[left].n + sym[right].n;
    const int32_t id = v.Find(text.substr(sym[left].start, size));
    if (id == kNoToken || !Mergeable(v.type[id])) return;
    queue.push({left, right, v.score[id], size});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
    const std::string_view s = text.substr(sym[i].start, sym[i].n);
    const int32_t id = v.Find(s);
    if (id != kNoToken) {
      out->push_back(id);
      continue;
    }
    for (char c : s) {
      const int32_t bt = v.byte_token[static_cast<uint8_t>(c)];
      if (bt != kNoToken) out->push_back(bt);
    }
  }
}

}  // namespace hart::runtime

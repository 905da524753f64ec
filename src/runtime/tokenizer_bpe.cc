#include <queue>

#include "runtime/tokenizer_internal.h"
#include "runtime/tokenizer_unicode.h"

namespace hart::runtime {
namespace {

struct Symbol {
  int prev;
  int next;
  size_t start;
  size_t n;
};

struct Bigram {
  int left;
  int right;
  int rank;
  size_t left_n;   // sizes when queued: a merge since then makes it stale
  size_t right_n;
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

BpeEncoder::BpeEncoder(PreTokenizer pre, const std::vector<std::string>& merges)
    : pre_(std::move(pre)) {
  ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    // The separator is the first space after the first character, so a
    // merge whose left part is itself a space still parses.
    const std::string& m = merges[i];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) continue;
    ranks_.emplace(m, static_cast<int32_t>(i));
  }
}

int BpeEncoder::Rank(std::string_view left, std::string_view right, std::string* key) const {
  key->assign(left);
  key->push_back(' ');
  key->append(right);
  auto it = ranks_.find(*key);
  return it == ranks_.end() ? -1 : it->second;
}

void BpeEncoder::Encode(const Vocab& v, std::string_view text, std::vector<int32_t>* out) const {
  std::string word;
  std::string key;
  std::vector<Symbol> sym;
  for (std::string_view raw : pre_.Split(text)) {
    word.clear();
    for (char c : raw) word += unicode::ByteToBpeChar(static_cast<uint8_t>(c));

    if (pre_.ignore_merges()) {
      const int32_t id = v.Find(word);
      if (id != kNoToken) {
        out->push_back(id);
        continue;
      }
    }

    sym.clear();
    for (size_t off = 0; off < word.size();) {
      const size_t n = unicode::Utf8LenFromLead(static_cast<uint8_t>(word[off]));
      const int i = static_cast<int>(sym.size());
      sym.push_back({i - 1, off + n >= word.size() ? -1 : i + 1, off, n});
      off += n;
    }
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    const std::string_view w(word);
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const int rank = Rank(w.substr(sym[left].start, sym[left].n),
                            w.substr(sym[right].start, sym[right].n), &key);
      if (rank >= 0) queue.push({left, right, rank, sym[left].n, sym[right].n});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.n == 0 || r.n == 0 || l.n != b.left_n || r.n != b.right_n) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }

    for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
      const std::string_view s = w.substr(sym[i].start, sym[i].n);
      const int32_t id = v.Find(s);
      if (id != kNoToken) {
        out->push_back(id);
        continue;
      }
      // A merge result missing from the vocabulary: fall back to the single
      // characters, which byte-level vocabularies all contain.
      for (size_t off = 0; off < s.size();) {
        const size_t n = unicode::Utf8LenFromLead(static_cast<uint8_t>(s[off]));
        const int32_t cid = v.Find(s.substr(off, n));
        if (cid != kNoToken) out->push_back(cid);
        off += n;
      }
    }
  }
}

}  // namespace hart::runtime

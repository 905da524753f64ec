#include "runtime/tokenizer_internal.h"
#include "runtime/tokenizer_unicode.h"

namespace hart::runtime {
namespace {

// BERT's "Chinese character" blocks, as HF's BertPreTokenizer lists them
// (including its 0x2B920 start of extension E).
bool IsCjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

std::vector<std::string> Words(std::string_view text, bool lowercase, bool strip_accents) {
  std::u32string cps;
  if (strip_accents) {
    cps = unicode::Nfd(text);
  } else {
    for (size_t pos = 0; pos < text.size();) {
      size_t len;
      cps.push_back(unicode::DecodeUtf8(text, pos, &len));
      pos += len;
    }
  }
  std::vector<std::string> words(1);
  for (uint32_t cp : cps) {
    if (unicode::IsWhitespace(cp)) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    if (cp == 0 || cp == unicode::kReplacement || unicode::IsControl(cp)) continue;
    if (strip_accents && unicode::IsAccentMark(cp)) continue;
    std::string s;
    unicode::AppendUtf8(lowercase ? unicode::ToLower(cp) : cp, &s);
    if (unicode::IsPunctuation(cp) || (cp < 0x7F && unicode::IsSymbol(cp)) || IsCjk(cp)) {
      if (!words.back().empty()) words.emplace_back();
      words.back() = std::move(s);
      words.emplace_back();
    } else {
      words.back() += s;
    }
  }
  if (words.back().empty()) words.pop_back();
  return words;
}

}  // namespace

void EncodeWordPiece(const Vocab& v, int32_t unk, bool lowercase, bool strip_accents,
                     std::string_view text, std::vector<int32_t>* out) {
  for (const std::string& w : Words(text, lowercase, strip_accents)) {
    const std::string word = "\xE2\x96\x81" + w;
    const size_t n = word.size();
    const size_t start = out->size();
    for (size_t i = 0; i < n;) {
      size_t j = std::min(n, i + v.max_token_len);
      int32_t id = kNoToken;
      for (; j > i; --j) {
        id = v.Find(std::string_view(word).substr(i, j - i));
        if (id != kNoToken) break;
      }
      if (id == kNoToken) {
        out->resize(start);
        break;
      }
      out->push_back(id);
      i = j;
    }
    if (out->size() == start && unk != kNoToken) out->push_back(unk);
  }
}

}  // namespace hart::runtime

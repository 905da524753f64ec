// Unicode helpers of the tokenizers: UTF-8 decoding that never fails, the
// GPT-2 byte <-> character table of byte-level BPE, and the character
// classes WordPiece's normalizer needs (through ICU).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hart::runtime::unicode {

inline constexpr uint32_t kReplacement = 0xFFFD;

// Decodes the code point at text[pos]. Sets *len to the bytes it spans (>= 1).
// A malformed or truncated sequence, an overlong form or a surrogate yields
// kReplacement with *len = 1, so every byte is consumed exactly once.
uint32_t DecodeUtf8(std::string_view text, size_t pos, size_t* len);

// Appends the UTF-8 form of cp (cp <= 0x10FFFF, not a surrogate).
void AppendUtf8(uint32_t cp, std::string* out);

// Length of the UTF-8 sequence that `lead` starts, from its high bits alone
// (1 for continuation bytes), as SentencePiece splits text into symbols.
inline size_t Utf8LenFromLead(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Bytes at the end of `s` that start a UTF-8 sequence not yet complete
// (0 when s ends on a character boundary or with bytes that can never
// become a character).
size_t IncompleteUtf8Suffix(std::string_view s);

// GPT-2's reversible byte -> printable character map: bytes that are
// printable Latin-1 map to themselves, the other 68 to U+0100 onwards.
const std::string& ByteToBpeChar(uint8_t b);  // UTF-8 of the character
// The inverse; -1 for a character that is not one of the 256.
int BpeCharToByte(uint32_t cp);

// Character classes with ICU's Unicode data.
bool IsWhitespace(uint32_t cp);   // White_Space
bool IsControl(uint32_t cp);      // C* (Cc, Cf, Co, Cs, Cn) as HF's BertNormalizer
bool IsPunctuation(uint32_t cp);  // P*
bool IsSymbol(uint32_t cp);       // S*
bool IsAccentMark(uint32_t cp);   // Mn
uint32_t ToLower(uint32_t cp);    // simple lowercase mapping
// Canonical decomposition (NFD) of UTF-8 text; invalid bytes become U+FFFD.
std::u32string Nfd(std::string_view text);

}  // namespace hart::runtime::unicode

#include "runtime/tokenizer_unicode.h"

#include <array>

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

namespace hart::runtime::unicode {

uint32_t DecodeUtf8(std::string_view text, size_t pos, size_t* len) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  const uint8_t b0 = s[pos];
  *len = 1;
  if (b0 < 0x80) return b0;
  size_t need;
  uint32_t cp;
  uint32_t min;
  if ((b0 & 0xE0) == 0xC0) { need = 1; cp = b0 & 0x1F; min = 0x80; }
  else if ((b0 & 0xF0) == 0xE0) { need = 2; cp = b0 & 0x0F; min = 0x800; }
  else if ((b0 & 0xF8) == 0xF0) { need = 3; cp = b0 & 0x07; min = 0x10000; }
  else return kReplacement;
  if (pos + need >= n) return kReplacement;  // truncated
  for (size_t i = 1; i <= need; ++i) {
    const uint8_t b = s[pos + i];
    if ((b & 0xC0) != 0x80) return kReplacement;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kReplacement;
  *len = need + 1;
  return cp;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t IncompleteUtf8Suffix(std::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation: the lead is further back
    size_t want;
    if ((b & 0xE0) == 0xC0) want = 2;
    else if ((b & 0xF0) == 0xE0) want = 3;
    else if ((b & 0xF8) == 0xF0) want = 4;
    else return 0;  // ASCII or an invalid lead
    return want > back ? back : 0;
  }
  return 0;
}

namespace {

struct ByteTable {
  std::array<std::string, 256> to_char;
  std::array<int16_t, 512> from_cp;  // every mapped character is below U+0200
};

const ByteTable& Table() {
  static const ByteTable t = [] {
    ByteTable t;
    t.from_cp.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : next++;
      AppendUtf8(cp, &t.to_char[b]);
      t.from_cp[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

const std::string& ByteToBpeChar(uint8_t b) { return Table().to_char[b]; }

int BpeCharToByte(uint32_t cp) { return cp < 512 ? Table().from_cp[cp] : -1; }

bool IsWhitespace(uint32_t cp) { return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE); }

bool IsControl(uint32_t cp) {
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_CONTROL_CHAR: case U_FORMAT_CHAR: case U_PRIVATE_USE_CHAR:
    case U_SURROGATE: case U_UNASSIGNED:
      return true;
    default:
      return false;
  }
}

bool IsPunctuation(uint32_t cp) {
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_P_MASK) != 0;
}

bool IsSymbol(uint32_t cp) { return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_S_MASK) != 0; }

bool IsAccentMark(uint32_t cp) { return u_charType(static_cast<UChar32>(cp)) == U_NON_SPACING_MARK; }

uint32_t ToLower(uint32_t cp) { return static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cp))); }

std::u32string Nfd(std::string_view text) {
  icu::UnicodeString u;
  for (size_t pos = 0; pos < text.size();) {
    size_t len;
    u.append(static_cast<UChar32>(DecodeUtf8(text, pos, &len)));
    pos += len;
  }
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(err);
  icu::UnicodeString norm = U_SUCCESS(err) ? nfd->normalize(u, err) : u;
  if (U_FAILURE(err)) norm = u;
  std::u32string out;
  out.reserve(norm.length());
  for (int32_t i = 0; i < norm.length();) {
    const UChar32 c = norm.char32At(i);
    out.push_back(static_cast<uint32_t>(c));
    i += U16_LENGTH(c);
  }
  return out;
}

}  // namespace hart::runtime::unicode

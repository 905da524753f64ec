#include "core/quote.h"

#include <cstdint>

#include "fmt/format.h"

namespace hart {
namespace {

// Length of the valid UTF-8 sequence at s[i] (a printable code point), or 0.
size_t Utf8Len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t c = b(i);
  size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? (c < 0xF0 ? 3 : 0) : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  uint32_t cp = n == 2 ? ((c & 0x1F) << 6) | (b(i + 1) & 0x3F)
              : n == 3 ? ((c & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F)
                       : ((c & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) |
                             (b(i + 3) & 0x3F);
  bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
  bool bad = overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
             (cp >= 0x80 && cp < 0xA0) ||                    // C1 controls
             cp == 0x2028 || cp == 0x2029 ||                  // line separators
             (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);  // bidi overrides
  return bad ? 0 : n;
}

// Appends the escaped form of s[i...] up to `limit` input bytes; returns the
// number of input bytes consumed.
size_t AppendEscaped(std::string_view s, size_t limit, bool quote, std::string& out) {
  size_t i = 0;
  while (i < s.size()) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    size_t n = 1;
    if (c >= 0x80) n = Utf8Len(s, i);
    if (i + (n ? n : 1) > limit) break;
    if (c >= 0x20 && c < 0x7F) {
      if (quote && (c == '\\' || c == '\'')) out += '\\';
      out += static_cast<char>(c);
    } else if (n > 1) {
      out.append(s.substr(i, n));
    } else {
      out += fmt::format("\\x{:02x}", c);
      n = 1;
    }
    i += n;
  }
  return i;
}

}  // namespace

std::string Quote(std::string_view s, size_t max_bytes) {
  std::string out = "'";
  size_t used = AppendEscaped(s, max_bytes, true, out);
  out += '\'';
  if (used < s.size()) out += fmt::format("…({} bytes)", s.size());
  return out;
}

std::string Printable(std::string_view s, size_t max_bytes) {
  std::string out;
  size_t used = AppendEscaped(s, max_bytes, false, out);
  if (used < s.size()) out += fmt::format("…({} bytes)", s.size());
  return out;
}

std::string EscapeNonPrintable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  // Newlines and tabs are ours in multi-line messages; keep them.
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '\n' || s[i] == '\t') {
      AppendEscaped(s.substr(start, i - start), std::string_view::npos, false, out);
      if (i < s.size()) out += s[i];
      start = i + 1;
    }
  }
  return out;
}

}  // namespace hart

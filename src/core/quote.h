// Quoting bytes that came from an untrusted file for an error message: one
// line, printable, short. Every format parser puts names, keys and strings
// read from a file into its messages through Quote, never raw, so a hostile
// file cannot fill a terminal with kilobytes of binary or forge lines.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hart {

// Longest part of an untrusted string that a message shows, in bytes of input.
inline constexpr size_t kQuoteMaxBytes = 80;

// 'text' in single quotes. Printable ASCII and valid UTF-8 stay as they are;
// control bytes, DEL, invalid UTF-8, backslash and the quote are escaped
// (\xNN, \\, \'). Input longer than max_bytes is cut (at a character
// boundary) and followed by "…(N bytes)" with the full length.
std::string Quote(std::string_view s, size_t max_bytes = kQuoteMaxBytes);

// The same escaping and cut without the quotes, for names shown bare
// (a pickle global such as os.system).
std::string Printable(std::string_view s, size_t max_bytes = kQuoteMaxBytes);

// The same escaping without quotes or cut, for text that is mostly ours but
// may carry untrusted bytes (a whole error message before printing it).
std::string EscapeNonPrintable(std::string_view s);

}  // namespace hart

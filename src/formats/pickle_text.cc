// Text-level helpers of the pickle machine: opcode names for messages and
// the decoders of protocol 0's text encodings and of big binary longs.
#include <string>
#include <vector>

#include "fmt/format.h"
#include "formats/pickle_internal.h"

namespace hart::formats {

std::string_view PickleKindName(PickleKind k) {
  switch (k) {
    case PickleKind::kNone: return "None";
    case PickleKind::kBool: return "bool";
    case PickleKind::kInt: return "int";
    case PickleKind::kBigInt: return "big int";
    case PickleKind::kFloat: return "float";
    case PickleKind::kString: return "str";
    case PickleKind::kBytes: return "bytes";
    case PickleKind::kTuple: return "tuple";
    case PickleKind::kList: return "list";
    case PickleKind::kDict: return "dict";
    case PickleKind::kSet: return "set";
    case PickleKind::kGlobal: return "global";
    case PickleKind::kStorage: return "storage";
    case PickleKind::kTensor: return "tensor";
    case PickleKind::kDevice: return "device";
    case PickleKind::kOpaque: return "refused object";
  }
  return "?";
}

namespace pickle_internal {

std::string_view OpName(uint8_t op) {
  switch (op) {
    case '(': return "MARK";          case '.': return "STOP";
    case '0': return "POP";           case '1': return "POP_MARK";
    case '2': return "DUP";           case 'F': return "FLOAT";
    case 'I': return "INT";           case 'J': return "BININT";
    case 'K': return "BININT1";       case 'L': return "LONG";
    case 'M': return "BININT2";       case 'N': return "NONE";
    case 'P': return "PERSID";        case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";        case 'S': return "STRING";
    case 'T': return "BINSTRING";     case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";       case 'X': return "BINUNICODE";
    case 'a': return "APPEND";        case 'b': return "BUILD";
    case 'c': return "GLOBAL";        case 'd': return "DICT";
    case '}': return "EMPTY_DICT";    case 'e': return "APPENDS";
    case 'g': return "GET";           case 'h': return "BINGET";
    case 'i': return "INST";          case 'j': return "LONG_BINGET";
    case 'l': return "LIST";          case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";           case 'p': return "PUT";
    case 'q': return "BINPUT";        case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";       case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";   case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";      case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";       case 0x82: return "EXT1";
    case 0x83: return "EXT2";         case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";       case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";       case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";     case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";        case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES"; case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";  case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL"; case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";        case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";  case 0x98: return "READONLY_BUFFER";
    default: return "";
  }
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's codecs.escape_decode, as protocol 0's STRING uses it.
std::string EscapeDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) { out.push_back(s[i]); continue; }
    char c = s[++i];
    switch (c) {
      case '\n': break;
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'v': out.push_back('\v'); break;
      case 'x':
        if (i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
          out.push_back(static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2])));
          i += 2;
        } else {
          out += "\\x";
        }
        break;
      default:
        if (c >= '0' && c <= '7') {
          int v = c - '0';
          for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k)
            v = v * 8 + (s[++i] - '0');
          out.push_back(static_cast<char>(v & 0xFF));
        } else {
          out.push_back('\\');
          out.push_back(c);
        }
    }
  }
  return out;
}

// A binary long (LONG1/LONG4: little-endian two's complement) that does not
// fit int64, spelled "0x..." or "-0x..." for display.
std::string BigIntText(std::span<const uint8_t> le) {
  std::vector<uint8_t> mag(le.begin(), le.end());
  bool neg = !mag.empty() && (mag.back() & 0x80);
  if (neg) {  // two's complement negate
    unsigned carry = 1;
    for (auto& b : mag) {
      unsigned v = static_cast<uint8_t>(~b) + carry;
      b = static_cast<uint8_t>(v);
      carry = v >> 8;
    }
  }
  std::string hex;
  bool lead = true;
  for (size_t i = mag.size(); i-- > 0;) {
    if (lead && mag[i] == 0) continue;
    hex += lead ? fmt::format("{:x}", mag[i]) : fmt::format("{:02x}", mag[i]);
    lead = false;
  }
  return fmt::format("{}0x{}", neg ? "-" : "", hex.empty() ? "0" : hex);
}

}  // namespace pickle_internal
}  // namespace hart::formats

#include "runtime/grammar/json_grammar.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "core/status.h"

namespace hart::runtime::grammar {
namespace {

using nlohmann::json;
constexpr uint64_t kInf = std::numeric_limits<uint64_t>::max() / 4;
constexpr uint32_t kInfDepth = std::numeric_limits<uint32_t>::max() / 4;
constexpr size_t kMaxStacks = 256;

uint64_t Add(uint64_t a, uint64_t b) { return std::min(kInf, a + b); }

// Keywords that only annotate: accepted and ignored.
const std::set<std::string> kAnnotations = {"title",   "description", "default", "examples", "$schema",
                                            "$id",     "$comment",    "$defs",   "definitions", "deprecated",
                                            "readOnly", "writeOnly"};
const std::set<std::string> kSupported = {"type",  "properties", "required", "additionalProperties",
                                          "items", "minItems",   "maxItems", "enum",
                                          "const", "anyOf",      "oneOf",    "$ref",
                                          "minLength", "maxLength", "prefixItems"};

absl::Status Bad(const std::string& path, const std::string& why) {
  return absl::InvalidArgumentError(fmt::format("schema {}: {}", path, why));
}

bool IsDigit(uint8_t c) { return c >= '0' && c <= '9'; }
bool IsHex(uint8_t c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// String states: 0 before '"', 1 content, 2 after '\', 3 in \u (b hex digits
// left), 4 in a UTF-8 sequence (b bytes left, a = lo | hi << 8 of the next).
enum StringResult { kReject, kAccept, kClosed };
StringResult StepString(Frame& f, uint8_t c) {
  switch (f.st) {
    case 0:
      if (c != '"') return kReject;
      f.st = 1;
      return kAccept;
    case 1:
      if (c == '"') return kClosed;
      if (c == '\\') {
        f.st = 2;
        return kAccept;
      }
      if (c < 0x20) return kReject;
      if (c < 0x80) return kAccept;
      if (c >= 0xC2 && c <= 0xDF) {
        f.st = 4, f.b = 1, f.a = 0x80 | (0xBF << 8);
      } else if (c == 0xE0) {
        f.st = 4, f.b = 2, f.a = 0xA0 | (0xBF << 8);
      } else if (c == 0xED) {
        f.st = 4, f.b = 2, f.a = 0x80 | (0x9F << 8);
      } else if (c >= 0xE1 && c <= 0xEF) {
        f.st = 4, f.b = 2, f.a = 0x80 | (0xBF << 8);
      } else if (c == 0xF0) {
        f.st = 4, f.b = 3, f.a = 0x90 | (0xBF << 8);
      } else if (c >= 0xF1 && c <= 0xF3) {
        f.st = 4, f.b = 3, f.a = 0x80 | (0xBF << 8);
      } else if (c == 0xF4) {
        f.st = 4, f.b = 3, f.a = 0x80 | (0x8F << 8);
      } else {
        return kReject;
      }
      return kAccept;
    case 2:
      if (c == 'u') {
        f.st = 3, f.b = 4;
        return kAccept;
      }
      if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
        f.st = 1;
        return kAccept;
      }
      return kReject;
    case 3:
      // No \uD800-\uDFFF: a lone surrogate is not valid Unicode text.
      if (!IsHex(c) || (f.b == 4 && (c == 'd' || c == 'D'))) return kReject;
      if (--f.b == 0) f.st = 1;
      return kAccept;
    case 4:
      if (c < (f.a & 0xFF) || c > (f.a >> 8)) return kReject;
      f.a = 0x80 | (0xBF << 8);
      if (--f.b == 0) f.st = 1;
      return kAccept;
  }
  return kReject;
}

// Number states: 0 start, 1 after '-', 2 after a leading 0, 3 integer
// digits, 4 after '.', 5 fraction digits, 6 after e, 7 after the exponent's
// sign, 8 exponent digits; a counts the digits of the current part.
constexpr uint32_t kMaxDigits = 16, kMaxExpDigits = 2;
enum NumberResult { kNumReject, kNumAccept, kNumEnd };
bool NumberEndable(uint32_t st) { return st == 2 || st == 3 || st == 5 || st == 8; }
NumberResult StepNumber(Frame& f, uint8_t c, bool integer) {
  const bool d = IsDigit(c);
  auto dot_or_exp = [&]() {
    if (integer) return false;
    if (c == '.') return f.st = 4, f.a = 0, true;
    if (c == 'e' || c == 'E') return f.st = 6, f.a = 0, true;
    return false;
  };
  bool ok = false;
  switch (f.st) {
    case 0:
      if (c == '-') ok = true, f.st = 1;
      else if (c == '0') ok = true, f.st = 2;
      else if (d) ok = true, f.st = 3, f.a = 1;
      break;
    case 1:
      if (c == '0') ok = true, f.st = 2;
      else if (d) ok = true, f.st = 3, f.a = 1;
      break;
    case 2: ok = dot_or_exp(); break;
    case 3:
      if (d && f.a < kMaxDigits) ok = true, ++f.a;
      else ok = dot_or_exp();
      break;
    case 4:
      if (d) ok = true, f.st = 5, f.a = 1;
      break;
    case 5:
      if (d && f.a < kMaxDigits) ok = true, ++f.a;
      else if (!integer && (c == 'e' || c == 'E')) ok = true, f.st = 6, f.a = 0;
      break;
    case 6:
      if (c == '+' || c == '-') ok = true, f.st = 7;
      else if (d) ok = true, f.st = 8, f.a = 1;
      break;
    case 7:
      if (d) ok = true, f.st = 8, f.a = 1;
      break;
    case 8:
      if (d && f.a < kMaxExpDigits) ok = true, ++f.a;
      break;
  }
  if (ok) return kNumAccept;
  return NumberEndable(f.st) ? kNumEnd : kNumReject;
}

}  // namespace

// --- Building. ---

JsonGrammar::Builder::Builder() {
  // The any-value node: a union of every kind, its containers holding any value.
  any_ = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(Node{.kind = Node::kUnion});
  string_ = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(Node{.kind = Node::kString});
  Node obj{.kind = Node::kFreeObject};
  obj.children = {any_};
  const uint32_t o = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(obj);
  const uint32_t a = Array(any_, 0, -1);
  Node num{.kind = Node::kNumber};
  const uint32_t n = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(num);
  nodes_[any_].children = {o, a, string_, n, Literal("true"), Literal("false"), Literal("null")};
}

uint32_t JsonGrammar::Builder::Literal(std::string text) {
  Node n{.kind = Node::kLiteral};
  n.text = std::move(text);
  nodes_.push_back(std::move(n));
  return static_cast<uint32_t>(nodes_.size() - 1);
}

uint32_t JsonGrammar::Builder::Union(std::vector<uint32_t> alts) {
  Node n{.kind = Node::kUnion};
  n.children = std::move(alts);
  nodes_.push_back(std::move(n));
  return static_cast<uint32_t>(nodes_.size() - 1);
}

uint32_t JsonGrammar::Builder::Sequence(std::vector<uint32_t> parts) {
  Node n{.kind = Node::kSequence};
  n.children = std::move(parts);
  nodes_.push_back(std::move(n));
  return static_cast<uint32_t>(nodes_.size() - 1);
}

uint32_t JsonGrammar::Builder::Array(uint32_t item, int64_t min_items, int64_t max_items) {
  Node n{.kind = Node::kArray};
  n.children = {item};
  n.min_items = min_items;
  n.max_items = max_items;
  nodes_.push_back(std::move(n));
  return static_cast<uint32_t>(nodes_.size() - 1);
}

uint32_t JsonGrammar::Builder::String(int64_t min_len, int64_t max_len) {
  if (min_len <= 0 && max_len < 0) return string_;
  Node n{.kind = Node::kString};
  n.min_items = std::max<int64_t>(0, min_len);
  n.max_items = max_len;
  nodes_.push_back(std::move(n));
  return static_cast<uint32_t>(nodes_.size() - 1);
}

uint32_t JsonGrammar::Builder::Object(std::vector<std::pair<std::string, uint32_t>> props) {
  Node n{.kind = Node::kObject};
  for (auto& [k, v] : props) n.props.push_back({json(k).dump() + ":", v, true});
  if (n.props.empty()) return Literal("{}");
  nodes_.push_back(std::move(n));
  return static_cast<uint32_t>(nodes_.size() - 1);
}

struct JsonGrammar::Builder::Compiler {
  Builder& b;
  const json& root;
  std::map<std::string, uint32_t> refs;

  absl::StatusOr<uint32_t> Compile(const json& s, const std::string& path) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return b.any_;
      return Bad(path, "the schema false allows no value");
    }
    if (!s.is_object()) return Bad(path, "expected an object or a boolean");
    for (const auto& [k, v] : s.items()) {
      if (kAnnotations.count(k) || kSupported.count(k)) continue;
      return Bad(path, fmt::format("'{}' is not supported (supported: type, properties, required, "
                                   "additionalProperties, items, prefixItems, minItems, maxItems, minLength, maxLength, enum, const, "
                                   "anyOf, oneOf with disjoint branches, $ref, $defs)",
                                   k));
    }
    if (s.contains("$ref")) {
      for (const auto& [k, v] : s.items())
        if (kSupported.count(k) && k != "$ref") return Bad(path, fmt::format("'{}' beside $ref is not supported", k));
      return Ref(s["$ref"], path + "/$ref");
    }
    if (s.contains("const")) return b.Literal(s["const"].dump());
    if (s.contains("enum")) {
      const json& e = s["enum"];
      if (!e.is_array() || e.empty()) return Bad(path + "/enum", "expected a non-empty array");
      std::vector<uint32_t> alts;
      for (const json& v : e) alts.push_back(b.Literal(v.dump()));
      return alts.size() == 1 ? alts[0] : b.Union(std::move(alts));
    }
    if (s.contains("oneOf")) RETURN_IF_ERROR(Disjoint(s["oneOf"], path + "/oneOf"));
    for (const char* k : {"anyOf", "oneOf"}) {
      if (!s.contains(k)) continue;
      for (const auto& [kk, v] : s.items())
        if (kSupported.count(kk) && kk != k)
          return Bad(path, fmt::format("'{}' beside {} is not supported", kk, k));
      const json& alts = s[k];
      if (!alts.is_array() || alts.empty()) return Bad(path + "/" + k, "expected a non-empty array of schemas");
      std::vector<uint32_t> ids;
      for (size_t i = 0; i < alts.size(); ++i) {
        ASSIGN_OR_RETURN(uint32_t id, Compile(alts[i], fmt::format("{}/{}/{}", path, k, i)));
        ids.push_back(id);
      }
      return b.Union(std::move(ids));
    }
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) return Typed(s, t.get<std::string>(), path);
      if (!t.is_array() || t.empty()) return Bad(path + "/type", "expected a type name or a non-empty array of them");
      std::vector<uint32_t> ids;
      for (const json& n : t) {
        if (!n.is_string()) return Bad(path + "/type", "expected type names");
        ASSIGN_OR_RETURN(uint32_t id, Typed(s, n.get<std::string>(), path));
        ids.push_back(id);
      }
      return ids.size() == 1 ? ids[0] : b.Union(std::move(ids));
    }
    if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties"))
      return Typed(s, "object", path);
    if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems"))
      return Typed(s, "array", path);
    if (s.contains("minLength") || s.contains("maxLength")) {
      // Applies to strings only; any other value is valid as it is.
      ASSIGN_OR_RETURN(uint32_t str, Typed(s, "string", path));
      json rest = s;
      rest.erase("minLength");
      rest.erase("maxLength");
      std::vector<uint32_t> alts = {str};
      for (const char* t : {"object", "array", "number", "boolean", "null"}) {
        json one = rest;
        one["type"] = t;
        ASSIGN_OR_RETURN(uint32_t id, Typed(one, t, path));
        alts.push_back(id);
      }
      return b.Union(std::move(alts));
    }
    return b.any_;
  }

  // oneOf is compiled as anyOf, which is exact only when no value can match
  // two branches: branches of different types, different const/enum values,
  // or objects told apart by a required property's const/enum.
  enum : uint32_t { kObj = 1, kArr = 2, kStr = 4, kNum = 8, kBool = 16, kNull = 32, kAll = 63 };
  struct Sig {
    uint32_t types = kAll;
    std::optional<std::vector<json>> values;  // const / enum: exactly these
    std::map<std::string, std::vector<json>> tags;  // required properties with const / enum
  };
  static uint32_t TypeBit(const json& v) {
    if (v.is_object()) return kObj;
    if (v.is_array()) return kArr;
    if (v.is_string()) return kStr;
    if (v.is_number()) return kNum;
    if (v.is_boolean()) return kBool;
    return kNull;
  }
  const json* Resolve(const json& s, int depth = 0) const {
    if (!s.is_object() || !s.contains("$ref") || !s["$ref"].is_string() || depth > 16) return &s;
    const std::string ref = s["$ref"].get<std::string>();
    if (ref.empty() || ref[0] != '#') return &s;
    try {
      json::json_pointer p(ref.substr(1));
      if (root.contains(p)) return Resolve(root.at(p), depth + 1);
    } catch (const json::exception&) {
    }
    return &s;
  }
  Sig SigOf(const json& in) const {
    Sig g;
    const json& s = *Resolve(in);
    if (s.is_boolean()) {
      g.types = s.get<bool>() ? static_cast<uint32_t>(kAll) : 0u;
      return g;
    }
    if (!s.is_object()) return g;
    if (s.contains("const")) {
      g.values = std::vector<json>{s["const"]};
      g.types = TypeBit(s["const"]);
      return g;
    }
    if (s.contains("enum") && s["enum"].is_array()) {
      g.values = std::vector<json>(s["enum"].begin(), s["enum"].end());
      g.types = 0;
      for (const json& v : *g.values) g.types |= TypeBit(v);
      return g;
    }
    for (const char* k : {"anyOf", "oneOf"}) {
      if (!s.contains(k) || !s[k].is_array()) continue;
      g.types = 0;
      for (const json& a : s[k]) g.types |= SigOf(a).types;
      return g;
    }
    auto bit = [](const std::string& t) -> uint32_t {
      if (t == "object") return kObj;
      if (t == "array") return kArr;
      if (t == "string") return kStr;
      if (t == "number" || t == "integer") return kNum;
      if (t == "boolean") return kBool;
      if (t == "null") return kNull;
      return kAll;
    };
    if (s.contains("type") && s["type"].is_string()) {
      g.types = bit(s["type"].get<std::string>());
    } else if (s.contains("type") && s["type"].is_array()) {
      g.types = 0;
      for (const json& t : s["type"]) g.types |= t.is_string() ? bit(t.get<std::string>()) : kAll;
    } else if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
      g.types = kObj;
    } else if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems")) {
      g.types = kArr;
    }
    if ((g.types & kObj) && s.contains("required") && s["required"].is_array() && s.contains("properties") &&
        s["properties"].is_object()) {
      for (const json& k : s["required"]) {
        if (!k.is_string() || !s["properties"].contains(k.get<std::string>())) continue;
        Sig p = SigOf(s["properties"][k.get<std::string>()]);
        if (p.values) g.tags[k.get<std::string>()] = *p.values;
      }
    }
    return g;
  }
  static bool DisjointValues(const std::vector<json>& a, const std::vector<json>& b) {
    for (const json& x : a)
      for (const json& y : b)
        if (x == y) return false;
    return true;
  }
  static bool DisjointSigs(const Sig& a, const Sig& b) {
    if ((a.types & b.types) == 0) return true;
    if (a.values && b.values) return DisjointValues(*a.values, *b.values);
    auto outside = [](const Sig& v, const Sig& t) {
      for (const json& x : *v.values)
        if (TypeBit(x) & t.types) return false;
      return true;
    };
    if (a.values) return outside(a, b);
    if (b.values) return outside(b, a);
    // Objects on both sides, told apart by a required tag; nothing else shared.
    if ((a.types & b.types & ~static_cast<uint32_t>(kObj)) != 0) return false;
    for (const auto& [k, v] : a.tags)
      if (auto it = b.tags.find(k); it != b.tags.end() && DisjointValues(v, it->second)) return true;
    return false;
  }
  absl::Status Disjoint(const json& alts, const std::string& path) const {
    if (!alts.is_array()) return absl::OkStatus();  // reported when compiled
    std::vector<Sig> sigs;
    for (const json& a : alts) sigs.push_back(SigOf(a));
    for (size_t i = 0; i < sigs.size(); ++i)
      for (size_t j = i + 1; j < sigs.size(); ++j)
        if (!DisjointSigs(sigs[i], sigs[j]))
          return Bad(path, fmt::format("branches {} and {} may both match one value, which oneOf forbids; oneOf is "
                                       "supported when its branches are provably disjoint (different types, "
                                       "different const/enum values, or objects with a required property of "
                                       "different const/enum values); use anyOf if either may match",
                                       i, j));
    return absl::OkStatus();
  }

  absl::StatusOr<uint32_t> Ref(const json& r, const std::string& path) {
    if (!r.is_string()) return Bad(path, "expected a string");
    const std::string ref = r.get<std::string>();
    if (auto it = refs.find(ref); it != refs.end()) return it->second;
    if (ref.empty() || ref[0] != '#') return Bad(path, fmt::format("'{}': only local references (#/...) are supported", ref));
    const json* target = nullptr;
    try {
      json::json_pointer p(ref.substr(1));
      if (root.contains(p)) target = &root.at(p);
    } catch (const json::exception&) {
    }
    if (target == nullptr) return Bad(path, fmt::format("'{}' does not resolve", ref));
    // A placeholder first, so a reference to itself (recursion) finds it.
    const uint32_t id = b.Union({});
    refs[ref] = id;
    ASSIGN_OR_RETURN(uint32_t inner, Compile(*target, ref));
    b.nodes_[id].children = {inner};
    return id;
  }

  absl::StatusOr<int64_t> Count(const json& s, const char* k, const std::string& path) {
    if (!s.contains(k)) return -1;
    const json& v = s[k];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1'000'000)
      return Bad(path + "/" + k, "expected an integer 0..1000000");
    return v.get<int64_t>();
  }

  // prefixItems: "[" then the tuple's items in order, each position a
  // choice between "]" (when minItems allows stopping there) and "," and the
  // next item; past the prefix, `item` (when `more`) up to maxItems. Each
  // position is its own node (bounded: at most kMaxTuple of them), so
  // nesting grows one frame per item and an unbounded tail is a cycle.
  static constexpr int64_t kMaxTuple = 32;
  absl::StatusOr<uint32_t> Tuple(const json& s, const std::string& path, uint32_t item, bool more, int64_t lo,
                                 int64_t hi) {
    const json& pi = s["prefixItems"];
    if (!pi.is_array() || pi.empty()) return Bad(path + "/prefixItems", "expected a non-empty array of schemas");
    std::vector<uint32_t> parts;
    for (size_t i = 0; i < pi.size(); ++i) {
      ASSIGN_OR_RETURN(uint32_t id, Compile(pi[i], fmt::format("{}/prefixItems/{}", path, i)));
      parts.push_back(id);
    }
    const int64_t np = static_cast<int64_t>(parts.size());
    if (!more) hi = hi < 0 ? np : std::min(hi, np);
    if (hi >= 0 && hi < lo) return Bad(path + "/minItems", "more items than prefixItems and items allow");
    const int64_t bound = std::max(np, lo) + 1;
    if (bound > kMaxTuple || (hi >= 0 && hi > kMaxTuple))
      return Bad(path + "/prefixItems", fmt::format("with minItems/maxItems: at most {} positions are supported", kMaxTuple));
    // rest(i): what may follow once i items are written.
    const uint32_t close = b.Literal("]");
    const uint32_t comma = b.Literal(",");
    // Past the prefix and minItems with no maximum: one node that loops.
    std::optional<uint32_t> loop;
    std::function<uint32_t(int64_t)> rest = [&](int64_t i) -> uint32_t {
      const bool can_close = i >= lo;
      const bool can_add = (hi < 0 || i < hi) && (i < np || more);
      const uint32_t next = i < np ? parts[static_cast<size_t>(i)] : item;
      if (i >= np && i >= lo && hi < 0) {
        if (loop) return *loop;
        loop = b.Union({});
        b.nodes_[*loop].children = {close, b.Sequence({comma, next, *loop})};
        return *loop;
      }
      std::vector<uint32_t> alts;
      if (can_close) alts.push_back(close);
      if (can_add) alts.push_back(i == 0 ? b.Sequence({next, rest(i + 1)}) : b.Sequence({comma, next, rest(i + 1)}));
      return alts.size() == 1 ? alts[0] : b.Union(std::move(alts));
    };
    return b.Sequence({b.Literal("["), rest(0)});
  }

  absl::StatusOr<uint32_t> Typed(const json& s, const std::string& type, const std::string& path) {
    auto only = [&](std::initializer_list<const char*> allowed) -> absl::Status {
      for (const char* k : {"properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
                            "minLength", "maxLength"}) {
        if (!s.contains(k)) continue;
        bool ok = false;
        for (const char* a : allowed) ok = ok || std::string_view(a) == k;
        // A type list ("type": ["object", "null"]) carries the keywords of every member.
        if (!ok && !s["type"].is_array()) return Bad(path + "/" + k, fmt::format("not allowed with type {}", type));
      }
      return absl::OkStatus();
    };
    if (type == "string") {
      RETURN_IF_ERROR(only({"minLength", "maxLength"}));
      ASSIGN_OR_RETURN(int64_t lo, Count(s, "minLength", path));
      ASSIGN_OR_RETURN(int64_t hi, Count(s, "maxLength", path));
      if (hi >= 0 && hi < lo) return Bad(path + "/maxLength", "less than minLength");
      return b.String(lo, hi);
    }
    if (type == "number" || type == "integer") {
      RETURN_IF_ERROR(only({}));
      Node n{.kind = type == "number" ? Node::kNumber : Node::kInteger};
      b.nodes_.push_back(n);
      return static_cast<uint32_t>(b.nodes_.size() - 1);
    }
    if (type == "boolean") {
      RETURN_IF_ERROR(only({}));
      return b.Union({b.Literal("true"), b.Literal("false")});
    }
    if (type == "null") {
      RETURN_IF_ERROR(only({}));
      return b.Literal("null");
    }
    if (type == "array") {
      RETURN_IF_ERROR(only({"items", "prefixItems", "minItems", "maxItems"}));
      uint32_t item = b.any_;
      bool more = true;  // items after the prefix allowed
      if (s.contains("items")) {
        if (s["items"].is_array()) return Bad(path + "/items", "tuple items (an array of schemas) are not supported; use prefixItems");
        if (s["items"].is_boolean() && !s["items"].get<bool>()) {
          more = false;
        } else {
          ASSIGN_OR_RETURN(item, Compile(s["items"], path + "/items"));
        }
      }
      ASSIGN_OR_RETURN(int64_t lo, Count(s, "minItems", path));
      ASSIGN_OR_RETURN(int64_t hi, Count(s, "maxItems", path));
      lo = std::max<int64_t>(lo, 0);
      if (hi >= 0 && hi < lo) return Bad(path + "/maxItems", "less than minItems");
      if (!s.contains("prefixItems")) {
        if (!more) {
          if (lo > 0) return Bad(path + "/minItems", "more items than items: false allows");
          return b.Literal("[]");
        }
        return b.Array(item, lo, hi);
      }
      return Tuple(s, path, item, more, lo, hi);
    }
    if (type == "object") {
      RETURN_IF_ERROR(only({"properties", "required", "additionalProperties"}));
      std::set<std::string> required;
      if (s.contains("required")) {
        const json& r = s["required"];
        if (!r.is_array()) return Bad(path + "/required", "expected an array of property names");
        for (const json& k : r) {
          if (!k.is_string()) return Bad(path + "/required", "expected an array of property names");
          required.insert(k.get<std::string>());
        }
      }
      const json empty = json::object();
      const json& props = s.contains("properties") ? s["properties"] : empty;
      if (!props.is_object()) return Bad(path + "/properties", "expected an object of schemas");
      for (const std::string& k : required)
        if (!props.contains(k))
          return Bad(path + "/required", fmt::format("'{}' is not in properties (not supported)", k));
      if (props.empty()) {
        // Free-form: any keys, each value of additionalProperties' schema.
        uint32_t value = b.any_;
        if (s.contains("additionalProperties")) {
          const json& ap = s["additionalProperties"];
          if (ap.is_boolean() && !ap.get<bool>()) return b.Literal("{}");
          ASSIGN_OR_RETURN(value, Compile(ap, path + "/additionalProperties"));
        }
        Node n{.kind = Node::kFreeObject};
        n.children = {value};
        b.nodes_.push_back(std::move(n));
        return static_cast<uint32_t>(b.nodes_.size() - 1);
      }
      if (s.contains("additionalProperties")) {
        // Checked but not generated: output with the declared properties only
        // validates whatever additional ones the schema would allow.
        const json& ap = s["additionalProperties"];
        if (!ap.is_boolean()) RETURN_IF_ERROR(Compile(ap, path + "/additionalProperties").status());
      }
      Node n{.kind = Node::kObject};
      for (const auto& [k, v] : props.items()) {
        ASSIGN_OR_RETURN(uint32_t id, Compile(v, path + "/properties/" + k));
        n.props.push_back({json(k).dump() + ":", id, required.count(k) > 0});
      }
      b.nodes_.push_back(std::move(n));
      return static_cast<uint32_t>(b.nodes_.size() - 1);
    }
    return Bad(path + "/type", fmt::format("unknown type '{}'", type));
  }
};

absl::StatusOr<uint32_t> JsonGrammar::Builder::Schema(const json& schema, const std::string& path) {
  Compiler c{*this, schema, {}};
  return c.Compile(schema, path);
}

absl::StatusOr<std::shared_ptr<const JsonGrammar>> JsonGrammar::Builder::Build(uint32_t root) {
  auto g = std::make_shared<JsonGrammar>();
  g->nodes_ = nodes_;
  g->root_ = root;
  g->string_ = string_;
  std::vector<Node>& ns = g->nodes_;
  for (Node& n : ns) n.min_chars = kInf, n.min_depth = kInfDepth;
  // Fixpoint: the fewest bytes and frames of a complete value of each node.
  for (bool changed = true; changed;) {
    changed = false;
    for (Node& n : ns) {
      uint64_t c = kInf;
      uint32_t d = kInfDepth;
      switch (n.kind) {
        case Node::kLiteral: c = n.text.size(), d = 1; break;
        case Node::kString: c = Add(2, static_cast<uint64_t>(n.min_items)), d = 1; break;
        case Node::kNumber:
        case Node::kInteger: c = 1, d = 1; break;
        case Node::kFreeObject: c = 2, d = 1; break;
        case Node::kObject: {
          c = 1, d = 1;
          bool first = true;
          for (const Node::Prop& p : n.props) {
            if (!p.required) continue;
            c = Add(c, Add(first ? 1 : 1, Add(p.key.size(), ns[p.value].min_chars)));
            d = std::max(d, std::min(kInfDepth, ns[p.value].min_depth + 1));
            first = false;
          }
          if (first) c = 2;  // "{}"
          break;
        }
        case Node::kArray: {
          const Node& it = ns[n.children[0]];
          if (n.min_items == 0) {
            c = 2, d = 1;
          } else {
            c = Add(2, Add(static_cast<uint64_t>(n.min_items - 1),
                           it.min_chars >= kInf ? kInf : it.min_chars * static_cast<uint64_t>(n.min_items)));
            d = std::min(kInfDepth, it.min_depth + 1);
          }
          break;
        }
        case Node::kUnion:
          for (uint32_t a : n.children) c = std::min(c, ns[a].min_chars), d = std::min(d, ns[a].min_depth);
          break;
        case Node::kSequence:
          c = 0, d = 1;
          for (uint32_t a : n.children) c = Add(c, ns[a].min_chars), d = std::max(d, std::min(kInfDepth, ns[a].min_depth + 1));
          break;
      }
      if (c >= kInf || d >= kInfDepth) c = kInf, d = kInfDepth;
      if (c < n.min_chars || d < n.min_depth) {
        n.min_chars = std::min(c, n.min_chars), n.min_depth = std::min(d, n.min_depth);
        changed = true;
      }
    }
  }
  if (ns[root].min_chars >= kInf || ns[root].min_depth > kMaxDepth)
    return absl::InvalidArgumentError(fmt::format(
        "schema: no finite value satisfies it (recursion every value must follow forever, or nesting deeper than {})",
        kMaxDepth));
  for (Node& n : ns) {
    if (n.kind != Node::kObject) continue;
    const size_t np = n.props.size();
    n.tail.assign(np + 1, 1);
    uint64_t acc = 1;  // '}'
    for (size_t i = np; i-- > 0;) {
      n.tail[i] = acc;
      if (n.props[i].required) acc = Add(acc, Add(1, Add(n.props[i].key.size(), ns[n.props[i].value].min_chars)));
    }
    // From "{": the cheapest first property that skips no required one.
    uint64_t best = kInf;
    bool any_required = false;
    for (size_t j = 0; j < np; ++j) {
      best = std::min(best, Add(n.props[j].key.size(), Add(ns[n.props[j].value].min_chars, n.tail[j])));
      if (n.props[j].required) {
        any_required = true;
        break;
      }
    }
    n.tail[np] = any_required ? best : 1;
  }
  return std::shared_ptr<const JsonGrammar>(std::move(g));
}

absl::StatusOr<std::shared_ptr<const JsonGrammar>> JsonGrammar::FromSchema(const json& schema) {
  Builder b;
  ASSIGN_OR_RETURN(uint32_t root, b.Schema(schema, "#"));
  return b.Build(root);
}

std::shared_ptr<const JsonGrammar> JsonGrammar::AnyObject() {
  static const std::shared_ptr<const JsonGrammar> g = [] {
    Builder b;
    Node n{.kind = Node::kFreeObject};
    n.children = {b.any_};
    b.nodes_.push_back(n);
    return *b.Build(static_cast<uint32_t>(b.nodes_.size() - 1));
  }();
  return g;
}

// --- Matching. ---

State JsonGrammar::Start() const {
  State s;
  s.frames.push_back(Frame{root_});
  s.ends.push_back(1);
  return s;
}

bool JsonGrammar::CanPush(const std::vector<Frame>& stack, uint32_t node) const {
  return stack.size() + nodes_[node].min_depth <= kMaxDepth;
}

void JsonGrammar::Emit(const std::vector<Frame>& stack, State* out) {
  if (out->ends.size() >= kMaxStacks) return;
  for (size_t k = 0, begin = 0; k < out->ends.size(); begin = out->ends[k++]) {
    const size_t len = out->ends[k] - begin;
    if (len == stack.size() && std::equal(stack.begin(), stack.end(), out->frames.begin() + begin)) return;
  }
  out->frames.insert(out->frames.end(), stack.begin(), stack.end());
  out->ends.push_back(static_cast<uint32_t>(out->frames.size()));
}

void JsonGrammar::Settle(std::vector<Frame>& s) const {
  while (!s.empty() && nodes_[s.back().node].kind == Node::kSequence &&
         s.back().st >= nodes_[s.back().node].children.size())
    s.pop_back();
}

void JsonGrammar::Step(std::vector<Frame>& s, uint8_t c, State* out) const {
  auto close = [&]() {
    s.pop_back();
    Settle(s);
    Emit(s, out);
  };
  for (;;) {
    if (s.empty()) return;
    Frame& f = s.back();
    const Node& n = nodes_[f.node];
    switch (n.kind) {
      case Node::kLiteral:
        if (f.a < n.text.size() && static_cast<uint8_t>(n.text[f.a]) == c) {
          if (++f.a == n.text.size()) return close();
          Emit(s, out);
        }
        return;
      case Node::kUnion: {
        s.pop_back();
        for (uint32_t alt : n.children) {
          if (!CanPush(s, alt)) continue;
          std::vector<Frame> t = s;
          t.push_back(Frame{alt});
          Step(t, c, out);
        }
        return;
      }
      case Node::kSequence:
        if (f.st < n.children.size()) {
          const uint32_t part = n.children[f.st++];
          s.push_back(Frame{part});
          continue;
        }
        s.pop_back();
        Settle(s);
        continue;
      case Node::kString: {
        if (n.min_items == 0 && n.max_items < 0) {
          switch (StepString(f, c)) {
            case kReject: return;
            case kAccept: return Emit(s, out);
            case kClosed: return close();
          }
          return;
        }
        // Bounded length: st = state | characters << 3. A character is
        // counted when it is whole (state back to 1 from inside the string).
        const uint32_t prev = f.st & 7;
        const int64_t count = f.st >> 3;
        if (prev == 1 && c != '"' && n.max_items >= 0 && count >= n.max_items) return;
        Frame g = f;
        g.st = prev;
        const StringResult r = StepString(g, c);
        if (r == kReject) return;
        if (r == kClosed) {
          if (count < n.min_items) return;
          return close();
        }
        // Past minLength with no maxLength the count no longer matters.
        const int64_t now = std::min(count + ((g.st == 1 && prev != 0) ? 1 : 0),
                                     n.max_items >= 0 ? n.max_items : n.min_items);
        f = g;
        f.st = g.st | static_cast<uint32_t>(now << 3);
        return Emit(s, out);
      }
      case Node::kNumber:
      case Node::kInteger:
        switch (StepNumber(f, c, n.kind == Node::kInteger)) {
          case kNumReject: return;
          case kNumAccept: return Emit(s, out);
          case kNumEnd:
            s.pop_back();
            Settle(s);
            continue;  // the byte belongs to what follows the number
        }
        return;
      case Node::kArray: {
        const uint32_t item = n.children[0];
        if (f.st == 0) {
          if (c == '[') f.st = 1, Emit(s, out);
          return;
        }
        if (f.st == 1) {
          if (c == ']') {
            if (n.min_items == 0) close();
            return;
          }
          if (n.max_items == 0 || !CanPush(s, item)) return;
          f.st = 2, f.a = 1;
          s.push_back(Frame{item});
          continue;
        }
        if (c == ',') {
          if ((n.max_items < 0 || f.a < n.max_items) && CanPush(s, item)) {
            ++f.a;
            s.push_back(Frame{item});
            Emit(s, out);
          }
        } else if (c == ']' && f.a >= n.min_items) {
          close();
        }
        return;
      }
      case Node::kObject: {
        auto candidates = [&](size_t lo) {
          const Frame base = f;
          for (size_t j = lo; j < n.props.size(); ++j) {
            s.back() = base;
            if (CanPush(s, n.props[j].value)) {
              s.back() = Frame{base.node, 3, static_cast<uint32_t>(j), 1};
              Emit(s, out);
            }
            if (n.props[j].required) break;
          }
        };
        switch (f.st) {
          case 0:
            if (c == '{') f.st = 1, Emit(s, out);
            return;
          case 1:
            if (c == '}' && n.tail[n.props.size()] == 1) return close();
            if (c == '"') candidates(0);
            return;
          case 2:
            if (c == '"') candidates(f.a + 1);
            return;
          case 3: {
            const Node::Prop& p = n.props[f.a];
            if (static_cast<uint8_t>(p.key[f.b]) != c) return;
            if (++f.b == p.key.size()) {
              f.st = 4;
              s.push_back(Frame{p.value});
            }
            return Emit(s, out);
          }
          case 4: {
            if (c == '}') {
              if (n.tail[f.a] == 1) close();
              return;
            }
            if (c != ',') return;
            const uint32_t j = f.a;
            for (size_t k = j + 1; k < n.props.size(); ++k) {
              if (CanPush(s, n.props[k].value)) {
                f.st = 2;
                return Emit(s, out);
              }
              if (n.props[k].required) break;
            }
            return;
          }
        }
        return;
      }
      case Node::kFreeObject: {
        switch (f.st) {
          case 0:
            if (c == '{') f.st = 1, Emit(s, out);
            return;
          case 1:
          case 2:
            if (c == '}' && f.st == 1) return close();
            if (c == '"' && s.size() + 1 < kMaxDepth && CanPush(s, n.children[0])) {
              f.st = 3;
              s.push_back(Frame{string_, 1});
              Emit(s, out);
            }
            return;
          case 3:
            if (c == ':') {
              f.st = 4;
              s.push_back(Frame{n.children[0]});
              Emit(s, out);
            }
            return;
          case 4:
            if (c == '}') return close();
            if (c == ',') f.st = 2, Emit(s, out);
            return;
        }
        return;
      }
    }
    return;
  }
}

bool JsonGrammar::Advance(const State& in, uint8_t c, State* out) const {
  out->clear();
  thread_local std::vector<Frame> work;
  for (size_t k = 0, begin = 0; k < in.ends.size(); begin = in.ends[k++]) {
    work.assign(in.frames.begin() + begin, in.frames.begin() + in.ends[k]);
    Step(work, c, out);
  }
  return !out->empty();
}

bool JsonGrammar::AdvanceBytes(State* s, std::string_view bytes, State* scratch) const {
  for (char c : bytes) {
    if (!Advance(*s, static_cast<uint8_t>(c), scratch)) return false;
    std::swap(*s, *scratch);
  }
  return true;
}

bool JsonGrammar::CanEnd(const State& s) const {
  std::vector<Frame> work;
  for (size_t k = 0, begin = 0; k < s.ends.size(); begin = s.ends[k++]) {
    work.assign(s.frames.begin() + begin, s.frames.begin() + s.ends[k]);
    while (!work.empty()) {
      const Node& n = nodes_[work.back().node];
      if ((n.kind != Node::kNumber && n.kind != Node::kInteger) || !NumberEndable(work.back().st)) break;
      work.pop_back();
      Settle(work);
    }
    if (work.empty()) return true;
  }
  return false;
}

bool JsonGrammar::Done(const State& s) const {
  if (s.empty()) return false;
  for (size_t k = 0, begin = 0; k < s.ends.size(); begin = s.ends[k++])
    if (s.ends[k] != begin) return false;
  return true;
}

uint64_t JsonGrammar::FrameRemaining(const Frame& f) const {
  const Node& n = nodes_[f.node];
  switch (n.kind) {
    case Node::kLiteral: return n.text.size() - f.a;
    case Node::kUnion: return n.min_chars;
    case Node::kSequence: {
      uint64_t c = 0;
      for (size_t i = f.st; i < n.children.size(); ++i) c = Add(c, nodes_[n.children[i]].min_chars);
      return c;
    }
    case Node::kString: {
      // Characters still needed for minLength, one byte each at least; the
      // one in progress (an escape, a UTF-8 sequence) counts among them.
      const int64_t count = f.st >> 3;
      const uint64_t more = static_cast<uint64_t>(std::max<int64_t>(0, n.min_items - count));
      switch (f.st & 7) {
        case 0: return Add(2, more);
        case 1: return Add(1, more);
        case 2: return Add(1, std::max<uint64_t>(more, 1));
        default: return Add(f.b, Add(1, more > 0 ? more - 1 : 0));
      }
    }
    case Node::kNumber:
    case Node::kInteger: return NumberEndable(f.st) ? 0 : 1;
    case Node::kArray: {
      const uint64_t item = nodes_[n.children[0]].min_chars;
      if (f.st == 0) return n.min_chars;
      if (f.st == 1) return n.min_items == 0 ? 1 : n.min_chars - 1;
      const int64_t left = std::max<int64_t>(0, n.min_items - static_cast<int64_t>(f.a));
      return Add(1, left == 0 ? 0 : Add(item, 1) * static_cast<uint64_t>(left));
    }
    case Node::kObject:
      switch (f.st) {
        case 0: return n.min_chars;
        case 1: return n.tail[n.props.size()];
        case 2: {
          uint64_t best = kInf;
          for (size_t j = f.a + 1; j < n.props.size(); ++j) {
            best = std::min(best, Add(n.props[j].key.size(), Add(nodes_[n.props[j].value].min_chars, n.tail[j])));
            if (n.props[j].required) break;
          }
          return best;
        }
        case 3: {
          const Node::Prop& p = n.props[f.a];
          return Add(p.key.size() - f.b, Add(nodes_[p.value].min_chars, n.tail[f.a]));
        }
        default: return n.tail[f.a];
      }
    case Node::kFreeObject:
      switch (f.st) {
        case 0: return 2;
        case 1: return 1;
        case 2: return Add(4, nodes_[n.children[0]].min_chars);
        case 3: return Add(2, nodes_[n.children[0]].min_chars);
        default: return 1;
      }
  }
  return 0;
}

bool JsonGrammar::InStringContent(const State& s) const {
  if (s.ends.size() != 1 || s.frames.empty()) return false;
  const Frame& f = s.frames.back();
  const Node& n = nodes_[f.node];
  // A bounded string counts its characters: its state changes with each.
  return n.kind == Node::kString && f.st == 1 && n.min_items == 0 && n.max_items < 0;
}

uint64_t JsonGrammar::Remaining(const State& s) const {
  uint64_t best = kInf;
  for (size_t k = 0, begin = 0; k < s.ends.size(); begin = s.ends[k++]) {
    uint64_t c = 0;
    for (size_t i = begin; i < s.ends[k]; ++i) c = Add(c, FrameRemaining(s.frames[i]));
    best = std::min(best, c);
  }
  return best;
}

}  // namespace hart::runtime::grammar

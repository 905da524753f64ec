// GgufMetadata: typed accessors and the JSON form stored with a version.
#include <limits>

#include "formats/gguf.h"
#include "formats/gguf_internal.h"

namespace hart::formats {

using namespace gguf_internal;

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8: return "uint8";
    case GgufType::kInt8: return "int8";
    case GgufType::kUint16: return "uint16";
    case GgufType::kInt16: return "int16";
    case GgufType::kUint32: return "uint32";
    case GgufType::kInt32: return "int32";
    case GgufType::kFloat32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "uint64";
    case GgufType::kInt64: return "int64";
    case GgufType::kFloat64: return "float64";
  }
  return "unknown";
}

namespace {

// Integers of any width as int64; nullopt for other types and for uint64
// values past INT64_MAX.
std::optional<int64_t> AsInt(const GgufValue& v) {
  if (!IsIntegerType(v.type)) return std::nullopt;
  if (const auto* u = std::get_if<uint64_t>(&v.value)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v.value)) return *i;
  return std::nullopt;
}

std::optional<double> AsFloat(const GgufValue& v) {
  if (!IsFloatType(v.type)) return std::nullopt;
  if (const auto* d = std::get_if<double>(&v.value)) return *d;
  return std::nullopt;
}

// Invalid UTF-8 (metadata strings are UTF-8 by the spec, but the file is
// untrusted) becomes U+FFFD per bad byte, so the JSON always serializes.
std::string SanitizedUtf8(const std::string& s) {
  if (IsValidUtf8(s)) return s;
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0xC0) len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (c >= 0x80 && i + len <= s.size() && IsValidUtf8(std::string_view(s).substr(i, len))) {
      out.append(s, i, len);
      i += len;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

nlohmann::json ValueToJson(const GgufValue& v);

nlohmann::json ArrayToJson(const GgufArray& a) {
  if (a.items.size() > kMaxJsonArray) {
    constexpr size_t kHead = 8;
    nlohmann::json head = nlohmann::json::array();
    for (size_t i = 0; i < kHead && i < a.items.size(); ++i) head.push_back(ValueToJson(a.items[i]));
    return {{"type", "array"},
            {"element_type", std::string(GgufTypeName(a.element_type))},
            {"count", a.items.size()},
            {"head", std::move(head)}};
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& item : a.items) out.push_back(ValueToJson(item));
  return out;
}

nlohmann::json ValueToJson(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> nlohmann::json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) return SanitizedUtf8(x);
        else if constexpr (std::is_same_v<T, GgufArray>) return ArrayToJson(x);
        else return x;
      },
      v.value);
}

template <typename T, typename Conv>
std::optional<std::vector<T>> ArrayOf(const GgufArray* a, Conv conv) {
  if (!a) return std::nullopt;
  std::vector<T> out;
  out.reserve(a->items.size());
  for (const auto& item : a->items) {
    std::optional<T> x = conv(item);
    if (!x) return std::nullopt;
    out.push_back(std::move(*x));
  }
  return out;
}

}  // namespace

const GgufValue* GgufMetadata::Find(std::string_view key) const {
  // Linear: files hold tens of keys, and `entries` is public, so an index
  // could go stale.
  for (const auto& kv : entries)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

std::optional<std::string> GgufMetadata::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v || v->type != GgufType::kString) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  return std::nullopt;
}

std::optional<int64_t> GgufMetadata::GetInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v ? AsInt(*v) : std::nullopt;
}

std::optional<double> GgufMetadata::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v ? AsFloat(*v) : std::nullopt;
}

std::optional<bool> GgufMetadata::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v || v->type != GgufType::kBool) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  return std::nullopt;
}

const GgufArray* GgufMetadata::GetArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v || v->type != GgufType::kArray) return nullptr;
  return std::get_if<GgufArray>(&v->value);
}

std::optional<std::vector<std::string>> GgufMetadata::GetStringArray(std::string_view key) const {
  const GgufArray* a = GetArray(key);
  if (!a || a->element_type != GgufType::kString) return std::nullopt;
  return ArrayOf<std::string>(a, [](const GgufValue& v) -> std::optional<std::string> {
    if (const auto* s = std::get_if<std::string>(&v.value)) return *s;
    return std::nullopt;
  });
}

std::optional<std::vector<double>> GgufMetadata::GetFloatArray(std::string_view key) const {
  const GgufArray* a = GetArray(key);
  if (!a || !IsFloatType(a->element_type)) return std::nullopt;
  return ArrayOf<double>(a, AsFloat);
}

std::optional<std::vector<int64_t>> GgufMetadata::GetIntArray(std::string_view key) const {
  const GgufArray* a = GetArray(key);
  if (!a || !IsIntegerType(a->element_type)) return std::nullopt;
  return ArrayOf<int64_t>(a, AsInt);
}

nlohmann::json GgufMetadata::ToJson() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& kv : entries) out[SanitizedUtf8(kv.key)] = ValueToJson(kv.value);
  return out;
}

}  // namespace hart::formats

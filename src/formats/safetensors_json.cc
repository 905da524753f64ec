#include "formats/safetensors_json.h"

#include <iterator>
#include <vector>

#include "core/status.h"
#include "fmt/format.h"
#include "formats/model_source.h"

namespace hart::formats::safetensors_internal {
namespace {

using nlohmann::json;

// A char iterator that publishes how far the lexer has read, so SAX events
// can be tied to byte offsets. nlohmann's lexer pulls one byte at a time, so
// at key() the cursor sits just past the key's closing quote.
struct CountingIter {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  const char* p = nullptr;
  const char** cursor = nullptr;

  reference operator*() const { return *p; }
  CountingIter& operator++() {
    ++p;
    *cursor = p;
    return *this;
  }
  CountingIter operator++(int) {
    CountingIter old = *this;
    ++*this;
    return old;
  }
  bool operator==(const CountingIter& o) const { return p == o.p; }
  bool operator!=(const CountingIter& o) const { return p != o.p; }
};

// nlohmann quotes the bytes it choked on; keep messages valid UTF-8.
std::string PrintableUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  for (char c : s) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x80) out += c;
    else out += fmt::format("\\x{:02x}", b);
  }
  return out;
}

// Builds the DOM like nlohmann's own json_sax_dom_parser, plus duplicate-key
// and depth checks and key offsets.
class StrictSax {
 public:
  StrictSax(std::string_view text, const char** cursor, std::string_view file, uint64_t base,
            std::string_view field, std::string_view noun)
      : text_(text), cursor_(cursor), file_(file), base_(base), field_(field), noun_(noun) {}

  bool null() { return Place(nullptr) != nullptr; }
  bool boolean(bool b) { return Place(b) != nullptr; }
  bool number_integer(json::number_integer_t v) { return Place(v) != nullptr; }
  bool number_unsigned(json::number_unsigned_t v) { return Place(v) != nullptr; }
  bool number_float(json::number_float_t v, const std::string&) { return Place(v) != nullptr; }
  bool string(std::string& s) { return Place(std::move(s)) != nullptr; }
  bool binary(json::binary_t& b) { return Place(json::binary(std::move(b))) != nullptr; }

  bool start_object(std::size_t) { return Open(json::object()); }
  bool start_array(std::size_t) { return Open(json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool key(std::string& k) {
    json* obj = stack_.back();
    uint64_t off = KeyStart();
    if (obj->contains(k)) {
      if (stack_.size() == 1 && !noun_.empty())
        return Fail(off, fmt::format("{} {}", noun_, Quote(k)),
                    fmt::format("duplicate {} name (a JSON reader would silently keep only the last)",
                                noun_));
      std::string where = stack_.size() == 2 && inner_is_member_
                              ? fmt::format("{}: key {}", Quote(outer_key_), Quote(k))
                              : fmt::format("{} key {}", field_, Quote(k));
      return Fail(off, where, "duplicate key (a JSON reader would silently keep only the last)");
    }
    if (stack_.size() == 1) {
      doc_.top_keys[k] = off;
      top_key_ = k;
    } else if (stack_.size() == 2 && inner_is_member_) {
      doc_.inner_keys[outer_key_][k] = off;
    }
    pending_ = &(*obj)[k];
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    std::string_view what = ex.what();
    // Drop the "[json.exception.parse_error.101] " prefix: noise to a user.
    if (auto close = what.find("] "); what.rfind("[json.exception", 0) == 0 && close != what.npos)
      what.remove_prefix(close + 2);
    return Fail(position > 0 ? position - 1 : 0, field_, PrintableUtf8(what));
  }

  JsonDoc& doc() { return doc_; }
  const absl::Status& error() const { return error_; }

 private:
  json* Place(json v) {
    if (++values_ > kMaxJsonValues) {
      Fail(Pos(), field_, fmt::format("holds more than {} JSON values", kMaxJsonValues));
      return nullptr;
    }
    if (stack_.empty()) {
      doc_.value = std::move(v);
      return &doc_.value;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    *pending_ = std::move(v);
    return pending_;
  }

  bool Open(json v) {
    if (stack_.size() >= static_cast<size_t>(kMaxJsonDepth))
      return Fail(Pos() > 0 ? Pos() - 1 : 0, field_,
                  fmt::format("nested deeper than {} levels", kMaxJsonDepth));
    if (stack_.size() == 1) {
      inner_is_member_ = stack_[0]->is_object();
      outer_key_ = top_key_;
    }
    json* placed = Place(std::move(v));
    if (!placed) return false;
    stack_.push_back(placed);
    return true;
  }

  bool Close() {
    stack_.pop_back();
    return true;
  }

  bool Fail(uint64_t offset, std::string_view field, std::string_view what) {
    error_ = DataError(file_, base_ + offset, field, what);
    return false;
  }

  uint64_t Pos() const { return static_cast<uint64_t>(*cursor_ - text_.data()); }

  // Offset of the opening quote of the key just read: the nearest quote
  // before the closing one that is not escaped (an even run of backslashes).
  uint64_t KeyStart() const {
    uint64_t close = Pos() > 0 ? Pos() - 1 : 0;
    for (uint64_t i = close; i-- > 0;) {
      if (text_[i] != '"') continue;
      uint64_t slashes = 0;
      while (slashes < i && text_[i - 1 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) return i;
    }
    return close;
  }

  std::string_view text_;
  const char** cursor_;
  std::string_view file_;
  uint64_t base_;
  std::string_view field_;
  std::string_view noun_;
  JsonDoc doc_;
  std::vector<json*> stack_;
  json* pending_ = nullptr;
  std::string top_key_, outer_key_;
  bool inner_is_member_ = false;
  uint64_t values_ = 0;
  absl::Status error_;
};

}  // namespace

uint64_t JsonDoc::KeyOffset(const std::string& key) const {
  auto it = top_keys.find(key);
  return it == top_keys.end() ? 0 : it->second;
}

uint64_t JsonDoc::KeyOffset(const std::string& outer, const std::string& inner) const {
  auto it = inner_keys.find(outer);
  if (it != inner_keys.end()) {
    auto jt = it->second.find(inner);
    if (jt != it->second.end()) return jt->second;
  }
  return KeyOffset(outer);
}

absl::StatusOr<JsonDoc> ParseJsonStrict(std::string_view text, std::string_view file,
                                        uint64_t base, std::string_view field,
                                        std::string_view top_level_noun) {
  const char* cursor = text.data();
  StrictSax sax(text, &cursor, file, base, field, top_level_noun);
  CountingIter first{text.data(), &cursor};
  CountingIter last{text.data() + text.size(), &cursor};
  bool ok = false;
  try {
    ok = json::sax_parse(first, last, &sax);
  } catch (const json::exception& e) {
    return DataError(file, base + static_cast<uint64_t>(cursor - text.data()), field, e.what());
  }
  if (!ok) {
    if (!sax.error().ok()) return sax.error();
    return DataError(file, base, field, "not valid JSON");
  }
  return std::move(sax.doc());
}

std::string_view JsonTypeName(const nlohmann::json& v) {
  if (v.is_number_float()) return "a non-integer number";
  if (v.is_number_unsigned()) return "a number";
  if (v.is_number_integer()) return "a negative number";
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::binary: return "binary";
    default: return "a value";
  }
}

}  // namespace hart::formats::safetensors_internal

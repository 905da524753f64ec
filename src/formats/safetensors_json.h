// Strict JSON for safetensors headers and index files. nlohmann::json keeps
// the last of duplicate keys without a word, which would let two readers of
// one header disagree on a tensor; this parser rejects duplicates at every
// depth, bounds nesting, and remembers where the keys of the first two
// levels sit so that errors can name a byte offset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "core/quote.h"
#include "nlohmann/json.hpp"
#include "formats/limits.h"

namespace hart::formats::safetensors_internal {

// kMaxJsonDepth and kMaxJsonValues bound the DOM a header of up to 100 MB
// could otherwise inflate to (formats/limits.h).

struct JsonDoc {
  nlohmann::json value;
  // Offsets, relative to the parsed text, of the opening quote of each key of
  // the top-level object and of the objects directly inside it.
  std::unordered_map<std::string, uint64_t> top_keys;
  std::unordered_map<std::string, std::unordered_map<std::string, uint64_t>> inner_keys;

  // Offset of a top-level key (0 when unknown).
  uint64_t KeyOffset(const std::string& key) const;
  // Offset of `inner` inside the object under `outer`, else that of `outer`.
  uint64_t KeyOffset(const std::string& outer, const std::string& inner) const;
};

// Parses `text` as one JSON value (trailing whitespace allowed). Errors are
// DataErrors naming `file`, `base` + the offset in `text`, and `field`
// (duplicate top-level keys are reported as duplicate `top_level_noun`s).
absl::StatusOr<JsonDoc> ParseJsonStrict(std::string_view text, std::string_view file,
                                        uint64_t base, std::string_view field,
                                        std::string_view top_level_noun);

// Untrusted strings in messages: the one quoting helper of core/quote.h.
using ::hart::Quote;

// "object", "array", "string", "number", ... for messages.
std::string_view JsonTypeName(const nlohmann::json& v);

}  // namespace hart::formats::safetensors_internal

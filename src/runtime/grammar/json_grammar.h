// JsonGrammar: a JSON Schema (or "any JSON object") compiled to a
// character-level pushdown automaton over bytes, for constrained sampling.
//
// The grammar is a graph of nodes (literal, string, number, integer,
// object with properties in a fixed order, free-form object, array, union,
// sequence); $ref cycles are edges of the graph, so recursion needs no
// unrolling. A State is a set of stacks of frames (one per live alternative
// of anyOf/oneOf/enum/type lists); Advance feeds one byte to every stack and
// keeps those that accept it. Output is compact JSON: no whitespace between
// tokens, strings valid UTF-8 without \uD800-\uDFFF escapes, numbers of at
// most 16 digits per part. Objects with declared properties produce only
// those properties, in the order of the schema's "properties" (an object of
// the request: alphabetical), each required one present.
//
// Invariants: every node's min_chars is finite (a schema whose values could
// only be infinite is refused), and a frame is pushed only when its value
// fits under kMaxDepth, so every live stack can always be completed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace hart::runtime::grammar {

inline constexpr uint32_t kMaxDepth = 48;  // frames in one stack at most

struct Node {
  enum Kind : uint8_t { kLiteral, kString, kNumber, kInteger, kObject, kFreeObject, kArray, kUnion, kSequence };
  struct Prop {
    std::string key;  // `"name":`, quoted and with the colon
    uint32_t value = 0;
    bool required = false;
  };
  Kind kind = kLiteral;
  std::string text;                // kLiteral
  std::vector<uint32_t> children;  // kUnion: alternatives; kSequence: parts; kArray, kFreeObject: [value]
  std::vector<Prop> props;         // kObject
  int64_t min_items = 0, max_items = -1;  // kArray (-1: no maximum); kString: minLength, maxLength
                                          // (characters), counted in the frame's st above its 3 low bits
  // Computed by Finish(): the fewest bytes of a complete value, and the
  // fewest frames (this one included) that completing one needs.
  uint64_t min_chars = 0;
  uint32_t min_depth = 0;
  // kObject: tail[i] = fewest bytes after property i is done (the required
  // ones after it and '}'); tail[props.size()] is for "none yet".
  std::vector<uint64_t> tail;
};

struct Frame {
  uint32_t node = 0;
  uint32_t st = 0;  // the node's own state
  uint32_t a = 0;
  uint32_t b = 0;
  bool operator==(const Frame&) const = default;
};

// A set of stacks, flat: stack k is frames[ends[k-1] .. ends[k]).
struct State {
  std::vector<Frame> frames;
  std::vector<uint32_t> ends;
  bool empty() const { return ends.empty(); }
  void clear() {
    frames.clear();
    ends.clear();
  }
};

class JsonGrammar {
 public:
  // A JSON Schema. InvalidArgument naming the schema path ("#/properties/a")
  // for a feature this does not support (pattern, minLength, format, ...),
  // a malformed schema, an unresolved $ref, or recursion with no finite value.
  static absl::StatusOr<std::shared_ptr<const JsonGrammar>> FromSchema(const nlohmann::json& schema);
  // Any JSON object (response_format json_object).
  static std::shared_ptr<const JsonGrammar> AnyObject();

  // Building by hand (tool calls: {"name":"f","arguments":{...}} in that
  // order). Add* return node ids; Build checks and finishes the graph.
  class Builder {
   public:
    Builder();
    uint32_t Literal(std::string text);
    uint32_t Union(std::vector<uint32_t> alts);
    uint32_t Sequence(std::vector<uint32_t> parts);
    uint32_t Array(uint32_t item, int64_t min_items, int64_t max_items);
    // A string of min_len..max_len characters (max_len -1: no maximum).
    uint32_t String(int64_t min_len, int64_t max_len);
    uint32_t Object(std::vector<std::pair<std::string, uint32_t>> props);  // all required, in order
    // A schema, compiled into this builder; `path` names it in errors.
    absl::StatusOr<uint32_t> Schema(const nlohmann::json& schema, const std::string& path = "#");
    absl::StatusOr<std::shared_ptr<const JsonGrammar>> Build(uint32_t root);

   private:
    friend class JsonGrammar;
    struct Compiler;
    std::vector<Node> nodes_;
    uint32_t any_ = 0, string_ = 0;
  };

  const std::vector<Node>& nodes() const { return nodes_; }
  uint32_t root() const { return root_; }

  // The state before any byte.
  State Start() const;
  // Feeds byte c to every stack of `in`; `out` gets the survivors (cleared
  // first). False when none survives.
  bool Advance(const State& in, uint8_t c, State* out) const;
  bool AdvanceBytes(State* s, std::string_view bytes, State* scratch) const;
  // Some stack holds a complete value (end of generation is allowed here).
  bool CanEnd(const State& s) const;
  // Every stack is complete: nothing more can follow.
  bool Done(const State& s) const;
  // One stack, inside a string between characters: bytes of whole
  // characters other than '"', '\\' and controls leave `s` as it is.
  bool InStringContent(const State& s) const;
  // The fewest bytes that complete a value from `s` (0 when CanEnd).
  uint64_t Remaining(const State& s) const;

 private:
  void Step(std::vector<Frame>& stack, uint8_t c, State* out) const;
  void Settle(std::vector<Frame>& stack) const;
  bool CanPush(const std::vector<Frame>& stack, uint32_t node) const;
  uint64_t FrameRemaining(const Frame& f) const;
  static void Emit(const std::vector<Frame>& stack, State* out);

  std::vector<Node> nodes_;
  uint32_t root_ = 0;
  uint32_t string_ = 0;  // a plain string (free-form object keys)
};

}  // namespace hart::runtime::grammar

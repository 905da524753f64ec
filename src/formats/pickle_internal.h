// Shared between the pickle machine (pickle.cc) and the C++ stand-ins for
// the allowlisted callables (pickle_globals.cc). Not a public header.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "formats/pickle.h"

namespace hart::formats::pickle_internal {

// Allocates values in the result's arena and meters work that is not paid
// for by input bytes (copying a memoized list into a new set, say), so a
// small pickle cannot make the machine allocate without bound.
class Heap {
 public:
  Heap(std::deque<PickleValue>* arena, std::string_view file, uint64_t work_limit)
      : arena_(arena), file_(file), work_limit_(work_limit) {}

  PickleValue* New(PickleKind kind, uint64_t offset) {
    PickleValue& v = arena_->emplace_back();
    v.kind = kind;
    v.offset = offset;
    return &v;
  }
  absl::Status Charge(uint64_t units, uint64_t offset);
  std::string_view file() const { return file_; }

 private:
  std::deque<PickleValue>* arena_;
  std::string_view file_;
  uint64_t work_ = 0;
  uint64_t work_limit_;
};

// "os.system", or a short description of a non-global callable.
std::string DescribeCallable(const PickleValue* v);

// Applies an allowlisted callable: `callable(*args, **kwargs)` for REDUCE,
// NEWOBJ(_EX), INST and OBJ. kwargs may be nullptr. Refuses anything that is
// not an allowlisted global it knows how to apply.
absl::StatusOr<PickleValue*> ApplyCall(Heap& heap, PickleValue* callable, PickleValue* args,
                                       PickleValue* kwargs, std::string_view opcode,
                                       uint64_t offset);

// BUILD: only an OrderedDict (or dict) takes state; it is kept, not applied.
absl::Status ApplyBuild(Heap& heap, PickleValue* target, PickleValue* state, uint64_t offset);

// Opcode name ("BINUNICODE"), "" for bytes that are no opcode.
std::string_view OpName(uint8_t op);
void AppendUtf8(std::string& out, uint32_t code_point);
int HexDigit(char c);  // -1 when not a hex digit
// Python's codecs.escape_decode, as protocol 0's STRING uses it.
std::string EscapeDecode(std::string_view s);
// A binary long (little-endian two's complement) spelled "0x..." / "-0x...".
std::string BigIntText(std::span<const uint8_t> le);

}  // namespace hart::formats::pickle_internal

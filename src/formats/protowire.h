// Protocol-buffer wire format scanner: walks the fields of one message
// without decoding them, reporting where each lies in the file. Used to find
// the absolute byte offsets of ONNX tensor payloads (so they are stored zero
// copy) and to split a message before handing parts to protobuf.
//
// Input is untrusted: every length and varint is bounds-checked, and every
// error is a DataError naming the file, the absolute offset and the field.
// Offsets are 64-bit throughout.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hart::formats::protowire {

enum class WireType : uint8_t {
  kVarint = 0, kFixed64 = 1, kLen = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5,
};

struct Field {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t tag_offset = 0;   // absolute offset of the tag (start of the field)
  uint64_t data_offset = 0;  // absolute offset of the value; of the payload for kLen
  uint64_t value = 0;        // varint or fixed value; payload size for kLen
  uint64_t end = 0;          // absolute offset just past the field
};

// Reads the fields of one message held in `bytes`, whose first byte lies at
// absolute offset `base` of `file`. `context` names the message in errors
// ("ModelProto", "initializer[3]"). Groups are refused (ONNX has none).
class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, uint64_t base, std::string_view file,
         std::string context);

  // Next field into *f; false at the end of the message.
  absl::StatusOr<bool> Next(Field* f);

  // The bytes of a whole field (tag included) or of a kLen payload.
  std::span<const uint8_t> FieldBytes(const Field& f) const;
  std::span<const uint8_t> Payload(const Field& f) const;

  const std::string& context() const { return context_; }

 private:
  absl::StatusOr<uint64_t> Varint(std::string_view what);

  std::span<const uint8_t> bytes_;
  uint64_t base_;
  std::string_view file_;
  std::string context_;
  size_t pos_ = 0;
};

}  // namespace hart::formats::protowire

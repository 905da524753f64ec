#include "formats/protowire.h"

#include "core/status.h"

namespace hart::formats::protowire {

Reader::Reader(std::span<const uint8_t> bytes, uint64_t base, std::string_view file,
               std::string context)
    : bytes_(bytes), base_(base), file_(file), context_(std::move(context)) {}

absl::StatusOr<uint64_t> Reader::Varint(std::string_view what) {
  uint64_t start = base_ + pos_;
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= bytes_.size())
      return DataError(file_, start, fmt::format("{}.{}", context_, what),
                       "varint runs past the end of the message");
    uint8_t b = bytes_[pos_++];
    // The tenth byte may only carry the top bit of a 64-bit value.
    if (shift == 63 && b > 1)
      return DataError(file_, start, fmt::format("{}.{}", context_, what), "varint overflows 64 bits");
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  return DataError(file_, start, fmt::format("{}.{}", context_, what), "varint longer than 10 bytes");
}

absl::StatusOr<bool> Reader::Next(Field* f) {
  if (pos_ >= bytes_.size()) return false;
  f->tag_offset = base_ + pos_;
  ASSIGN_OR_RETURN(uint64_t tag, Varint("tag"));
  uint64_t number = tag >> 3;
  if (number == 0 || number > 0x1FFFFFFF)
    return DataError(file_, f->tag_offset, fmt::format("{}.tag", context_),
                     fmt::format("field number {} is out of range", number));
  f->number = static_cast<uint32_t>(number);
  f->type = static_cast<WireType>(tag & 7);
  std::string field = fmt::format("{}.field {}", context_, f->number);
  switch (f->type) {
    case WireType::kVarint: {
      f->data_offset = base_ + pos_;
      ASSIGN_OR_RETURN(f->value, Varint(fmt::format("field {}", f->number)));
      break;
    }
    case WireType::kFixed64:
    case WireType::kFixed32: {
      size_t n = f->type == WireType::kFixed64 ? 8 : 4;
      f->data_offset = base_ + pos_;
      if (bytes_.size() - pos_ < n)
        return DataError(file_, f->data_offset, field, "fixed-width value runs past the end of the message");
      f->value = 0;
      for (size_t i = 0; i < n; ++i) f->value |= static_cast<uint64_t>(bytes_[pos_ + i]) << (8 * i);
      pos_ += n;
      break;
    }
    case WireType::kLen: {
      ASSIGN_OR_RETURN(f->value, Varint(fmt::format("field {} length", f->number)));
      f->data_offset = base_ + pos_;
      if (f->value > bytes_.size() - pos_)
        return DataError(file_, f->data_offset, field,
                         fmt::format("length {} runs past the end of the message ({} bytes left)",
                                     f->value, bytes_.size() - pos_));
      pos_ += static_cast<size_t>(f->value);
      break;
    }
    default:
      return DataError(file_, f->tag_offset, field,
                       fmt::format("wire type {} is not supported", static_cast<int>(f->type)));
  }
  f->end = base_ + pos_;
  return true;
}

std::span<const uint8_t> Reader::FieldBytes(const Field& f) const {
  return bytes_.subspan(f.tag_offset - base_, f.end - f.tag_offset);
}

std::span<const uint8_t> Reader::Payload(const Field& f) const {
  return bytes_.subspan(f.data_offset - base_, f.end - f.data_offset);
}

}  // namespace hart::formats::protowire

// ParseGgufHeader: header, metadata and tensor infos of an untrusted file.
// Every read is checked against the end of the bytes before it happens, and
// every count is checked against the bytes left before anything is
// allocated for it.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <unordered_set>

#include "core/status.h"
#include "formats/gguf.h"
#include "formats/gguf_internal.h"

namespace hart::formats {

using namespace gguf_internal;

namespace {

class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, std::string_view file) : bytes_(bytes), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  std::string_view file() const { return file_; }

  absl::Status Error(uint64_t at, std::string_view field, std::string_view what) const {
    return DataError(file_, at, field, what);
  }
  absl::Status Need(uint64_t n, std::string_view field) const {
    if (n <= remaining()) return absl::OkStatus();
    return Error(pos_, field,
                 fmt::format("truncated: needs {} bytes, {} left", n, remaining()));
  }

  template <typename T>
  absl::StatusOr<T> Read(std::string_view field) {
    RETURN_IF_ERROR(Need(sizeof(T), field));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // uint64 length + bytes. The length is bounded by the bytes left, so a
  // huge length fails before any allocation.
  absl::Status ReadString(std::string_view field, std::string* out, uint64_t limit = kMaxNameBytes) {
    uint64_t at = pos_;
    ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(field));
    if (len > limit)
      return Error(at, field, fmt::format("string length {} exceeds the limit of {} bytes ({})", len, limit,
                                          limit == kMaxNameBytes ? "kMaxNameBytes" : "kMaxStringBytes"));
    if (len > remaining())
      return Error(at, field,
                   fmt::format("string length {} exceeds the {} bytes left", len, remaining()));
    *out = Take(len);
    return absl::OkStatus();
  }

  // The next n bytes as a string; the caller has checked n <= remaining().
  std::string Take(uint64_t n) {
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string_view file_;
  uint64_t pos_ = 0;
};

// Names a metadata value in errors: the key, and the item index inside
// arrays. Built only when an error is reported.
struct ValuePath {
  const std::string& key;
  const ValuePath* parent = nullptr;
  uint64_t index = 0;

  std::string ToString() const {
    if (!parent) return fmt::format("metadata {}", Quote(key));
    return fmt::format("{}[{}]", parent->ToString(), index);
  }
};

class MetadataParser {
 public:
  explicit MetadataParser(Cursor& c) : c_(c) {}

  absl::Status ParseValue(GgufType type, int depth, const ValuePath& path, GgufValue* out) {
    out->type = type;
    uint64_t at = c_.pos();
    auto field = [&] { return path.ToString(); };
    auto scalar = [&]<typename T>(T*) -> absl::StatusOr<T> {
      if (c_.remaining() < sizeof(T)) return c_.Need(sizeof(T), field());
      return c_.Read<T>("");
    };
    switch (type) {
      case GgufType::kUint8: { ASSIGN_OR_RETURN(auto v, scalar((uint8_t*)nullptr)); out->value = uint64_t{v}; break; }
      case GgufType::kInt8: { ASSIGN_OR_RETURN(auto v, scalar((int8_t*)nullptr)); out->value = int64_t{v}; break; }
      case GgufType::kUint16: { ASSIGN_OR_RETURN(auto v, scalar((uint16_t*)nullptr)); out->value = uint64_t{v}; break; }
      case GgufType::kInt16: { ASSIGN_OR_RETURN(auto v, scalar((int16_t*)nullptr)); out->value = int64_t{v}; break; }
      case GgufType::kUint32: { ASSIGN_OR_RETURN(auto v, scalar((uint32_t*)nullptr)); out->value = uint64_t{v}; break; }
      case GgufType::kInt32: { ASSIGN_OR_RETURN(auto v, scalar((int32_t*)nullptr)); out->value = int64_t{v}; break; }
      case GgufType::kUint64: { ASSIGN_OR_RETURN(auto v, scalar((uint64_t*)nullptr)); out->value = v; break; }
      case GgufType::kInt64: { ASSIGN_OR_RETURN(auto v, scalar((int64_t*)nullptr)); out->value = v; break; }
      case GgufType::kFloat32: { ASSIGN_OR_RETURN(auto v, scalar((float*)nullptr)); out->value = double{v}; break; }
      case GgufType::kFloat64: { ASSIGN_OR_RETURN(auto v, scalar((double*)nullptr)); out->value = v; break; }
      case GgufType::kBool: {
        ASSIGN_OR_RETURN(auto v, scalar((uint8_t*)nullptr));
        if (v > 1) return c_.Error(at, field(), fmt::format("bool value {} is not 0 or 1", v));
        out->value = v == 1;
        break;
      }
      case GgufType::kString: {
        if (c_.remaining() < 8) return c_.Need(8, field());
        uint64_t len = *c_.Read<uint64_t>("");
        if (len > kMaxStringBytes)
          return c_.Error(at, field(), fmt::format("string length {} exceeds the limit of {} bytes "
                                                   "(kMaxStringBytes)", len, kMaxStringBytes));
        if (len > c_.remaining())
          return c_.Error(at, field(), fmt::format("string length {} exceeds the {} bytes left",
                                                   len, c_.remaining()));
        out->value = c_.Take(len);
        break;
      }
      case GgufType::kArray: {
        GgufArray a;
        RETURN_IF_ERROR(ParseArray(depth + 1, path, &a));
        out->value = std::move(a);
        break;
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseArray(int depth, const ValuePath& path, GgufArray* out) {
    uint64_t at = c_.pos();
    if (depth > kMaxArrayDepth)
      return c_.Error(at, path.ToString(),
                      fmt::format("arrays nested deeper than {}", kMaxArrayDepth));
    if (c_.remaining() < 12) return c_.Need(12, path.ToString() + " (array header)");
    uint32_t et = *c_.Read<uint32_t>("");
    if (!IsKnownType(et))
      return c_.Error(at, path.ToString(), fmt::format("unknown array element type {}", et));
    uint64_t count = *c_.Read<uint64_t>("");
    GgufType type = static_cast<GgufType>(et);
    uint64_t min = MinEncodedSize(type);
    if (count > c_.remaining() / min)
      return c_.Error(at + 4, path.ToString(),
                      fmt::format("array of {} {} items needs at least {} bytes, {} left", count,
                                  GgufTypeName(type), count > UINT64_MAX / min ? UINT64_MAX : count * min,
                                  c_.remaining()));
    items_ += count;
    if (items_ > kMaxMetadataItems)
      return c_.Error(at + 4, path.ToString(),
                      fmt::format("metadata arrays hold more than {} items in all", kMaxMetadataItems));
    out->element_type = type;
    out->items.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      ValuePath item{path.key, &path, i};
      RETURN_IF_ERROR(ParseValue(type, depth, item, &out->items[i]));
    }
    return absl::OkStatus();
  }

 private:
  Cursor& c_;
  uint64_t items_ = 0;
};

absl::Status CheckVersion(Cursor& c, uint32_t version) {
  if (version == 2 || version == 3) return absl::OkStatus();
  if (version == 1)
    return c.Error(4, "version", "GGUF version 1 is not supported (versions 2 and 3 are)");
  if (__builtin_bswap32(version) == 2 || __builtin_bswap32(version) == 3)
    return c.Error(4, "version", "big-endian GGUF files are not supported");
  return c.Error(4, "version",
                 fmt::format("GGUF version {} is not supported (versions 2 and 3 are)", version));
}

absl::Status ParseMetadata(Cursor& c, uint64_t kv_count, GgufHeader* h) {
  MetadataParser parser(c);
  std::unordered_set<std::string> seen;
  h->metadata.entries.reserve(kv_count);
  for (uint64_t i = 0; i < kv_count; ++i) {
    GgufKV kv;
    uint64_t at = c.pos();
    RETURN_IF_ERROR(c.ReadString(fmt::format("metadata key #{}", i), &kv.key));
    if (!IsValidUtf8(kv.key))
      return c.Error(at, fmt::format("metadata key #{}", i), "key is not valid UTF-8");
    if (!seen.insert(kv.key).second)
      return c.Error(at, fmt::format("metadata {}", Quote(kv.key)), "duplicate key");
    uint64_t type_at = c.pos();
    ASSIGN_OR_RETURN(uint32_t type, c.Read<uint32_t>(fmt::format("metadata {} type", Quote(kv.key))));
    if (!IsKnownType(type))
      return c.Error(type_at, fmt::format("metadata {}", Quote(kv.key)),
                     fmt::format("unknown value type {}", type));
    ValuePath path{kv.key};
    RETURN_IF_ERROR(parser.ParseValue(static_cast<GgufType>(type), 0, path, &kv.value));
    if (kv.key == kAlignmentKey) {
      const auto* a = std::get_if<uint64_t>(&kv.value.value);
      if (kv.value.type != GgufType::kUint32 || !a)
        return c.Error(type_at, "metadata 'general.alignment'",
                       fmt::format("must be uint32, is {}", GgufTypeName(kv.value.type)));
      if (*a == 0 || (*a & (*a - 1)) != 0)
        return c.Error(type_at + 4, "metadata 'general.alignment'",
                       fmt::format("alignment {} is not a power of two", *a));
      h->alignment = *a;
    }
    h->metadata.entries.push_back(std::move(kv));
  }
  return absl::OkStatus();
}

absl::Status ParseTensorInfos(Cursor& c, uint64_t tensor_count, GgufHeader* h,
                              std::vector<uint64_t>* info_at) {
  std::unordered_set<std::string> names;
  h->tensors.reserve(tensor_count);
  info_at->reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t;
    uint64_t at = c.pos();
    RETURN_IF_ERROR(c.ReadString(fmt::format("tensor #{} name", i), &t.name));
    if (!IsValidUtf8(t.name))
      return c.Error(at, fmt::format("tensor #{} name", i), "name is not valid UTF-8");
    if (t.name.empty()) return c.Error(at, fmt::format("tensor #{} name", i), "empty name");
    std::string field = fmt::format("tensor {}", Quote(t.name));
    if (!names.insert(t.name).second) return c.Error(at, field, "duplicate tensor name");
    uint64_t dims_at = c.pos();
    ASSIGN_OR_RETURN(uint32_t n_dims, c.Read<uint32_t>(field + " n_dims"));
    if (n_dims > kMaxDims)
      return c.Error(dims_at, field + " n_dims",
                     fmt::format("{} dimensions (at most {} are supported)", n_dims, kMaxDims));
    RETURN_IF_ERROR(c.Need(uint64_t{n_dims} * 8, field + " ne"));
    std::vector<uint64_t> ne(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      ne[d] = *c.Read<uint64_t>("");
      // ggml reads ne as int64; a negative one is garbage, not a huge size.
      if (ne[d] > static_cast<uint64_t>(INT64_MAX))
        return c.Error(dims_at + 4 + 8 * d, fmt::format("{} ne[{}]", field, d),
                       fmt::format("dimension {} is negative as int64", ne[d]));
    }
    t.shape.assign(ne.rbegin(), ne.rend());
    uint64_t type_at = c.pos();
    ASSIGN_OR_RETURN(uint32_t ggml_type, c.Read<uint32_t>(field + " type"));
    auto dtype = DTypeFromGgml(ggml_type);
    if (!dtype.ok())
      return c.Error(type_at, field + " type", fmt::format("unknown ggml type {}", ggml_type));
    t.dtype = *dtype;
    uint64_t off_at = c.pos();
    ASSIGN_OR_RETURN(t.offset, c.Read<uint64_t>(field + " offset"));
    const DTypeInfo& info = Info(t.dtype);
    if (n_dims > 0 && ne[0] % info.block_size != 0)
      return c.Error(dims_at + 4, field + " ne[0]",
                     fmt::format("{} is not a multiple of the {} block size {}", ne[0], info.name,
                                 info.block_size));
    auto elems = NumElements(t.shape);
    if (!elems.ok()) return c.Error(dims_at, field + " ne", Msg(elems.status()));
    auto bytes = ByteSize(t.dtype, *elems);
    if (!bytes.ok()) return c.Error(dims_at, field + " ne", Msg(bytes.status()));
    t.nbytes = *bytes;
    if (t.offset % h->alignment != 0)
      return c.Error(off_at, field + " offset",
                     fmt::format("{} is not a multiple of the alignment {}", t.offset,
                                 h->alignment));
    h->tensors.push_back(std::move(t));
    info_at->push_back(at);
  }
  return absl::OkStatus();
}

// Tensor data must lie inside the file and no two tensors may share bytes.
absl::Status CheckTensorBounds(Cursor& c, const GgufHeader& h, uint64_t file_size,
                               const std::vector<uint64_t>& info_at) {
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const GgufTensorInfo& t = h.tensors[i];
    uint64_t start, end;
    if (__builtin_add_overflow(h.data_offset, t.offset, &start) ||
        __builtin_add_overflow(start, t.nbytes, &end) || end > file_size)
      return c.Error(info_at[i], fmt::format("tensor {}", Quote(t.name)),
                     fmt::format("data at offset {} + {} bytes lies past the end of the file "
                                 "({} bytes; data section starts at {})",
                                 t.offset, t.nbytes, file_size, h.data_offset));
  }
  std::vector<size_t> order(h.tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& ta = h.tensors[a];
    const auto& tb = h.tensors[b];
    return ta.offset != tb.offset ? ta.offset < tb.offset : ta.nbytes < tb.nbytes;
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& prev = h.tensors[order[k - 1]];
    const GgufTensorInfo& cur = h.tensors[order[k]];
    if (cur.offset < prev.offset + prev.nbytes)
      return c.Error(info_at[order[k]], fmt::format("tensor {}", Quote(cur.name)),
                     fmt::format("data [{}, {}) overlaps tensor {} [{}, {})", cur.offset,
                                 cur.offset + cur.nbytes, Quote(prev.name), prev.offset,
                                 prev.offset + prev.nbytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GgufHeader> ParseGgufHeader(std::span<const uint8_t> bytes, uint64_t file_size,
                                           std::string_view name) {
  if (bytes.size() > file_size)
    return absl::InvalidArgumentError(
        fmt::format("{}: {} bytes given for a file of {} bytes", name, bytes.size(), file_size));
  Cursor c(bytes, name);
  GgufHeader h;
  RETURN_IF_ERROR(c.Need(4, "magic"));
  if (std::memcmp(bytes.data(), kMagic, 4) != 0)
    return c.Error(0, "magic", "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  c.Read<uint32_t>("magic").IgnoreError();
  ASSIGN_OR_RETURN(h.version, c.Read<uint32_t>("version"));
  RETURN_IF_ERROR(CheckVersion(c, h.version));
  ASSIGN_OR_RETURN(uint64_t tensor_count, c.Read<uint64_t>("tensor_count"));
  ASSIGN_OR_RETURN(uint64_t kv_count, c.Read<uint64_t>("kv_count"));
  // Smallest encodings: a KV is key length + type + 1 byte; a tensor info is
  // name length + n_dims + type + offset.
  if (kv_count > kMaxMetadataKeys)
    return c.Error(16, "kv_count", fmt::format("{} key/values exceed the limit of {} (kMaxMetadataKeys)",
                                               kv_count, kMaxMetadataKeys));
  if (tensor_count > kMaxTensors)
    return c.Error(8, "tensor_count",
                   fmt::format("{} tensors exceed the limit of {} (kMaxTensors)", tensor_count, kMaxTensors));
  if (kv_count > c.remaining() / 13)
    return c.Error(16, "kv_count",
                   fmt::format("{} key/values cannot fit in the {} bytes left", kv_count,
                               c.remaining()));
  if (tensor_count > c.remaining() / 24)
    return c.Error(8, "tensor_count",
                   fmt::format("{} tensor infos cannot fit in the {} bytes left", tensor_count,
                               c.remaining()));
  RETURN_IF_ERROR(ParseMetadata(c, kv_count, &h));
  std::vector<uint64_t> info_at;
  RETURN_IF_ERROR(ParseTensorInfos(c, tensor_count, &h, &info_at));
  if (!AlignUp(c.pos(), h.alignment, &h.data_offset))
    return c.Error(c.pos(), "data section", "offset overflows 64 bits");
  RETURN_IF_ERROR(CheckTensorBounds(c, h, file_size, info_at));
  return h;
}

}  // namespace hart::formats

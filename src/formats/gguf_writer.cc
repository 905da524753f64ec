// WriteGguf: a GGUF v3 file laid out as ggml's and gguf-py's writers lay it
// out, so a file they wrote, read and written back with the same metadata
// and tensor order, comes out byte for byte the same:
//   header, key/values in the given order, tensor infos, then (only when
//   there are tensors) zero padding to the alignment and each tensor's data
//   in order, each followed by zero padding to the alignment.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <unordered_set>

#include "core/file_util.h"
#include "core/status.h"
#include "formats/gguf.h"
#include "formats/gguf_internal.h"
#include "formats/gguf_stream.h"

namespace hart::formats {

using namespace gguf_internal;

namespace {

class Encoder {
 public:
  std::string& buf() { return buf_; }
  template <typename T>
  void Put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    buf_.append(b, sizeof(T));
  }
  void PutString(std::string_view s) {
    Put<uint64_t>(s.size());
    buf_.append(s);
  }

  absl::Status PutValue(const GgufValue& v, const std::string& key, int depth) {
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(fmt::format("GGUF metadata '{}': {}", key, what));
    };
    auto u = std::get_if<uint64_t>(&v.value);
    auto i = std::get_if<int64_t>(&v.value);
    auto d = std::get_if<double>(&v.value);
    auto mismatch = [&] {
      return bad(fmt::format("a {} value holds another kind of value", GgufTypeName(v.type)));
    };
    // Integers must fit their declared width, so that what is written is
    // what the caller holds.
    auto put_unsigned = [&]<typename T>(T*) -> absl::Status {
      if (!u) return mismatch();
      if (*u > std::numeric_limits<T>::max())
        return bad(fmt::format("{} does not fit {}", *u, GgufTypeName(v.type)));
      Put<T>(static_cast<T>(*u));
      return absl::OkStatus();
    };
    auto put_signed = [&]<typename T>(T*) -> absl::Status {
      if (!i) return mismatch();
      if (*i > std::numeric_limits<T>::max() || *i < std::numeric_limits<T>::min())
        return bad(fmt::format("{} does not fit {}", *i, GgufTypeName(v.type)));
      Put<T>(static_cast<T>(*i));
      return absl::OkStatus();
    };
    switch (v.type) {
      case GgufType::kUint8: return put_unsigned((uint8_t*)nullptr);
      case GgufType::kUint16: return put_unsigned((uint16_t*)nullptr);
      case GgufType::kUint32: return put_unsigned((uint32_t*)nullptr);
      case GgufType::kUint64: return put_unsigned((uint64_t*)nullptr);
      case GgufType::kInt8: return put_signed((int8_t*)nullptr);
      case GgufType::kInt16: return put_signed((int16_t*)nullptr);
      case GgufType::kInt32: return put_signed((int32_t*)nullptr);
      case GgufType::kInt64: return put_signed((int64_t*)nullptr);
      case GgufType::kFloat32:
        if (!d) return mismatch();
        Put<float>(static_cast<float>(*d));
        return absl::OkStatus();
      case GgufType::kFloat64:
        if (!d) return mismatch();
        Put<double>(*d);
        return absl::OkStatus();
      case GgufType::kBool: {
        auto b = std::get_if<bool>(&v.value);
        if (!b) return mismatch();
        Put<uint8_t>(*b ? 1 : 0);
        return absl::OkStatus();
      }
      case GgufType::kString: {
        auto s = std::get_if<std::string>(&v.value);
        if (!s) return mismatch();
        PutString(*s);
        return absl::OkStatus();
      }
      case GgufType::kArray: {
        auto a = std::get_if<GgufArray>(&v.value);
        if (!a) return mismatch();
        if (depth >= kMaxArrayDepth)
          return bad(fmt::format("arrays nested deeper than {}", kMaxArrayDepth));
        if (!IsKnownType(static_cast<uint32_t>(a->element_type)))
          return bad("unknown array element type");
        Put<uint32_t>(static_cast<uint32_t>(a->element_type));
        Put<uint64_t>(a->items.size());
        for (const GgufValue& item : a->items) {
          if (item.type != a->element_type)
            return bad(fmt::format("{} item in an array of {}", GgufTypeName(item.type),
                                   GgufTypeName(a->element_type)));
          RETURN_IF_ERROR(PutValue(item, key, depth + 1));
        }
        return absl::OkStatus();
      }
    }
    return bad(fmt::format("unknown value type {}", static_cast<uint32_t>(v.type)));
  }

  void PadTo(uint64_t alignment) {
    uint64_t end = buf_.size();
    AlignUp(buf_.size(), alignment, &end);  // a std::string never nears 2^64
    buf_.resize(end, '\0');
  }

 private:
  std::string buf_;
};

// Header, metadata and tensor infos, padded when tensors follow; fills
// `nbytes` with each tensor's size.
absl::StatusOr<std::string> EncodeHeader(const GgufMetadata& metadata,
                                         const std::vector<TensorDesc>& tensors,
                                         uint64_t alignment, std::vector<uint64_t>* nbytes) {
  std::unordered_set<std::string_view> keys;
  bool write_alignment = alignment != kDefaultAlignment;
  for (const GgufKV& kv : metadata.entries) {
    if (!keys.insert(kv.key).second)
      return absl::InvalidArgumentError(fmt::format("GGUF metadata: duplicate key '{}'", kv.key));
    if (kv.key == kAlignmentKey) {
      const auto* a = std::get_if<uint64_t>(&kv.value.value);
      if (kv.value.type != GgufType::kUint32 || !a || *a != alignment)
        return absl::InvalidArgumentError(fmt::format(
            "GGUF metadata: general.alignment must be the uint32 {} the file is written with",
            alignment));
      write_alignment = false;
    }
  }
  Encoder e;
  e.buf().append(kMagic, 4);
  e.Put<uint32_t>(kWriteVersion);
  e.Put<uint64_t>(tensors.size());
  e.Put<uint64_t>(metadata.entries.size() + (write_alignment ? 1 : 0));
  for (const GgufKV& kv : metadata.entries) {
    e.PutString(kv.key);
    e.Put<uint32_t>(static_cast<uint32_t>(kv.value.type));
    RETURN_IF_ERROR(e.PutValue(kv.value, kv.key, 0));
  }
  if (write_alignment) {
    e.PutString(kAlignmentKey);
    e.Put<uint32_t>(static_cast<uint32_t>(GgufType::kUint32));
    e.Put<uint32_t>(static_cast<uint32_t>(alignment));
  }
  std::unordered_set<std::string_view> names;
  uint64_t offset = 0;
  for (const TensorDesc& t : tensors) {
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(fmt::format("GGUF tensor '{}': {}", t.name, what));
    };
    if (t.name.empty() || !IsValidUtf8(t.name)) return bad("name is empty or not UTF-8");
    if (!names.insert(t.name).second) return bad("duplicate tensor name");
    const DTypeInfo& info = Info(t.dtype);
    if (info.ggml_type < 0) return bad(fmt::format("ggml has no type {}", info.name));
    if (t.shape.size() > kMaxDims) return bad(fmt::format("more than {} dimensions", kMaxDims));
    if (!t.shape.empty() && t.shape.back() % info.block_size != 0)
      return bad(fmt::format("innermost dimension {} is not a multiple of the {} block size {}",
                             t.shape.back(), info.name, info.block_size));
    ASSIGN_OR_RETURN(uint64_t elems, NumElements(t.shape));
    ASSIGN_OR_RETURN(uint64_t size, ByteSize(t.dtype, elems));
    e.PutString(t.name);
    e.Put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) e.Put<uint64_t>(*it);
    e.Put<uint32_t>(static_cast<uint32_t>(info.ggml_type));
    e.Put<uint64_t>(offset);
    nbytes->push_back(size);
    if (!AlignUp(offset + size, alignment, &offset)) return bad("file size overflows");
  }
  if (!tensors.empty()) e.PadTo(alignment);
  return std::move(e.buf());
}

absl::Status WriteBody(int fd, const std::string& tmp, const std::string& header,
                       const std::vector<TensorDesc>& tensors, const std::vector<uint64_t>& nbytes,
                       const TensorStreamFn& stream, uint64_t alignment) {
  auto span = [](const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  RETURN_IF_ERROR(WriteAll(fd, span(header), tmp));
  const std::vector<uint8_t> zeros(alignment, 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint64_t written = 0;
    auto too_many = [&](uint64_t n) {
      return absl::InvalidArgumentError(
          fmt::format("GGUF tensor '{}': {} bytes supplied, its shape and type need {}",
                      tensors[i].name, n, nbytes[i]));
    };
    TensorPieceSink write = [&](std::span<const uint8_t> piece) -> absl::Status {
      if (piece.size() > nbytes[i] - written) return too_many(written + piece.size());
      RETURN_IF_ERROR(WriteAll(fd, piece, tmp));
      written += piece.size();
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(stream(i, write));
    if (written != nbytes[i]) return too_many(written);
    uint64_t pad = (alignment - nbytes[i] % alignment) % alignment;
    RETURN_IF_ERROR(WriteAll(fd, std::span<const uint8_t>(zeros.data(), pad), tmp));
  }
  return FsyncFd(fd, tmp);
}

}  // namespace

absl::Status WriteGguf(const std::string& path, const GgufMetadata& metadata,
                       const std::vector<TensorDesc>& tensors, const TensorBytesFn& bytes,
                       uint64_t alignment) {
  TensorStreamFn stream = [&](size_t i, const TensorPieceSink& write) -> absl::Status {
    ASSIGN_OR_RETURN(std::span<const uint8_t> data, bytes(i));
    return write(data);
  };
  return WriteGgufStreamed(path, metadata, tensors, stream, alignment);
}

absl::Status WriteGgufStreamed(const std::string& path, const GgufMetadata& metadata,
                               const std::vector<TensorDesc>& tensors,
                               const TensorStreamFn& stream, uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > UINT32_MAX)
    return absl::InvalidArgumentError(
        fmt::format("{}: GGUF alignment {} is not a power of two below 2^32", path, alignment));
  std::vector<uint64_t> nbytes;
  auto header = EncodeHeader(metadata, tensors, alignment, &nbytes);
  if (!header.ok()) return Annotate(header.status(), path);

  std::string tmp = path + ".tmp";
  {
    ASSIGN_OR_RETURN(Fd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC));
    absl::Status s = WriteBody(fd.get(), tmp, *header, tensors, nbytes, stream, alignment);
    if (!s.ok()) {
      ::unlink(tmp.c_str());
      return Annotate(s, path);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(fmt::format("{}: rename from {}: {}", path, tmp, std::strerror(e)));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return FsyncDir(dir.empty() ? "." : dir);
}

}  // namespace hart::formats

#include "formats/model_source.h"

#include <set>

#include "fmt/format.h"
#include "core/status.h"

namespace hart::formats {

std::string_view FormatName(Format f) {
  switch (f) {
    case Format::kSafetensors: return "safetensors";
    case Format::kGguf: return "gguf";
    case Format::kOnnx: return "onnx";
    case Format::kTorch: return "torch";
    case Format::kLlama2c: return "llama2c";
  }
  return "unknown";
}

absl::StatusOr<Format> FormatFromName(std::string_view name) {
  for (Format f : {Format::kSafetensors, Format::kGguf, Format::kOnnx, Format::kTorch, Format::kLlama2c})
    if (FormatName(f) == name) return f;
  return absl::InvalidArgumentError(fmt::format("unknown format {}", Quote(name)));
}

std::span<const uint8_t> ModelSource::TensorBytes(size_t i) const {
  const TensorDesc& t = tensors[i];
  if (t.owned) return {t.owned->data(), t.owned->size()};
  return files[t.file].map->bytes().subspan(t.offset, t.nbytes);
}

std::span<const uint8_t> ModelSource::SegmentBytes(size_t file, const Segment& s) const {
  return files[file].map->bytes().subspan(s.offset, s.size);
}

uint64_t ModelSource::TotalTensorBytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.nbytes;
  return n;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

absl::Status ValidateSource(const ModelSource& src) {
  std::set<std::string_view> names;
  if (src.tensors.size() > kMaxTensors)
    return DataError(src.path, 0, "tensors", fmt::format("{} tensors exceed the limit of {} (kMaxTensors)",
                                                         src.tensors.size(), kMaxTensors));
  for (size_t i = 0; i < src.tensors.size(); ++i) {
    const TensorDesc& t = src.tensors[i];
    std::string where = t.owned || src.files.empty()
                            ? src.path
                            : src.files[std::min<size_t>(t.file, src.files.size() - 1)].name;
    if (t.name.size() > kMaxNameBytes)
      return DataError(where, t.offset, fmt::format("tensor {}", Quote(t.name)),
                       fmt::format("name of {} bytes exceeds the limit of {} (kMaxNameBytes)", t.name.size(),
                                   kMaxNameBytes));
    if (!IsValidUtf8(t.name))
      return DataError(where, t.offset, "tensor name", "not valid UTF-8");
    if (!names.insert(t.name).second)
      return DataError(where, t.offset, fmt::format("tensor {}", Quote(t.name)), "duplicate tensor name");
    ASSIGN_OR_RETURN(uint64_t elems, NumElements(t.shape));
    auto bytes = ByteSize(t.dtype, elems);
    if (!bytes.ok())
      return DataError(where, t.offset, fmt::format("tensor {}", Quote(t.name)), Msg(bytes.status()));
    if (*bytes != t.nbytes)
      return DataError(where, t.offset, fmt::format("tensor {}", Quote(t.name)),
                       fmt::format("shape {} x {} is {} bytes but the data is {} bytes",
                                   ShapeToString(t.shape), Name(t.dtype), *bytes, t.nbytes));
    if (t.owned) {
      if (t.owned->size() != t.nbytes)
        return absl::InternalError(fmt::format("tensor {}: owned bytes size mismatch", Quote(t.name)));
      continue;
    }
    if (t.file >= src.files.size())
      return absl::InternalError(fmt::format("tensor {}: file index out of range", Quote(t.name)));
    uint64_t fsize = src.files[t.file].map->size();
    if (t.offset > fsize || t.nbytes > fsize - t.offset)
      return DataError(where, t.offset, fmt::format("tensor {}", Quote(t.name)),
                       fmt::format("data [{}, {}) lies past the end of the file ({} bytes)",
                                   t.offset, t.offset + t.nbytes, fsize));
  }
  for (size_t f = 0; f < src.files.size(); ++f) {
    const SourceFile& sf = src.files[f];
    if (sf.layout.empty()) continue;
    uint64_t pos = 0;
    for (const Segment& s : sf.layout) {
      if (s.offset != pos)
        return absl::InternalError(fmt::format("{}: layout gap or overlap at offset {}", sf.name, pos));
      if (s.tensor >= 0) {
        if (static_cast<size_t>(s.tensor) >= src.tensors.size())
          return absl::InternalError(fmt::format("{}: layout names tensor {}", sf.name, s.tensor));
        const TensorDesc& t = src.tensors[s.tensor];
        if (t.owned || t.file != f || t.offset != s.offset || t.nbytes != s.size)
          return absl::InternalError(fmt::format("{}: layout segment at {} does not match tensor {}",
                                                 sf.name, s.offset, Quote(t.name)));
      }
      pos += s.size;
    }
    if (pos != sf.map->size())
      return absl::InternalError(fmt::format("{}: layout covers {} of {} bytes", sf.name, pos,
                                             sf.map->size()));
  }
  return absl::OkStatus();
}

}  // namespace hart::formats

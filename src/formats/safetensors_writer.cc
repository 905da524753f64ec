// Writing .safetensors files (sub-models, `hart load`). Whole-file export of
// an ingested model goes through layouts instead and is byte-exact.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <vector>

#include <cstring>

#include "core/file_util.h"
#include "core/status.h"
#include "fmt/ranges.h"
#include "formats/safetensors.h"
#include "formats/safetensors_json.h"

namespace hart::formats {
namespace {

using safetensors_internal::Quote;

// Small tensors are gathered into one buffer to save syscalls; big ones are
// written straight from the caller's span.
constexpr size_t kWriteBuffer = 1 << 20;

// A JSON string literal (the header is JSON; Quote is for messages only).
std::string JsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::string> BuildHeader(const std::vector<TensorDesc>& tensors,
                                        const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!IsValidUtf8(k) || !IsValidUtf8(v))
        return absl::InvalidArgumentError(fmt::format("__metadata__ {}: not valid UTF-8", Quote(k)));
      if (!first) h += ',';
      first = false;
      h += JsonString(k) + ":" + JsonString(v);
    }
    h += '}';
  }
  std::set<std::string_view> names;
  uint64_t pos = 0;
  for (const TensorDesc& t : tensors) {
    if (!IsValidUtf8(t.name))
      return absl::InvalidArgumentError(fmt::format("tensor {}: name is not valid UTF-8", Quote(t.name)));
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      return absl::InvalidArgumentError(fmt::format("tensor {}: duplicate or reserved name", Quote(t.name)));
    std::string_view st = Info(t.dtype).safetensors_name;
    if (st.empty())
      return absl::InvalidArgumentError(
          fmt::format("tensor {}: dtype {} has no safetensors equivalent", Quote(t.name), Name(t.dtype)));
    ASSIGN_OR_RETURN(uint64_t elems, NumElements(t.shape));
    ASSIGN_OR_RETURN(uint64_t nbytes, ByteSize(t.dtype, elems));
    if (nbytes != t.nbytes)
      return absl::InvalidArgumentError(fmt::format("tensor {}: shape {} x {} is {} bytes, nbytes says {}",
                                                    Quote(t.name), ShapeToString(t.shape), st,
                                                    nbytes, t.nbytes));
    if (h.size() > 1) h += ',';  // after "{" alone, this is the first member
    h += JsonString(t.name);
    h += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", st,
                     fmt::join(t.shape, ","), pos, pos + nbytes);
    pos += nbytes;
  }
  h += '}';
  // Readers may then map the data 8-byte aligned.
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

absl::Status WriteBody(int fd, const std::string& tmp, const std::string& header,
                       const std::vector<TensorDesc>& tensors, const TensorBytesFn& bytes) {
  std::vector<uint8_t> buf;
  buf.reserve(kWriteBuffer);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) buf.push_back(static_cast<uint8_t>(n >> (8 * i)));
  buf.insert(buf.end(), header.begin(), header.end());
  for (size_t i = 0; i < tensors.size(); ++i) {
    ASSIGN_OR_RETURN(std::span<const uint8_t> data, bytes(i));
    if (data.size() != tensors[i].nbytes)
      return absl::InvalidArgumentError(fmt::format("tensor {}: {} bytes supplied, {} expected",
                                                    Quote(tensors[i].name), data.size(),
                                                    tensors[i].nbytes));
    if (buf.size() + data.size() > kWriteBuffer) {
      RETURN_IF_ERROR(WriteAll(fd, buf, tmp));
      buf.clear();
    }
    if (data.size() >= kWriteBuffer) {
      RETURN_IF_ERROR(WriteAll(fd, data, tmp));
    } else {
      buf.insert(buf.end(), data.begin(), data.end());
    }
  }
  RETURN_IF_ERROR(WriteAll(fd, buf, tmp));
  return FsyncFd(fd, tmp);
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorDesc>& tensors,
                              const std::map<std::string, std::string>& metadata,
                              const TensorBytesFn& bytes) {
  ASSIGN_OR_RETURN(std::string header, BuildHeader(tensors, metadata));
  if (header.size() > kMaxSafetensorsHeader)
    return absl::InvalidArgumentError(fmt::format("{}: header of {} bytes exceeds the {}-byte limit",
                                                  path, header.size(), kMaxSafetensorsHeader));
  std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  absl::Status s;
  {
    auto fd = OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC);
    if (!fd.ok()) return fd.status();
    s = WriteBody(fd->get(), tmp, header, tensors, bytes);
  }
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    s = absl::InternalError(fmt::format("{}: rename: {}", path, std::strerror(errno)));
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return FsyncDir(dir.empty() ? "." : dir);
}

}  // namespace hart::formats

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "formats/gguf.h"
#include "formats/model_source.h"
#include "formats/onnx.h"
#include "formats/safetensors.h"
#include "formats/torch.h"

namespace hart::formats {
namespace fs = std::filesystem;

namespace {

// Reads the first bytes of a file to tell formats apart by content, not name.
std::string Magic(const std::string& path) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return "";
  char buf[8] = {};
  ssize_t n = ::read(fd->get(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

}  // namespace

absl::StatusOr<ModelSource> OpenModel(const std::string& path) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  if (fs::is_directory(st)) {
    // A Hugging Face style directory: an index, else the one .safetensors file,
    // else one .gguf.
    std::vector<std::string> index, st_files, gguf;
    for (const auto& e : fs::directory_iterator(path)) {
      std::string n = e.path().filename().string();
      if (absl::EndsWith(n, ".safetensors.index.json")) index.push_back(e.path().string());
      else if (absl::EndsWith(n, ".safetensors")) st_files.push_back(e.path().string());
      else if (absl::EndsWith(n, ".gguf")) gguf.push_back(e.path().string());
    }
    if (index.size() == 1) return ReadSafetensorsDir(path, fs::path(index[0]).filename().string());
    if (index.size() > 1)
      return absl::InvalidArgumentError(absl::StrCat(path, ": more than one *.safetensors.index.json; name the one to ingest"));
    if (st_files.size() == 1) return ReadSafetensorsDir(path, fs::path(st_files[0]).filename().string());
    if (st_files.size() > 1)
      return absl::InvalidArgumentError(absl::StrCat(path, ": several .safetensors files and no index; ingest them one by one"));
    if (gguf.size() == 1) return ReadGguf(gguf[0]);
    return absl::InvalidArgumentError(absl::StrCat(path, ": no model file found (looked for *.safetensors, *.safetensors.index.json, *.gguf)"));
  }
  std::string magic = Magic(path);
  if (magic.rfind("GGUF", 0) == 0) return ReadGguf(path);
  if (absl::EndsWith(path, ".json")) return ReadSafetensors(path);
  if (absl::EndsWith(path, ".safetensors")) return ReadSafetensors(path);
  if (absl::EndsWith(path, ".onnx")) return ReadOnnx(path);
  // PyTorch checkpoints (.pt/.pth/.bin): a zip archive or a pickle stream.
  if (LooksLikeTorch({reinterpret_cast<const uint8_t*>(magic.data()), magic.size()}))
    return ReadTorch(path);
  return absl::InvalidArgumentError(absl::StrCat(path, ": unrecognized model format (expected safetensors, a safetensors index, or GGUF)"));
}

}  // namespace hart::formats

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
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

// pytorch_model.bin.index.json and the like: the index of sharded torch.save files.
bool IsTorchIndexName(const std::string& n) {
  for (std::string_view ext : {".bin.index.json", ".pt.index.json", ".pth.index.json"})
    if (n.ends_with(ext)) return true;
  return false;
}

}  // namespace

absl::StatusOr<ModelSource> OpenModel(const std::string& path) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  if (fs::is_directory(st)) {
    // A Hugging Face style directory. Safetensors first (a repository often
    // carries the same weights as both): its index, else the one
    // .safetensors file; then PyTorch: a *.bin.index.json, else
    // pytorch_model.bin, else the one .bin/.pt/.pth checkpoint; then one .gguf.
    std::vector<std::string> index, st_files, torch_index, torch_files, gguf;
    bool has_pytorch_model = false;
    for (const auto& e : fs::directory_iterator(path)) {
      std::string n = e.path().filename().string();
      if (absl::EndsWith(n, ".safetensors.index.json")) index.push_back(n);
      else if (absl::EndsWith(n, ".safetensors")) st_files.push_back(n);
      else if (IsTorchIndexName(n)) torch_index.push_back(n);
      else if (absl::EndsWith(n, ".bin") || absl::EndsWith(n, ".pt") || absl::EndsWith(n, ".pth")) {
        std::string m = Magic(e.path().string());
        if (!LooksLikeTorch({reinterpret_cast<const uint8_t*>(m.data()), m.size()})) continue;
        torch_files.push_back(n);
        has_pytorch_model |= n == "pytorch_model.bin";
      } else if (absl::EndsWith(n, ".gguf")) gguf.push_back(e.path().string());
    }
    std::sort(torch_files.begin(), torch_files.end());
    if (index.size() == 1) return ReadSafetensorsDir(path, index[0]);
    if (index.size() > 1)
      return absl::InvalidArgumentError(absl::StrCat(path, ": more than one *.safetensors.index.json; name the one to ingest"));
    if (st_files.size() == 1) return ReadSafetensorsDir(path, st_files[0]);
    if (st_files.size() > 1)
      return absl::InvalidArgumentError(absl::StrCat(path, ": several .safetensors files and no index; ingest them one by one"));
    if (torch_index.size() == 1) return ReadTorchDir(path, torch_index[0]);
    if (torch_index.size() > 1)
      return absl::InvalidArgumentError(absl::StrCat(path, ": more than one *.bin.index.json; name the one to ingest"));
    if (has_pytorch_model) return ReadTorchDir(path, "pytorch_model.bin");
    if (torch_files.size() == 1) return ReadTorchDir(path, torch_files[0]);
    if (torch_files.size() > 1)
      return absl::InvalidArgumentError(fmt::format(
          "{}: several PyTorch checkpoints ({}) and no pytorch_model.bin or *.bin.index.json; name the one to ingest",
          path, fmt::join(torch_files, ", ")));
    if (gguf.size() == 1) return ReadGguf(gguf[0]);
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": no model file found (looked for *.safetensors, *.safetensors.index.json, "
              "pytorch_model.bin, *.bin.index.json, *.gguf)"));
  }
  std::string magic = Magic(path);
  if (magic.rfind("GGUF", 0) == 0) return ReadGguf(path);
  if (IsTorchIndexName(fs::path(path).filename().string())) return ReadTorchIndex(path);
  if (absl::EndsWith(path, ".json")) return ReadSafetensors(path);
  if (absl::EndsWith(path, ".safetensors")) return ReadSafetensors(path);
  if (absl::EndsWith(path, ".onnx")) return ReadOnnx(path);
  // PyTorch checkpoints (.pt/.pth/.bin): a zip archive or a pickle stream.
  if (LooksLikeTorch({reinterpret_cast<const uint8_t*>(magic.data()), magic.size()}))
    return ReadTorch(path);
  return absl::InvalidArgumentError(absl::StrCat(path, ": unrecognized model format (expected safetensors, a safetensors or PyTorch index, GGUF, ONNX or a PyTorch checkpoint)"));
}

}  // namespace hart::formats

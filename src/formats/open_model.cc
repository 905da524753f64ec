#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/model_source.h"
#include "formats/onnx.h"
#include "formats/safetensors.h"
#include "formats/torch.h"

namespace hart::formats {
namespace fs = std::filesystem;

namespace {

// Reads the first bytes of a file to tell formats apart by content, not name
// (enough for a llama2.c header, which has no magic).
std::string Magic(const std::string& path) {
  // O_NONBLOCK: a FIFO or device that slipped past the type check must not
  // block the open; the read of a non-regular file is refused below anyway.
  auto fd = OpenFile(path, O_RDONLY | O_NONBLOCK);
  if (!fd.ok()) return "";
  struct stat st;
  if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  char buf[kLlama2cHeaderBytes] = {};
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

std::string_view FileTypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symbolic link";
  }
  return "not a regular file";
}

absl::Status CheckModelPath(const std::string& path, bool directory_ok) {
  // stat, never open: opening a FIFO for reading blocks until a writer comes.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
    if (e == ELOOP)
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": symbolic link loop (ELOOP: too many levels of symbolic links)"));
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot stat: ", std::strerror(e)));
  }
  if (S_ISDIR(st.st_mode)) {
    if (directory_ok) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, expected a file"));
  }
  if (!S_ISREG(st.st_mode))
    return absl::InvalidArgumentError(fmt::format("{}: is {}, not a regular file; model files are read "
                                                  "whole, so copy it to a file first",
                                                  path, FileTypeName(st.st_mode)));
  if (st.st_size == 0) return absl::DataLossError(absl::StrCat(path, ": empty file (0 bytes)"));
  return absl::OkStatus();
}

absl::StatusOr<ModelSource> OpenModel(const std::string& path, const OpenOptions& options) {
  RETURN_IF_ERROR(CheckModelPath(path, true));
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (!options.tokenizer.empty()) {
    // Only llama2.c checkpoints take a tokenizer file of their own; a file
    // that is no other format gets the llama2.c header's own error.
    std::string m = fs::is_directory(st) ? "" : Magic(path);
    std::span<const uint8_t> head(reinterpret_cast<const uint8_t*>(m.data()), m.size());
    if (fs::is_directory(st) || m.rfind("GGUF", 0) == 0 || LooksLikeTorch(head) ||
        absl::EndsWith(path, ".safetensors") || absl::EndsWith(path, ".json") || absl::EndsWith(path, ".onnx"))
      return absl::InvalidArgumentError(fmt::format(
          "{}: --tokenizer {} applies to llama2.c checkpoints only; this is not one", path, options.tokenizer));
    return ReadLlama2c(path, options.tokenizer);
  }
  if (fs::is_directory(st)) {
    // A Hugging Face style directory. Safetensors first (a repository often
    // carries the same weights as both): its index, else the one
    // .safetensors file; then PyTorch: a *.bin.index.json, else
    // pytorch_model.bin, else the one .bin/.pt/.pth checkpoint; then one .gguf;
    // then one llama2.c checkpoint (with its tokenizer file beside it).
    std::vector<std::string> index, st_files, torch_index, torch_files, gguf, llama2c;
    bool has_pytorch_model = false;
    for (const auto& e : fs::directory_iterator(path)) {
      std::string n = e.path().filename().string();
      if (absl::EndsWith(n, ".safetensors.index.json")) index.push_back(n);
      else if (absl::EndsWith(n, ".safetensors")) st_files.push_back(n);
      else if (IsTorchIndexName(n)) torch_index.push_back(n);
      else if (absl::EndsWith(n, ".bin") || absl::EndsWith(n, ".pt") || absl::EndsWith(n, ".pth")) {
        std::string m = Magic(e.path().string());
        std::span<const uint8_t> head(reinterpret_cast<const uint8_t*>(m.data()), m.size());
        if (!LooksLikeTorch(head)) {
          if (LooksLikeLlama2c(head, e.file_size(ec))) llama2c.push_back(e.path().string());
          continue;
        }
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
    if (llama2c.size() == 1) return ReadLlama2c(llama2c[0]);
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": no model file found (looked for *.safetensors, *.safetensors.index.json, "
              "pytorch_model.bin, *.bin.index.json, *.gguf, one llama2.c checkpoint)"));
  }
  std::string magic = Magic(path);
  if (magic.rfind("GGUF", 0) == 0) return ReadGguf(path);
  if (IsTorchIndexName(fs::path(path).filename().string())) return ReadTorchIndex(path);
  if (absl::EndsWith(path, ".json")) return ReadSafetensors(path);
  if (absl::EndsWith(path, ".safetensors")) return ReadSafetensors(path);
  if (absl::EndsWith(path, ".onnx")) return ReadOnnx(path);
  // PyTorch checkpoints (.pt/.pth/.bin): a zip archive or a pickle stream.
  std::span<const uint8_t> head(reinterpret_cast<const uint8_t*>(magic.data()), magic.size());
  if (LooksLikeTorch(head)) return ReadTorch(path);
  // A llama2.c checkpoint has no magic: its header must describe exactly
  // this file's size (checked after PyTorch, whose .bin files are zip or pickle).
  // A plausible header with the wrong size gets the size error (truncated).
  if (LooksLikeLlama2c(head, fs::file_size(path, ec)) || ParseLlama2cFields(head, path).ok())
    return ReadLlama2c(path);
  return absl::InvalidArgumentError(absl::StrCat(path, ": unrecognized model format (expected safetensors, a safetensors or PyTorch index, GGUF, ONNX, a PyTorch checkpoint or a llama2.c checkpoint)"));
}

}  // namespace hart::formats

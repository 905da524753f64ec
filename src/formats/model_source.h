// ModelSource: what every format reader produces and the store ingests.
// A reader validates the file completely (bounds, overlaps, sizes, names)
// before returning, so the store never sees an inconsistent source.
//
// Byte-exact export rests on `SourceFile::layout`: the file is an ordered list
// of segments that covers it without gaps, each either tensor data (stored as
// that tensor's chunks) or other bytes (headers, metadata, padding; stored as
// chunks too). Writing the segments back in order gives the original file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/shape.h"
#include "nlohmann/json.hpp"
#include "formats/limits.h"

namespace hart::formats {

enum class Format : uint8_t { kSafetensors, kGguf, kOnnx, kTorch, kLlama2c };
// "safetensors", "gguf", "onnx", "torch", "llama2c"
std::string_view FormatName(Format f);
absl::StatusOr<Format> FormatFromName(std::string_view name);

struct TensorDesc {
  std::string name;  // as in the file, UTF-8
  DType dtype = DType::kF32;
  Shape shape;        // outermost first
  uint32_t file = 0;  // index into ModelSource::files
  uint64_t offset = 0;  // absolute byte offset of the data in that file
  uint64_t nbytes = 0;
  // Set when the bytes are not one span of a source file (a strided PyTorch
  // view made contiguous, say); file/offset are then meaningless.
  std::shared_ptr<const std::vector<uint8_t>> owned;
};

struct Segment {
  uint64_t offset = 0;
  uint64_t size = 0;
  int64_t tensor = -1;  // index into ModelSource::tensors, or -1 for other bytes
};

struct SourceFile {
  std::string name;  // path relative to the model's root, as export writes it
  std::shared_ptr<MappedFile> map;
  // Covers [0, map->size()) in order without gaps. Empty when this format is
  // not reproduced byte for byte from its layout.
  std::vector<Segment> layout;
};

// One operator of an explicit computational graph (ONNX), in graph order.
// inputs/outputs are value names ("" marks an omitted optional input);
// attributes are JSON by attribute name.
struct GraphNode {
  std::string name;  // may be empty in the file
  std::string op_type;
  std::string domain;  // "" is the default ONNX domain
  std::vector<std::string> inputs, outputs;
  nlohmann::json attributes = nlohmann::json::object();
  // Tensors that are initializers of this node's subgraphs (If branches,
  // Loop and Scan bodies, at any depth): the node consumes them.
  std::vector<std::string> subgraph_tensors;
};

struct ModelSource {
  Format format = Format::kSafetensors;
  std::string path;       // what the caller opened (file or directory)
  std::string name_hint;  // default model name: file stem without shard suffix
  // The file's metadata as JSON: safetensors __metadata__, GGUF key/values
  // (arrays longer than kMaxJsonArray summarized as
  // {"type":"array","element_type":T,"count":N,"head":[...]}), config.json.
  nlohmann::json metadata = nlohmann::json::object();
  std::string architecture;            // "llama", "qwen2"; "" when unknown
  std::optional<std::string> license;  // from the metadata, when present
  std::vector<SourceFile> files;
  std::vector<TensorDesc> tensors;
  // The operator graph when the format carries one (ONNX); empty otherwise,
  // and the store then derives structure from tensor names.
  std::vector<GraphNode> graph;

  std::span<const uint8_t> TensorBytes(size_t i) const;
  std::span<const uint8_t> SegmentBytes(size_t file, const Segment& s) const;
  uint64_t TotalTensorBytes() const;
};

inline constexpr size_t kMaxJsonArray = 64;

// Supplies a tensor's bytes to a writer. The span stays valid until the
// next call.
using TensorBytesFn = std::function<absl::StatusOr<std::span<const uint8_t>>(size_t index)>;

// Checks the invariants above: layouts cover files exactly, tensor spans lie
// inside their files, segments that claim a tensor match its span, byte
// sizes equal shape x dtype, names unique and UTF-8. Readers call it last.
absl::Status ValidateSource(const ModelSource& src);

bool IsValidUtf8(std::string_view s);

// Opens a model of any supported format: a .safetensors file, a sharded
// checkpoint's *.safetensors.index.json, a .gguf file or the first part of a
// split GGUF, a .onnx file, a PyTorch checkpoint (.bin/.pt/.pth) or a sharded
// one's *.bin.index.json, or a Hugging Face directory holding safetensors
// (preferred when both are there) or PyTorch weights, plus config.json and
// tokenizer files kept as extra files.
//
// A llama2.c checkpoint (no magic: recognized by its header describing
// exactly the file's size, after the PyTorch checks) comes with its
// tokenizer file: `options.tokenizer`, else one found beside it (see
// FindLlama2cTokenizer in llama2c.h).
struct OpenOptions {
  std::string tokenizer;  // a llama2.c tokenizer file; "" = look beside the checkpoint
};
// Checks the path first (CheckModelPath), so a FIFO or device is refused
// without being opened.
absl::StatusOr<ModelSource> OpenModel(const std::string& path, const OpenOptions& options = {});

// What every command that reads a model file checks before opening it, by
// stat alone: NotFound when it is missing; InvalidArgument for a symlink loop
// (named as such), a FIFO, socket or device (opening a FIFO would block), or
// a directory when `directory_ok` is false; DataLoss "empty file" for 0 bytes.
absl::Status CheckModelPath(const std::string& path, bool directory_ok);

}  // namespace hart::formats

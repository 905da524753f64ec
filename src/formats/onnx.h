// ONNX reader (https://onnx.ai, onnx.proto): a ModelProto in a .onnx file,
// with its initializers' bytes inline (raw_data) or in external data files.
//
// ModelSource of an ONNX model: one tensor per graph initializer, in graph
// order, then one per initializer of a subgraph (If branches, Loop and Scan
// bodies, at any depth) in file order, named as in the file unless an
// earlier tensor has that name, then qualified by the subgraph's path
// ("if_node/then_branch/c"); each is listed in GraphNode::subgraph_tensors of
// the main graph node holding its subgraph. `graph` holds the operator nodes; metadata holds ir_version,
// producer, opset imports, metadata_props, graph inputs/outputs and every
// node with its attributes (tensor-valued attributes summarized). Files: the
// .onnx file, then each external data file (named by its `location`,
// relative to the model's directory) in first-use order. Every file has a
// layout that reproduces it byte for byte: raw_data payloads and external
// spans are tensor segments, all protobuf bytes and gaps are other bytes.
//
// Zero copy: raw_data payloads and external spans are referenced in place.
// Initializers stored as typed repeated fields (float_data, int32_data, ...)
// are converted to little-endian `owned` bytes; their protobuf bytes stay in
// the .onnx file's raw segments, so export is still byte-exact.
// Offsets and lengths are 64-bit everywhere, so external data files over
// 2 GiB (offsets past 2^32) work; the .onnx file itself must be under 2 GiB
// (protobuf's limit). Tensors in node attributes (Constant's `value`) stay
// protobuf bytes, not tensors; external data there is refused.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/model_source.h"

namespace hart::formats {

// Where an initializer's bytes lie outside the .onnx file.
struct OnnxExternalRef {
  std::string location;  // as in the file, not yet checked
  uint64_t offset = 0;
  std::optional<uint64_t> length;  // absent: to the end of the file
  uint64_t at = 0;  // offset of the initializer in the .onnx file, for errors
};

struct OnnxModel {
  std::vector<TensorDesc> tensors;  // file 0 = the .onnx file
  std::vector<std::optional<OnnxExternalRef>> external;  // per tensor
  std::vector<Segment> layout;  // of the .onnx file; tensor = index in tensors
  std::vector<GraphNode> graph;
  nlohmann::json metadata = nlohmann::json::object();
  std::optional<std::string> license;
};

// Parses a whole .onnx file held in memory; `name` is used in errors. Every
// failure on bad bytes is a DataError naming name, offset and field.
absl::StatusOr<OnnxModel> ParseOnnx(std::span<const uint8_t> bytes, std::string_view name);

// Reads a .onnx file and its external data files.
absl::StatusOr<ModelSource> ReadOnnx(const std::string& path);

// ONNX TensorProto.DataType -> DType; NotFound for types with no DType
// (STRING, COMPLEX64/128, the FNUZ float8s, ...).
absl::StatusOr<DType> DTypeFromOnnx(int32_t data_type);
std::string_view OnnxTypeName(int32_t data_type);  // "FLOAT", "STRING", "17"...

}  // namespace hart::formats

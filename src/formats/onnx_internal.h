// Internals shared by the ONNX reader's files; not part of the formats API.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/onnx.h"
#include "onnx/onnx_pb.h"

namespace hart::formats::onnx_internal {

// Fills out->graph, out->metadata and out->license from the parsed model
// (whose graph field is empty) and its graph (whose initializers are
// empty); refuses external data in Constant and other tensor attributes.
// subgraph_tensors: (main graph node index, tensor name) of each subgraph
// initializer read as a tensor, noted on that node.
absl::Status DescribeModel(const onnx::ModelProto& model, const onnx::GraphProto& graph,
                           std::string_view file,
                           const std::vector<std::pair<size_t, std::string>>& subgraph_tensors,
                           OnnxModel* out);

// Text for JSON: the string itself when valid UTF-8, else with each byte of
// an invalid sequence written as \xNN, so metadata never fails to serialize.
std::string JsonText(std::string_view s);

}  // namespace hart::formats::onnx_internal

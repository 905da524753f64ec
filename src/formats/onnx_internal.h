// Internals shared by the ONNX reader's files; not part of the formats API.
#pragma once

#include <string>
#include <string_view>

#include "formats/onnx.h"
#include "onnx/onnx_pb.h"

namespace hart::formats::onnx_internal {

// Fills out->graph, out->metadata and out->license from the parsed model
// (whose graph field is empty) and its graph (whose initializers are
// empty); refuses external data inside subgraphs and Constant attributes.
absl::Status DescribeModel(const onnx::ModelProto& model, const onnx::GraphProto& graph,
                           std::string_view file, OnnxModel* out);

// Text for JSON: the string itself when valid UTF-8, else with each byte of
// an invalid sequence written as \xNN, so metadata never fails to serialize.
std::string JsonText(std::string_view s);

}  // namespace hart::formats::onnx_internal

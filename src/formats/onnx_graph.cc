// The ONNX graph as ModelSource::graph and metadata JSON.
#include "core/status.h"
#include "formats/onnx_internal.h"

namespace hart::formats::onnx_internal {
namespace {

using nlohmann::json;

json TensorSummary(const onnx::TensorProto& t) {
  json j = {{"name", JsonText(t.name())},
            {"data_type", std::string(OnnxTypeName(t.data_type()))},
            {"dims", json(std::vector<int64_t>(t.dims().begin(), t.dims().end()))}};
  return j;
}

// Long lists are cut to their head, as GGUF arrays are (kMaxJsonArray).
template <typename List, typename Fn>
json ListJson(const List& list, Fn fn) {
  json arr = json::array();
  for (int i = 0; i < list.size() && static_cast<size_t>(i) < kMaxJsonArray; ++i) arr.push_back(fn(list.Get(i)));
  if (static_cast<size_t>(list.size()) <= kMaxJsonArray) return arr;
  return {{"count", list.size()}, {"head", std::move(arr)}};
}

json TypeJson(const onnx::TypeProto& t) {
  if (!t.has_tensor_type()) return {{"kind", static_cast<int>(t.value_case())}};
  json dims = json::array();
  if (t.tensor_type().has_shape()) {
    for (const auto& d : t.tensor_type().shape().dim()) {
      if (d.has_dim_value()) dims.push_back(d.dim_value());
      else if (d.has_dim_param()) dims.push_back(JsonText(d.dim_param()));
      else dims.push_back(nullptr);
    }
  } else {
    dims = nullptr;
  }
  return {{"elem_type", std::string(OnnxTypeName(t.tensor_type().elem_type()))}, {"shape", dims}};
}

json GraphSummary(const onnx::GraphProto& g) {
  return {{"graph", JsonText(g.name())}, {"nodes", g.node_size()}, {"initializers", g.initializer_size()}};
}

json AttributeJson(const onnx::AttributeProto& a) {
  using A = onnx::AttributeProto;
  auto text = [](const std::string& s) { return JsonText(s); };
  switch (a.type()) {
    case A::FLOAT: return a.f();
    case A::INT: return a.i();
    case A::STRING: return JsonText(a.s());
    case A::TENSOR: return {{"tensor", TensorSummary(a.t())}};
    case A::GRAPH: return GraphSummary(a.g());
    case A::FLOATS: return ListJson(a.floats(), [](float v) { return json(v); });
    case A::INTS: return ListJson(a.ints(), [](int64_t v) { return json(v); });
    case A::STRINGS: return ListJson(a.strings(), text);
    case A::TENSORS: return {{"tensors", ListJson(a.tensors(), TensorSummary)}};
    case A::GRAPHS: return {{"graphs", ListJson(a.graphs(), GraphSummary)}};
    case A::SPARSE_TENSOR: return {{"sparse_tensor", TensorSummary(a.sparse_tensor().values())}};
    default: return {{"attribute_type", static_cast<int>(a.type())}};
  }
}

// External data is resolved for initializers (of the main graph and of
// subgraphs, all of them tensors); in a tensor attribute (Constant) its
// bytes would silently go missing from the store, so it is refused.
absl::Status CheckNoExternal(const onnx::TensorProto& t, std::string_view file, std::string_view where) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    return DataError(file, 0, fmt::format("{} tensor {}", where, Quote(t.name())),
                     "external data outside the main graph's initializers is not supported");
  return absl::OkStatus();
}

absl::Status CheckSubgraphs(const onnx::GraphProto& g, std::string_view file) {
  for (const auto& n : g.node())
    for (const auto& a : n.attribute()) {
      std::string where = fmt::format("node {} attribute {}", Quote(n.name()), Quote(a.name()));
      if (a.has_t()) RETURN_IF_ERROR(CheckNoExternal(a.t(), file, where));
      for (const auto& t : a.tensors()) RETURN_IF_ERROR(CheckNoExternal(t, file, where));
      if (a.has_g()) RETURN_IF_ERROR(CheckSubgraphs(a.g(), file));
      for (const auto& sg : a.graphs()) RETURN_IF_ERROR(CheckSubgraphs(sg, file));
    }
  return absl::OkStatus();
}

json ValueInfos(const google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>& vs) {
  json arr = json::array();
  for (const auto& v : vs) arr.push_back({{"name", JsonText(v.name())}, {"type", TypeJson(v.type())}});
  return arr;
}

}  // namespace

std::string JsonText(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) out.push_back(static_cast<char>(c));
    else out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

absl::Status DescribeModel(const onnx::ModelProto& model, const onnx::GraphProto& graph,
                           std::string_view file,
                           const std::vector<std::pair<size_t, std::string>>& subgraph_tensors,
                           OnnxModel* out) {
  RETURN_IF_ERROR(CheckSubgraphs(graph, file));
  json& m = out->metadata;
  m["ir_version"] = model.ir_version();
  m["producer_name"] = JsonText(model.producer_name());
  m["producer_version"] = JsonText(model.producer_version());
  if (!model.domain().empty()) m["domain"] = JsonText(model.domain());
  if (model.has_model_version()) m["model_version"] = model.model_version();
  if (!model.doc_string().empty()) m["doc_string"] = JsonText(model.doc_string());
  json opsets = json::array();
  for (const auto& o : model.opset_import())
    opsets.push_back({{"domain", JsonText(o.domain())}, {"version", o.version()}});
  m["opset_import"] = std::move(opsets);
  json props = json::object();
  for (const auto& p : model.metadata_props()) {
    props[JsonText(p.key())] = JsonText(p.value());
    if (p.key() == "license") out->license = JsonText(p.value());
  }
  m["metadata_props"] = std::move(props);

  std::vector<std::vector<std::string>> held(static_cast<size_t>(graph.node_size()));
  for (const auto& [node, tensor] : subgraph_tensors)
    if (node < held.size()) held[node].push_back(tensor);
  json nodes = json::array();
  for (const auto& n : graph.node()) {
    GraphNode g;
    g.subgraph_tensors = std::move(held[out->graph.size()]);
    g.name = JsonText(n.name());
    g.op_type = JsonText(n.op_type());
    g.domain = JsonText(n.domain());
    for (const auto& s : n.input()) g.inputs.push_back(JsonText(s));
    for (const auto& s : n.output()) g.outputs.push_back(JsonText(s));
    for (const auto& a : n.attribute()) g.attributes[JsonText(a.name())] = AttributeJson(a);
    json jn = {{"name", g.name}, {"op_type", g.op_type}, {"inputs", g.inputs}, {"outputs", g.outputs}};
    if (!g.domain.empty()) jn["domain"] = g.domain;
    if (!g.attributes.empty()) jn["attributes"] = g.attributes;
    if (!g.subgraph_tensors.empty()) {
      // Names straight from the file: made valid UTF-8 for the metadata.
      json held_names = json::array();
      for (const std::string& t : g.subgraph_tensors) held_names.push_back(JsonText(t));
      jn["subgraph_initializers"] = std::move(held_names);
    }
    nodes.push_back(std::move(jn));
    out->graph.push_back(std::move(g));
  }
  m["graph"] = {{"name", JsonText(graph.name())},
                {"inputs", ValueInfos(graph.input())},
                {"outputs", ValueInfos(graph.output())},
                {"nodes", std::move(nodes)}};
  return absl::OkStatus();
}

}  // namespace hart::formats::onnx_internal

// ParseOnnx: splits the ModelProto with the wire scanner so tensor payloads
// are located (not copied), and lets protobuf decode everything else.
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <set>

#include "core/status.h"
#include "formats/onnx_internal.h"
#include "formats/protowire.h"
#include "formats/limits.h"

namespace hart::formats {
namespace {

using protowire::Field;
using protowire::Reader;
using protowire::WireType;

static_assert(std::endian::native == std::endian::little,
              "typed ONNX initializers are converted by memcpy on a little-endian host");

// onnx.proto field numbers this file relies on.
constexpr uint32_t kModelGraph = 7;
constexpr uint32_t kGraphNode = 1;
constexpr uint32_t kGraphInitializer = 5;
constexpr uint32_t kNodeName = 3;
constexpr uint32_t kNodeAttribute = 5;
constexpr uint32_t kAttributeName = 1;
constexpr uint32_t kAttributeGraph = 6;
constexpr uint32_t kAttributeGraphs = 11;
// kMaxSubgraphDepth: formats/limits.h.
constexpr uint32_t kGraphSparseInitializer = 15;
constexpr uint32_t kTensorRawData = 9;
constexpr int kExternal = 1;  // TensorProto.DataLocation.EXTERNAL

struct TypeRow {
  int32_t onnx;
  std::string_view name;
  std::optional<DType> dtype;
};
constexpr TypeRow kTypes[] = {
    {0, "UNDEFINED", std::nullopt},  {1, "FLOAT", DType::kF32},
    {2, "UINT8", DType::kU8},        {3, "INT8", DType::kI8},
    {4, "UINT16", DType::kU16},      {5, "INT16", DType::kI16},
    {6, "INT32", DType::kI32},       {7, "INT64", DType::kI64},
    {8, "STRING", std::nullopt},     {9, "BOOL", DType::kBool},
    {10, "FLOAT16", DType::kF16},    {11, "DOUBLE", DType::kF64},
    {12, "UINT32", DType::kU32},     {13, "UINT64", DType::kU64},
    {14, "COMPLEX64", std::nullopt}, {15, "COMPLEX128", std::nullopt},
    {16, "BFLOAT16", DType::kBF16},  {17, "FLOAT8E4M3FN", DType::kF8E4M3},
    {18, "FLOAT8E4M3FNUZ", std::nullopt}, {19, "FLOAT8E5M2", DType::kF8E5M2},
    {20, "FLOAT8E5M2FNUZ", std::nullopt},
};

absl::StatusOr<uint64_t> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 20) return absl::InvalidArgumentError("not a decimal number");
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return absl::InvalidArgumentError("not a decimal number");
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return absl::InvalidArgumentError("overflows 64 bits");
    v = v * 10 + d;
  }
  return v;
}

template <typename To, typename From>
void Append(const google::protobuf::RepeatedField<From>& src, std::vector<uint8_t>* out) {
  size_t at = out->size();
  out->resize(at + src.size() * sizeof(To));
  for (int i = 0; i < src.size(); ++i) {
    To v = static_cast<To>(src.Get(i));
    std::memcpy(out->data() + at + i * sizeof(To), &v, sizeof(To));
  }
}

// Converts typed repeated fields to the little-endian bytes raw_data would
// hold. Narrow types (and float16/bfloat16/float8 bit patterns) live in
// int32_data, per onnx.proto.
absl::Status TypedBytes(const onnx::TensorProto& t, DType dtype, uint64_t elems,
                        std::string_view file, uint64_t at, const std::string& field,
                        std::vector<uint8_t>* out) {
  uint64_t have = 0;
  switch (dtype) {
    case DType::kF32: have = t.float_data_size(); Append<float>(t.float_data(), out); break;
    case DType::kF64: have = t.double_data_size(); Append<double>(t.double_data(), out); break;
    case DType::kI64: have = t.int64_data_size(); Append<int64_t>(t.int64_data(), out); break;
    case DType::kU32: have = t.uint64_data_size(); Append<uint32_t>(t.uint64_data(), out); break;
    case DType::kU64: have = t.uint64_data_size(); Append<uint64_t>(t.uint64_data(), out); break;
    case DType::kI32: have = t.int32_data_size(); Append<int32_t>(t.int32_data(), out); break;
    case DType::kI16: have = t.int32_data_size(); Append<int16_t>(t.int32_data(), out); break;
    case DType::kU16: case DType::kF16: case DType::kBF16:
      have = t.int32_data_size(); Append<uint16_t>(t.int32_data(), out); break;
    case DType::kI8: have = t.int32_data_size(); Append<int8_t>(t.int32_data(), out); break;
    case DType::kU8: case DType::kBool: case DType::kF8E4M3: case DType::kF8E5M2:
      have = t.int32_data_size(); Append<uint8_t>(t.int32_data(), out); break;
    default:
      return absl::InternalError("unmapped ONNX dtype");
  }
  if (have != elems)
    return DataError(file, at, field,
                     fmt::format("dims hold {} elements but the typed data has {}", elems, have));
  return absl::OkStatus();
}

bool HasTypedData(const onnx::TensorProto& t) {
  return t.float_data_size() || t.int32_data_size() || t.string_data_size() ||
         t.int64_data_size() || t.double_data_size() || t.uint64_data_size();
}

struct Initializer {
  uint64_t at = 0;  // tag offset in the file
  std::span<const uint8_t> payload;
  uint64_t payload_offset = 0;
  // Subgraph initializers: "node/attribute" path of the subgraph holding it,
  // and the index of the main graph's node whose attribute holds that path.
  std::string scope;
  size_t top_node = 0;
};

std::string FieldText(std::span<const uint8_t> b) {
  return onnx_internal::JsonText(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

absl::Status ScanSubgraph(std::span<const uint8_t> bytes, uint64_t base, std::string_view file,
                          const std::string& scope, size_t top_node, int depth,
                          std::vector<Initializer>* out);

// Finds the initializers of the subgraphs in a node's attributes (If
// branches, Loop and Scan bodies), at any depth.
absl::Status ScanNode(std::span<const uint8_t> bytes, uint64_t base, std::string_view file,
                      const std::string& scope, size_t top_node, int depth,
                      std::vector<Initializer>* out) {
  if (depth > kMaxSubgraphDepth)
    return DataError(file, base, scope, fmt::format("subgraphs nest deeper than {}", kMaxSubgraphDepth));
  Reader node(bytes, base, file, scope + " node");
  std::string name;
  std::vector<Field> attrs;
  Field f;
  while (true) {
    ASSIGN_OR_RETURN(bool more, node.Next(&f));
    if (!more) break;
    if (f.type != WireType::kLen) continue;
    if (f.number == kNodeName) name = FieldText(node.Payload(f));
    if (f.number == kNodeAttribute) attrs.push_back(f);
  }
  if (name.empty()) name = fmt::format("node@{}", base);
  std::string node_scope = scope.empty() ? name : scope + "/" + name;
  for (const Field& af : attrs) {
    Reader attr(node.Payload(af), af.data_offset, file, node_scope + " attribute");
    std::string aname;
    std::vector<Field> graphs;
    Field g;
    while (true) {
      ASSIGN_OR_RETURN(bool more, attr.Next(&g));
      if (!more) break;
      if (g.type != WireType::kLen) continue;
      if (g.number == kAttributeName) aname = FieldText(attr.Payload(g));
      if (g.number == kAttributeGraph || g.number == kAttributeGraphs) graphs.push_back(g);
    }
    for (size_t k = 0; k < graphs.size(); ++k) {
      std::string sub = graphs.size() == 1 ? fmt::format("{}/{}", node_scope, aname)
                                           : fmt::format("{}/{}.{}", node_scope, aname, k);
      RETURN_IF_ERROR(ScanSubgraph(attr.Payload(graphs[k]), graphs[k].data_offset, file, sub, top_node,
                                   depth + 1, out));
    }
  }
  return absl::OkStatus();
}

absl::Status ScanSubgraph(std::span<const uint8_t> bytes, uint64_t base, std::string_view file,
                          const std::string& scope, size_t top_node, int depth,
                          std::vector<Initializer>* out) {
  Reader gr(bytes, base, file, scope);
  Field f;
  while (true) {
    ASSIGN_OR_RETURN(bool more, gr.Next(&f));
    if (!more) break;
    if (f.type != WireType::kLen) continue;  // protobuf judges the rest
    if (f.number == kGraphInitializer)
      out->push_back({f.tag_offset, gr.Payload(f), f.data_offset, scope, top_node});
    else if (f.number == kGraphNode)
      RETURN_IF_ERROR(ScanNode(gr.Payload(f), f.data_offset, file, scope, top_node, depth, out));
  }
  return absl::OkStatus();
}

// Decodes one initializer: protobuf parses everything except raw_data, whose
// span the scanner reports instead.
absl::Status ReadInitializer(const Initializer& in, size_t index, std::string_view file,
                             std::set<std::string>* names, OnnxModel* out) {
  Reader r(in.payload, in.payload_offset, file,
           in.scope.empty() ? fmt::format("initializer[{}]", index)
                            : fmt::format("{} initializer", in.scope));
  std::string rest;
  std::optional<Field> raw;
  Field f;
  while (true) {
    ASSIGN_OR_RETURN(bool more, r.Next(&f));
    if (!more) break;
    if (f.number == kTensorRawData) {
      if (f.type != WireType::kLen)
        return DataError(file, f.tag_offset, r.context() + ".raw_data", "wrong wire type");
      if (raw)
        return DataError(file, f.tag_offset, r.context() + ".raw_data", "raw_data appears twice");
      raw = f;
      continue;
    }
    auto b = r.FieldBytes(f);
    rest.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  onnx::TensorProto t;
  if (!t.ParseFromString(rest))
    return DataError(file, in.at, r.context(), "not a valid TensorProto");
  std::string field = t.name().empty() ? r.context() : fmt::format("initializer {}", Quote(t.name()));
  if (t.name().empty()) return DataError(file, in.at, field + ".name", "initializer has no name");
  std::string tensor_name = t.name();
  // A subgraph's initializer keeps its name unless an outer one (or a
  // sibling subgraph's) has it; then the subgraph's path qualifies it.
  if (!in.scope.empty() && names->count(tensor_name)) tensor_name = in.scope + "/" + tensor_name;
  if (!names->insert(tensor_name).second)
    return DataError(file, in.at, field + ".name", "duplicate initializer name");
  if (t.has_segment())
    return DataError(file, in.at, field + ".segment", "segmented tensors are not supported");

  TensorDesc d;
  d.name = std::move(tensor_name);
  auto dtype = DTypeFromOnnx(t.data_type());
  if (!dtype.ok())
    return DataError(file, in.at, field + ".data_type",
                     fmt::format("type {} ({}) is not supported", OnnxTypeName(t.data_type()),
                                 t.data_type()));
  d.dtype = *dtype;
  for (int64_t dim : t.dims()) {
    if (dim < 0)
      return DataError(file, in.at, field + ".dims", fmt::format("negative dimension {}", dim));
    d.shape.push_back(static_cast<uint64_t>(dim));
  }
  auto elems = NumElements(d.shape);
  if (!elems.ok()) return DataError(file, in.at, field + ".dims", Msg(elems.status()));
  auto want = ByteSize(d.dtype, *elems);
  if (!want.ok()) return DataError(file, in.at, field + ".dims", Msg(want.status()));

  std::optional<OnnxExternalRef> ext;
  if (t.data_location() == kExternal) {
    if (raw || HasTypedData(t))
      return DataError(file, in.at, field + ".data_location", "external tensor also holds data inline");
    OnnxExternalRef e;
    e.at = in.at;
    std::set<std::string> keys;
    bool has_location = false;
    for (const auto& kv : t.external_data()) {
      if (!keys.insert(kv.key()).second)
        return DataError(file, in.at, field + ".external_data",
                         fmt::format("key {} appears twice", Quote(kv.key())));
      if (kv.key() == "location") {
        e.location = kv.value();
        has_location = true;
      } else if (kv.key() == "offset" || kv.key() == "length") {
        auto v = ParseDecimal(kv.value());
        if (!v.ok())
          return DataError(file, in.at, fmt::format("{}.external_data.{}", field, kv.key()),
                           fmt::format("{}: {}", Quote(kv.value()), Msg(v.status())));
        if (kv.key() == "offset") e.offset = *v;
        else e.length = *v;
      }
    }
    if (!has_location || e.location.empty())
      return DataError(file, in.at, field + ".external_data.location", "missing");
    if (e.length && *e.length != *want)
      return DataError(file, in.at, field + ".external_data.length",
                       fmt::format("shape {} x {} is {} bytes but length is {}", ShapeToString(d.shape),
                                   Name(d.dtype), *want, *e.length));
    d.nbytes = *want;
    d.offset = e.offset;
    ext = std::move(e);
  } else if (raw) {
    if (HasTypedData(t))
      return DataError(file, in.at, field, "both raw_data and typed data are set");
    if (raw->value != *want)
      return DataError(file, raw->data_offset, field + ".raw_data",
                       fmt::format("shape {} x {} is {} bytes but raw_data is {} bytes",
                                   ShapeToString(d.shape), Name(d.dtype), *want, raw->value));
    d.offset = raw->data_offset;
    d.nbytes = raw->value;
  } else {
    auto bytes = std::make_shared<std::vector<uint8_t>>();
    RETURN_IF_ERROR(TypedBytes(t, d.dtype, *elems, file, in.at, field, bytes.get()));
    d.nbytes = bytes->size();
    d.owned = std::move(bytes);
  }
  out->tensors.push_back(std::move(d));
  out->external.push_back(std::move(ext));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DType> DTypeFromOnnx(int32_t data_type) {
  for (const TypeRow& r : kTypes)
    if (r.onnx == data_type && r.dtype) return *r.dtype;
  return absl::NotFoundError(fmt::format("ONNX data type {} has no DType", data_type));
}

std::string_view OnnxTypeName(int32_t data_type) {
  for (const TypeRow& r : kTypes)
    if (r.onnx == data_type) return r.name;
  return "unknown";
}

absl::StatusOr<OnnxModel> ParseOnnx(std::span<const uint8_t> bytes, std::string_view name) {
  if (bytes.size() > static_cast<uint64_t>(INT_MAX))
    return DataError(name, 0, "ModelProto",
                     "file is over 2 GiB, protobuf's limit; large weights belong in external data");
  // ModelProto: the graph is split out; everything else goes to protobuf.
  Reader top(bytes, 0, name, "ModelProto");
  std::string model_rest;
  std::optional<Field> graph_field;
  Field f;
  while (true) {
    ASSIGN_OR_RETURN(bool more, top.Next(&f));
    if (!more) break;
    if (f.number == kModelGraph) {
      if (f.type != WireType::kLen) return DataError(name, f.tag_offset, "ModelProto.graph", "wrong wire type");
      if (graph_field) return DataError(name, f.tag_offset, "ModelProto.graph", "graph appears twice");
      graph_field = f;
      continue;
    }
    auto b = top.FieldBytes(f);
    model_rest.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  if (!graph_field) return DataError(name, 0, "ModelProto.graph", "missing (not an ONNX model?)");
  onnx::ModelProto model;
  if (!model.ParseFromString(model_rest))
    return DataError(name, 0, "ModelProto", "not a valid ModelProto");
  if (model.ir_version() <= 0)
    return DataError(name, 0, "ModelProto.ir_version", "missing (not an ONNX model?)");

  // GraphProto: initializers are located and decoded one by one.
  Reader gr(top.Payload(*graph_field), graph_field->data_offset, name, "GraphProto");
  std::string graph_rest;
  std::vector<Initializer> inits, sub_inits;
  size_t node_index = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool more, gr.Next(&f));
    if (!more) break;
    if (f.number == kGraphNode && f.type == WireType::kLen)
      RETURN_IF_ERROR(ScanNode(gr.Payload(f), f.data_offset, name, "", node_index++, 1, &sub_inits));
    if (f.number == kGraphInitializer) {
      if (f.type != WireType::kLen) return DataError(name, f.tag_offset, "GraphProto.initializer", "wrong wire type");
      inits.push_back({f.tag_offset, gr.Payload(f), f.data_offset});
      continue;
    }
    if (f.number == kGraphSparseInitializer)
      return DataError(name, f.tag_offset, "GraphProto.sparse_initializer", "sparse initializers are not supported");
    auto b = gr.FieldBytes(f);
    graph_rest.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  onnx::GraphProto graph;
  if (!graph.ParseFromString(graph_rest))
    return DataError(name, graph_field->data_offset, "GraphProto", "not a valid GraphProto");

  OnnxModel out;
  std::set<std::string> names;
  for (size_t i = 0; i < inits.size(); ++i) RETURN_IF_ERROR(ReadInitializer(inits[i], i, name, &names, &out));
  // Then the subgraphs' initializers, as tensors too; each is noted on the
  // main graph node that holds its subgraph.
  std::vector<std::pair<size_t, std::string>> owners;
  for (size_t i = 0; i < sub_inits.size(); ++i) {
    RETURN_IF_ERROR(ReadInitializer(sub_inits[i], i, name, &names, &out));
    owners.emplace_back(sub_inits[i].top_node, out.tensors.back().name);
  }

  // Layout: raw_data payloads are tensor segments, in file order (distinct
  // fields never overlap: a subgraph's lie inside a node field, apart from
  // the main graph's initializer fields); the rest is protobuf bytes.
  std::vector<size_t> spans;
  for (size_t i = 0; i < out.tensors.size(); ++i) {
    const TensorDesc& t = out.tensors[i];
    if (t.owned || out.external[i] || t.nbytes == 0) continue;
    spans.push_back(i);
  }
  std::sort(spans.begin(), spans.end(),
            [&](size_t a, size_t b) { return out.tensors[a].offset < out.tensors[b].offset; });
  uint64_t pos = 0;
  for (size_t i : spans) {
    const TensorDesc& t = out.tensors[i];
    if (t.offset < pos) return absl::InternalError("raw_data spans overlap");
    if (t.offset > pos) out.layout.push_back({pos, t.offset - pos, -1});
    out.layout.push_back({t.offset, t.nbytes, static_cast<int64_t>(i)});
    pos = t.offset + t.nbytes;
  }
  if (pos < bytes.size()) out.layout.push_back({pos, bytes.size() - pos, -1});

  RETURN_IF_ERROR(onnx_internal::DescribeModel(model, graph, name, owners, &out));
  return out;
}

}  // namespace hart::formats

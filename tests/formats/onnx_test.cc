#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/file_util.h"
#include "core/status.h"
#include "formats/onnx.h"

namespace hart::formats {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string g_dir;  // fixtures written by make_onnx.py

class OnnxTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "/onnx_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    g_dir = tmpl;
    std::string cmd = fmt::format("/usr/bin/python3 {}/tests/fixtures/make_onnx.py {}", HART_SOURCE_DIR, g_dir);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(g_dir, ec);
  }

 protected:
  static std::string Path(const std::string& rel) { return g_dir + "/" + rel; }
};

std::vector<uint8_t> Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::string Reassemble(const ModelSource& src, size_t file) {
  std::string out;
  for (const Segment& s : src.files[file].layout) {
    auto b = src.SegmentBytes(file, s);
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

const TensorDesc* Find(const ModelSource& src, std::string_view name) {
  for (const auto& t : src.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

template <typename T>
std::vector<T> Values(const ModelSource& src, std::string_view name) {
  for (size_t i = 0; i < src.tensors.size(); ++i)
    if (src.tensors[i].name == name) {
      auto b = src.TensorBytes(i);
      std::vector<T> v(b.size() / sizeof(T));
      std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
      return v;
    }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

TEST_F(OnnxTest, ReadsInitializersZeroCopyWithDtypesAndShapes) {
  auto src = ReadOnnx(Path("mlp.onnx"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->format, Format::kOnnx);
  EXPECT_EQ(src->name_hint, "mlp");
  EXPECT_EQ(src->architecture, "onnx");
  ASSERT_EQ(src->tensors.size(), 10u);
  struct Want { const char* name; DType dtype; Shape shape; };
  for (const Want& w : {Want{"fc1.weight", DType::kF32, {4, 8}}, Want{"fc2.weight_f16", DType::kF16, {8, 4}},
                        Want{"fc2.bias_bf16", DType::kBF16, {4}}, Want{"scale_f64", DType::kF64, {4}},
                        Want{"conv.weight_q", DType::kI8, {2, 1, 3, 3}}, Want{"conv.zero_u8", DType::kU8, {1}},
                        Want{"shape", DType::kI64, {4}}, Want{"mask", DType::kBool, {4}}}) {
    const TensorDesc* t = Find(*src, w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->dtype, w.dtype) << w.name;
    EXPECT_EQ(t->shape, w.shape) << w.name;
    EXPECT_EQ(t->owned, nullptr) << w.name << " should be referenced in place";
    EXPECT_EQ(t->file, 0u);
  }
  EXPECT_THAT(Values<int64_t>(*src, "shape"), ElementsAre(1, 1, 2, 2));
  EXPECT_THAT(Values<uint8_t>(*src, "mask"), ElementsAre(1, 0, 1, 1));
  // The layout reproduces the file and every tensor is a segment of it.
  auto bytes = Slurp(Path("mlp.onnx"));
  EXPECT_EQ(Reassemble(*src, 0), std::string(bytes.begin(), bytes.end()));
  size_t tensor_segments = 0;
  for (const Segment& s : src->files[0].layout) tensor_segments += s.tensor >= 0;
  EXPECT_EQ(tensor_segments, 10u);
}

TEST_F(OnnxTest, GraphNodesAttributesAndMetadata) {
  auto src = ReadOnnx(Path("mlp.onnx"));
  ASSERT_TRUE(src.ok()) << src.status();
  ASSERT_EQ(src->graph.size(), 17u);
  EXPECT_EQ(src->graph[0].name, "fc1");
  EXPECT_EQ(src->graph[0].op_type, "MatMul");
  EXPECT_THAT(src->graph[0].inputs, ElementsAre("x", "fc1.weight"));
  EXPECT_THAT(src->graph[0].outputs, ElementsAre("h0"));
  const GraphNode& conv = src->graph.back();
  EXPECT_EQ(conv.op_type, "Conv");
  EXPECT_EQ(conv.attributes["kernel_shape"], nlohmann::json({3, 3}));
  EXPECT_EQ(src->graph[3].attributes["to"], 1);  // Cast to FLOAT
  EXPECT_EQ(src->graph[9].attributes["value"]["tensor"]["name"], "zero_value");
  const auto& m = src->metadata;
  EXPECT_EQ(m["producer_name"], "hart-test");
  EXPECT_EQ(m["producer_version"], "1.0");
  EXPECT_EQ(m["model_version"], 3);
  EXPECT_EQ(m["opset_import"][0]["version"], 13);
  EXPECT_EQ(m["metadata_props"]["author"], "fixtures");
  EXPECT_EQ(m["graph"]["inputs"][0]["type"]["shape"], nlohmann::json({"batch", 4}));
  EXPECT_EQ(m["graph"]["nodes"].size(), 17u);
  EXPECT_EQ(src->license, "apache-2.0");
}

// Initializers of If branches, at any depth, are tensors too: raw_data in
// place, typed fields as owned bytes, a name an outer initializer already
// has qualified by the subgraph's path; the If node lists them.
TEST_F(OnnxTest, SubgraphInitializersAreTensors) {
  auto src = ReadOnnx(Path("subgraph.onnx"));
  ASSERT_TRUE(src.ok()) << src.status();
  std::vector<std::string> names;
  for (const auto& t : src->tensors) names.push_back(t.name);
  // Main graph first, then subgraphs in file order (attributes sorted by
  // name: else_branch, whose nested If comes before its own initializer).
  EXPECT_THAT(names, ElementsAre("w", "cond", "deep_k", "if0/else_branch/w", "then_w"));
  EXPECT_THAT(Values<float>(*src, "then_w"), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(Values<float>(*src, "deep_k"), ElementsAre(9, 9, 9, 9));
  const TensorDesc* dup = Find(*src, "if0/else_branch/w");
  ASSERT_NE(dup, nullptr);
  EXPECT_EQ(dup->dtype, DType::kF16);
  EXPECT_NE(dup->owned, nullptr);  // int32_data, converted
  EXPECT_THAT(Values<uint16_t>(*src, "if0/else_branch/w"), ElementsAre(0x4500, 0x4600, 0x4700, 0x4800));
  EXPECT_EQ(Find(*src, "then_w")->owned, nullptr);
  ASSERT_EQ(src->graph.size(), 2u);
  EXPECT_THAT(src->graph[0].subgraph_tensors, ElementsAre("deep_k", "if0/else_branch/w", "then_w"));
  EXPECT_TRUE(src->graph[1].subgraph_tensors.empty());
  EXPECT_EQ(src->metadata["graph"]["nodes"][0]["subgraph_initializers"].size(), 3u);
  // Still byte-exact: raw_data in subgraphs are tensor segments.
  auto bytes = Slurp(Path("subgraph.onnx"));
  EXPECT_EQ(Reassemble(*src, 0), std::string(bytes.begin(), bytes.end()));
  size_t tensor_segments = 0;
  for (const Segment& s : src->files[0].layout) tensor_segments += s.tensor >= 0;
  EXPECT_EQ(tensor_segments, 4u);  // w, cond, then_w, deep_k
}

TEST_F(OnnxTest, TypedFieldsBecomeLittleEndianOwnedBytes) {
  auto src = ReadOnnx(Path("typed.onnx"));
  ASSERT_TRUE(src.ok()) << src.status();
  for (const auto& t : src->tensors) EXPECT_NE(t.owned, nullptr) << t.name;
  EXPECT_THAT(Values<float>(*src, "f32"), ElementsAre(1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f));
  EXPECT_THAT(Values<int8_t>(*src, "i8"), ElementsAre(-128, -1, 0, 127));
  EXPECT_THAT(Values<uint16_t>(*src, "u16"), ElementsAre(0, 65535));
  EXPECT_THAT(Values<uint16_t>(*src, "f16"), ElementsAre(0x3C00, 0xC000, 0x3800));
  EXPECT_THAT(Values<int64_t>(*src, "i64"), ElementsAre(-(int64_t{1} << 40), int64_t{1} << 62));
  EXPECT_THAT(Values<double>(*src, "f64"), ElementsAre(3.141592653589793, -1e300));
  EXPECT_THAT(Values<uint32_t>(*src, "u32"), ElementsAre(0u, 4294967295u));
  EXPECT_THAT(Values<uint64_t>(*src, "u64"), ElementsAre(UINT64_MAX));
  EXPECT_THAT(Values<uint8_t>(*src, "b"), ElementsAre(1, 0, 1));
  EXPECT_EQ(Find(*src, "u32")->dtype, DType::kU32);
  // No tensor segments: the typed values stay protobuf bytes of the file.
  ASSERT_EQ(src->files[0].layout.size(), 1u);
  EXPECT_EQ(src->files[0].layout[0].tensor, -1);
}

TEST_F(OnnxTest, ExternalDataFileGetsItsOwnLayout) {
  auto src = ReadOnnx(Path("ext/model.onnx"));
  ASSERT_TRUE(src.ok()) << src.status();
  ASSERT_EQ(src->files.size(), 2u);
  EXPECT_EQ(src->files[1].name, "weights.bin");
  const TensorDesc* w1 = Find(*src, "w1");
  const TensorDesc* w2 = Find(*src, "w2");
  ASSERT_TRUE(w1 && w2);
  EXPECT_EQ(w1->file, 1u);
  EXPECT_EQ(w1->offset, 0u);
  EXPECT_EQ(w1->nbytes, 1024u);
  EXPECT_EQ(w2->file, 1u);
  EXPECT_EQ(w2->offset, 1024u + 16u);
  EXPECT_EQ(w2->dtype, DType::kF16);
  EXPECT_EQ(Find(*src, "bias")->file, 0u);
  const auto& lay = src->files[1].layout;
  ASSERT_EQ(lay.size(), 4u);  // w1, gap, w2, tail
  EXPECT_GE(lay[0].tensor, 0);
  EXPECT_EQ(lay[1].tensor, -1);
  EXPECT_EQ(lay[1].size, 16u);
  EXPECT_GE(lay[2].tensor, 0);
  EXPECT_EQ(lay[3].size, 4u);
  auto bin = Slurp(Path("ext/weights.bin"));
  EXPECT_EQ(Reassemble(*src, 1), std::string(bin.begin(), bin.end()));
  auto onnx = Slurp(Path("ext/model.onnx"));
  EXPECT_EQ(Reassemble(*src, 0), std::string(onnx.begin(), onnx.end()));
}

TEST_F(OnnxTest, Float8Types) {
  auto src = ReadOnnx(Path("f8.onnx"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(Find(*src, "a")->dtype, DType::kF8E4M3);
  EXPECT_EQ(Find(*src, "b")->dtype, DType::kF8E5M2);
}

TEST_F(OnnxTest, OpenModelDispatchesOnnx) {
  auto src = OpenModel(Path("mlp.onnx"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->format, Format::kOnnx);
}

TEST_F(OnnxTest, BadModelsNameFileOffsetAndField) {
  struct Case { const char* file; const char* field; const char* what; };
  for (const Case& c : {
           Case{"bad/raw_size.onnx", "initializer 'w'.raw_data", "raw_data is 20 bytes"},
           Case{"bad/string_type.onnx", "initializer 's'.data_type", "STRING"},
           Case{"bad/duplicate.onnx", "initializer 'w'.name", "duplicate"},
           Case{"bad/typed_count.onnx", "initializer 't'", "typed data has 2"},
           Case{"bad_ext/escape/model.onnx", "external_data.location", "leaves the model's directory"},
           Case{"bad_ext/absolute/model.onnx", "external_data.location", "absolute"},
           Case{"bad_ext/past_end/model.onnx", "initializer 'w1'.external_data", "past the end"},
           Case{"bad_ext/missing/model.onnx", "external_data.location", "nope.bin"},
           Case{"bad_ext/symlink/model.onnx", "external_data.location", "outside the model's directory"},
       }) {
    auto src = ReadOnnx(Path(c.file));
    ASSERT_FALSE(src.ok()) << c.file;
    EXPECT_EQ(src.status().code(), absl::StatusCode::kDataLoss) << c.file << ": " << src.status();
    std::string msg(Msg(src.status()));
    EXPECT_THAT(msg, HasSubstr(fs::path(c.file).filename().string())) << msg;
    EXPECT_THAT(msg, HasSubstr("offset ")) << msg;
    EXPECT_THAT(msg, HasSubstr(c.field)) << msg;
    EXPECT_THAT(msg, HasSubstr(c.what)) << msg;
  }
}

TEST_F(OnnxTest, EveryTruncationIsADataErrorOrAValidPrefix) {
  auto bytes = Slurp(Path("mlp.onnx"));
  size_t errors = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto m = ParseOnnx({bytes.data(), n}, "cut.onnx");
    if (m.ok()) continue;  // a cut on a field boundary is a valid (smaller) message
    ++errors;
    ASSERT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << n << ": " << m.status();
    ASSERT_THAT(std::string(Msg(m.status())), HasSubstr("cut.onnx: offset ")) << n;
  }
  EXPECT_GT(errors, bytes.size() / 2);
}

TEST_F(OnnxTest, MalformedWireBytes) {
  struct Case { std::vector<uint8_t> bytes; const char* what; };
  for (const Case& c : {
           Case{{0x08, 0x07, 0x3a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "varint"},
           Case{{0x08, 0x07, 0x3a, 0x7f, 0x00}, "runs past the end"},
           Case{{0x08, 0x07, 0x3b}, "wire type 3"},
           Case{{0x08, 0x07, 0x38, 0x01}, "ModelProto.graph"},
           Case{{0x08, 0x07}, "ModelProto.graph"},
           Case{{0x3a, 0x00}, "ir_version"},
           Case{{0x08, 0x07, 0x3a, 0x02, 0x2a, 0x05}, "GraphProto.field 5"},
           Case{{0x08, 0x07, 0x3a, 0x02, 0x00, 0x00}, "field number 0"},
       }) {
    auto m = ParseOnnx(c.bytes, "w.onnx");
    ASSERT_FALSE(m.ok()) << c.what;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
    EXPECT_THAT(std::string(Msg(m.status())), HasSubstr(c.what));
  }
}

// Crashers the fuzzer found, and its seeds: parsing them must just return.
TEST_F(OnnxTest, FuzzRegressionsAndCorpusParseCleanly) {
  size_t n = 0;
  for (const char* sub : {"/fuzz/regressions/onnx", "/fuzz/corpus/onnx"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(std::string(HART_SOURCE_DIR) + sub, ec)) {
      if (!e.is_regular_file()) continue;
      auto bytes = Slurp(e.path().string());
      auto m = ParseOnnx(bytes, e.path().filename().string());
      if (!m.ok()) {
        EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << e.path();
      } else {
        // As the fuzz target does: metadata always serializes.
        EXPECT_NO_THROW((void)m->metadata.dump()) << e.path();
      }
      ++n;
    }
  }
  EXPECT_GT(n, 0u);
}

}  // namespace
}  // namespace hart::formats

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/file_util.h"
#include "core/sha256.h"
#include "core/status.h"
#include "formats/safetensors.h"

namespace hart::formats {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string g_dir;  // fixtures written by make_safetensors.py

class SafetensorsTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "/safetensors_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    g_dir = tmpl;
    std::string cmd = fmt::format("/usr/bin/python3 {}/tests/fixtures/make_safetensors.py {}",
                                  HART_SOURCE_DIR, g_dir);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(g_dir, ec);
  }

 protected:
  static std::string Path(const std::string& rel) { return g_dir + "/" + rel; }
};

// Concatenates a file's layout segments: must give back the file's bytes.
std::string Reassemble(const ModelSource& src, size_t file) {
  std::string out;
  for (const Segment& s : src.files[file].layout) {
    auto b = src.SegmentBytes(file, s);
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

std::string Hex(std::string_view s) {
  return ToHex(Sha256({reinterpret_cast<const uint8_t*>(s.data()), s.size()}));
}

const TensorDesc* Find(const ModelSource& src, std::string_view name) {
  for (const auto& t : src.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

template <typename T>
std::vector<T> Values(const ModelSource& src, std::string_view name) {
  const TensorDesc* t = Find(src, name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  auto b = src.TensorBytes(static_cast<size_t>(t - src.tensors.data()));
  std::vector<T> v(b.size() / sizeof(T));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}

TEST_F(SafetensorsTest, ReadsEveryDtype) {
  auto src = ReadSafetensors(Path("all_dtypes.safetensors"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->format, Format::kSafetensors);
  EXPECT_EQ(src->name_hint, "all_dtypes");
  ASSERT_EQ(src->files.size(), 1u);
  EXPECT_EQ(src->files[0].name, "all_dtypes.safetensors");
  EXPECT_EQ(src->tensors.size(), 17u);
  EXPECT_EQ(src->metadata["format"], "pt");
  EXPECT_EQ(src->license, "apache-2.0");

  const std::pair<const char*, DType> expected[] = {
      {"t_f64", DType::kF64},   {"t_f32", DType::kF32},   {"t_f16", DType::kF16},
      {"t_bf16", DType::kBF16}, {"t_i64", DType::kI64},   {"t_i32", DType::kI32},
      {"t_i16", DType::kI16},   {"t_i8", DType::kI8},     {"t_u64", DType::kU64},
      {"t_u32", DType::kU32},   {"t_u16", DType::kU16},   {"t_u8", DType::kU8},
      {"t_bool", DType::kBool}, {"t_f8_e4m3", DType::kF8E4M3}, {"t_f8_e5m2", DType::kF8E5M2},
  };
  for (const auto& [name, dtype] : expected) {
    const TensorDesc* t = Find(*src, name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype, dtype) << name;
  }
  EXPECT_EQ(Find(*src, "t_f32")->shape, (Shape{2, 3}));
  EXPECT_EQ(Values<float>(*src, "t_f32"), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(Values<int32_t>(*src, "t_i32"), (std::vector<int32_t>{-3, -2, -1, 0, 1, 2}));
  EXPECT_EQ(Values<double>(*src, "t_f64"), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(Find(*src, "t_scalar")->shape, Shape{});
  EXPECT_EQ(Values<float>(*src, "t_scalar"), (std::vector<float>{7.5f}));
  EXPECT_EQ(Find(*src, "t_empty")->nbytes, 0u);

  // Tensors are in file order, and the header segment ends where data begins.
  for (size_t i = 1; i < src->tensors.size(); ++i)
    EXPECT_LE(src->tensors[i - 1].offset + src->tensors[i - 1].nbytes, src->tensors[i].offset);
  const Segment& header = src->files[0].layout.front();
  EXPECT_EQ(header.tensor, -1);
  EXPECT_EQ(header.size % 8, 0u);
  EXPECT_EQ(header.size, src->tensors.front().offset);
}

TEST_F(SafetensorsTest, EveryDtypeRoundTripsThroughTheWriter) {
  auto src = ReadSafetensors(Path("all_dtypes.safetensors"));
  ASSERT_TRUE(src.ok()) << src.status();
  // Reverse the order so the writer's "given order" is visible after reading.
  std::vector<TensorDesc> order(src->tensors.rbegin(), src->tensors.rend());
  std::vector<size_t> index;
  for (size_t i = src->tensors.size(); i-- > 0;) index.push_back(i);
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"license", "apache-2.0"}};
  std::string out = Path("roundtrip.safetensors");
  ASSERT_TRUE(WriteSafetensors(out, order, meta, [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
                return src->TensorBytes(index[i]);
              }).ok());

  auto back = ReadSafetensors(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->tensors.size(), order.size());
  uint64_t expect_offset = back->files[0].layout.front().size;
  for (size_t i = 0; i < order.size(); ++i) {
    const TensorDesc& t = back->tensors[i];
    EXPECT_EQ(t.name, order[i].name);  // file order == given order
    EXPECT_EQ(t.dtype, order[i].dtype) << t.name;
    EXPECT_EQ(t.shape, order[i].shape) << t.name;
    EXPECT_EQ(t.offset, expect_offset) << t.name;  // contiguous
    expect_offset += t.nbytes;
    auto a = src->TensorBytes(index[i]);
    auto b = back->TensorBytes(i);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << t.name;
  }
  EXPECT_EQ(back->metadata, src->metadata);
  EXPECT_EQ(back->files[0].layout.front().size % 8, 0u);
  EXPECT_FALSE(fs::exists(out + ".tmp." + std::to_string(::getpid())));
}

TEST_F(SafetensorsTest, WriterHeaderIsExact) {
  std::vector<TensorDesc> ts(2);
  ts[0].name = "b";
  ts[0].dtype = DType::kF16;
  ts[0].shape = {3};
  ts[0].nbytes = 6;
  ts[1].name = "a\"q";
  ts[1].dtype = DType::kI8;
  ts[1].shape = {1, 2};
  ts[1].nbytes = 2;
  std::vector<uint8_t> data = {1, 2, 3, 4, 5, 6, 7, 8};
  std::string out = Path("exact.safetensors");
  ASSERT_TRUE(WriteSafetensors(out, ts, {{"k", "v"}}, [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
                return std::span<const uint8_t>(data).subspan(i == 0 ? 0 : 6, ts[i].nbytes);
              }).ok());
  auto file = ReadFile(out);
  ASSERT_TRUE(file.ok());
  std::string json =
      R"({"__metadata__":{"k":"v"},"b":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},)"
      R"("a\"q":{"dtype":"I8","shape":[1,2],"data_offsets":[6,8]}})";
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string expect(8, '\0');
  for (int i = 0; i < 8; ++i) expect[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  expect += json;
  expect.append(data.begin(), data.end());
  EXPECT_EQ(*file, expect);
}

TEST_F(SafetensorsTest, WriterRejectsBadInputAndLeavesNoFile) {
  std::vector<uint8_t> data(64);
  auto fn = [&](size_t) -> absl::StatusOr<std::span<const uint8_t>> {
    return std::span<const uint8_t>(data).subspan(0, 8);
  };
  TensorDesc t;
  t.name = "w";
  t.dtype = DType::kF32;
  t.shape = {2};
  t.nbytes = 8;
  std::string out = Path("rejected.safetensors");

  TensorDesc q = t;
  q.dtype = DType::kQ4_0;
  q.shape = {32};
  q.nbytes = 18;
  auto s = WriteSafetensors(out, {q}, {}, fn);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("Q4_0"));

  EXPECT_FALSE(WriteSafetensors(out, {t, t}, {}, fn).ok());  // duplicate name
  TensorDesc wrong = t;
  wrong.nbytes = 12;
  EXPECT_FALSE(WriteSafetensors(out, {wrong}, {}, fn).ok());  // nbytes != shape x dtype

  TensorDesc big = t;
  big.shape = {4};
  big.nbytes = 16;  // fn supplies 8 bytes
  s = WriteSafetensors(out, {big}, {}, fn);
  EXPECT_THAT(Msg(s), HasSubstr("8 bytes supplied"));
  EXPECT_FALSE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(g_dir))
    EXPECT_EQ(e.path().filename().string().find("rejected.safetensors.tmp"), std::string::npos);
}

TEST_F(SafetensorsTest, LayoutReassemblesFileWithPaddingAndHoles) {
  for (const char* name : {"holes.safetensors", "all_dtypes.safetensors"}) {
    auto src = ReadSafetensors(Path(name));
    ASSERT_TRUE(src.ok()) << src.status();
    auto original = ReadFile(Path(name));
    ASSERT_TRUE(original.ok());
    EXPECT_EQ(Hex(Reassemble(*src, 0)), Hex(*original)) << name;
  }
  auto src = ReadSafetensors(Path("holes.safetensors"));
  ASSERT_TRUE(src.ok());
  const auto& layout = src->files[0].layout;
  // header (with its 13 padding spaces), a, 5-byte gap, b, 7-byte trailer.
  ASSERT_EQ(layout.size(), 5u);
  EXPECT_EQ(layout[0].tensor, -1);
  auto header = src->SegmentBytes(0, layout[0]);
  EXPECT_EQ(std::string(header.end() - 13, header.end()), std::string(13, ' '));
  EXPECT_EQ(layout[1].tensor, 0);
  EXPECT_EQ(layout[2].tensor, -1);
  EXPECT_EQ(layout[2].size, 5u);
  EXPECT_EQ(layout[3].tensor, 1);
  EXPECT_EQ(layout[4].tensor, -1);
  EXPECT_EQ(layout[4].size, 7u);
  EXPECT_EQ(src->architecture, "gpt2");
  EXPECT_FALSE(src->license.has_value());
}

TEST_F(SafetensorsTest, ShardedCheckpointIsOneSource) {
  auto src = ReadSafetensors(Path("sharded/model.safetensors.index.json"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->name_hint, "model");
  std::vector<std::string> names;
  for (const auto& f : src->files) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "model.safetensors.index.json", "model-00001-of-00003.safetensors",
                       "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
                       "config.json", "generation_config.json", "tokenizer.json"}));
  ASSERT_EQ(src->tensors.size(), 6u);
  for (int layer = 0; layer < 6; ++layer) {
    const TensorDesc* t = Find(*src, fmt::format("model.layers.{}.weight", layer));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->file, static_cast<uint32_t>(1 + layer / 2));
    float first = 10.0f * (layer / 2) + layer % 2;
    EXPECT_EQ(Values<float>(*src, t->name).front(), first);
  }
  EXPECT_EQ(src->architecture, "llama");
  EXPECT_EQ(src->metadata["config"]["hidden_size"], 2);
  EXPECT_EQ(src->metadata["index"]["total_size"], 96);
  EXPECT_EQ(src->metadata["format"], "pt");
  EXPECT_EQ(src->files[0].layout.size(), 1u);
  for (size_t f = 0; f < src->files.size(); ++f) {
    auto original = ReadFile(Path("sharded/" + src->files[f].name));
    ASSERT_TRUE(original.ok());
    EXPECT_EQ(Reassemble(*src, f), *original) << src->files[f].name;
  }
}

TEST_F(SafetensorsTest, DirectoryKeepsSidecarsAndNamesTheModelAfterIt) {
  auto src = ReadSafetensorsDir(Path("sharded"), "model.safetensors.index.json");
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->name_hint, "sharded");
  EXPECT_EQ(src->path, Path("sharded"));
  EXPECT_EQ(src->files.size(), 7u);

  // A single file opened in a directory gets its sidecars; opened alone, not.
  fs::create_directories(Path("single/my-model"));
  fs::copy_file(Path("all_dtypes.safetensors"), Path("single/my-model/model.safetensors"),
                fs::copy_options::overwrite_existing);
  fs::copy_file(Path("sharded/config.json"), Path("single/my-model/config.json"),
                fs::copy_options::overwrite_existing);
  auto dir = ReadSafetensorsDir(Path("single/my-model"), "model.safetensors");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(dir->name_hint, "my-model");
  ASSERT_EQ(dir->files.size(), 2u);
  EXPECT_EQ(dir->files[1].name, "config.json");
  EXPECT_EQ(dir->architecture, "llama");
  auto alone = ReadSafetensors(Path("single/my-model/model.safetensors"));
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->files.size(), 1u);
  EXPECT_EQ(alone->name_hint, "model");
  EXPECT_EQ(alone->architecture, "");
}

TEST_F(SafetensorsTest, OpenModelOnADirectoryReadsTheCheckpoint) {
  auto src = OpenModel(Path("sharded"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->format, Format::kSafetensors);
  EXPECT_EQ(src->name_hint, "sharded");
  EXPECT_EQ(src->files.size(), 7u);
  EXPECT_EQ(src->tensors.size(), 6u);
  auto index = OpenModel(Path("sharded/model.safetensors.index.json"));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->name_hint, "model");
  EXPECT_EQ(index->files.size(), 7u);
}

struct BadCase {
  const char* file;
  const char* field;  // the message must name it
};

TEST_F(SafetensorsTest, BadFilesGiveErrorsNamingFileAndField) {
  const BadCase cases[] = {
      {"truncated", "header length"},
      {"header_past_eof", "header length"},
      {"header_absurd", "header length"},
      {"header_empty", "header"},
      {"not_json", "header"},
      {"not_object", "not a JSON object"},
      {"too_deep", "nested deeper"},
      {"too_many_values", "more than 2000000 JSON values"},
      {"entry_not_object", "tensor 'w'"},
      {"missing_dtype", "dtype: missing"},
      {"missing_shape", "shape: missing"},
      {"missing_data_offsets", "data_offsets: missing"},
      {"dtype_not_string", "dtype"},
      {"unknown_dtype", "unknown dtype 'F128'"},
      {"quantized_dtype", "unknown dtype 'Q4_0'"},
      {"shape_not_array", "shape"},
      {"negative_dim", "shape: dimension 0 is negative"},
      {"float_dim", "shape: dimension 0 is not an integer"},
      {"offsets_not_array", "data_offsets"},
      {"offsets_one_element", "data_offsets"},
      {"offsets_negative", "data_offsets: begin is negative"},
      {"offsets_past_end", "data_offsets: end 16 is past the end"},
      {"offsets_reversed", "data_offsets: begin 8 is past end 0"},
      {"offsets_overlap", "tensor 'v': data_offsets: [4, 8) overlaps tensor 'w'"},
      {"size_mismatch", "data_offsets: span 8 bytes but shape [2, 2] x F32 is 16 bytes"},
      {"shape_overflow", "shape"},
      {"duplicate_name", "duplicate tensor name"},
      {"duplicate_field", "'w': key 'dtype': duplicate key"},
      {"name_not_utf8", "UTF-8"},
      {"name_lone_surrogate", "surrogate"},
      {"metadata_not_string", "__metadata__ 'epoch'"},
      {"metadata_not_object", "__metadata__"},
      {"metadata_duplicate", "'__metadata__': key 'a': duplicate key"},
      {"trailing_garbage", "header"},
  };
  for (const auto& c : cases) {
    std::string path = Path(fmt::format("bad/{}.safetensors", c.file));
    auto src = ReadSafetensors(path);
    ASSERT_FALSE(src.ok()) << c.file;
    EXPECT_EQ(src.status().code(), absl::StatusCode::kDataLoss) << src.status();
    EXPECT_THAT(Msg(src.status()), HasSubstr(path)) << c.file;
    EXPECT_THAT(Msg(src.status()), HasSubstr(c.field)) << c.file;
    EXPECT_THAT(Msg(src.status()), HasSubstr("offset ")) << c.file;
    EXPECT_TRUE(IsValidUtf8(Msg(src.status()))) << c.file;  // even for bytes that are not
  }
}

TEST_F(SafetensorsTest, ErrorOffsetsPointAtTheField) {
  // {"w":{"shape":... : the entry's key starts at byte 8 + 1.
  auto s = ReadSafetensors(Path("bad/missing_dtype.safetensors")).status();
  EXPECT_THAT(Msg(s), HasSubstr(": offset 9: tensor 'w': dtype"));
  auto text = ReadFile(Path("bad/size_mismatch.safetensors"));
  ASSERT_TRUE(text.ok());
  size_t at = text->find("\"data_offsets\"");
  s = ReadSafetensors(Path("bad/size_mismatch.safetensors")).status();
  EXPECT_THAT(Msg(s), HasSubstr(fmt::format(": offset {}: ", at)));
  // The second of two duplicate keys is the one named.
  text = ReadFile(Path("bad/duplicate_name.safetensors"));
  ASSERT_TRUE(text.ok());
  at = text->rfind("\"w\"");
  s = ReadSafetensors(Path("bad/duplicate_name.safetensors")).status();
  EXPECT_THAT(Msg(s), HasSubstr(fmt::format(": offset {}: ", at)));
}

TEST_F(SafetensorsTest, HeaderPrefixShorterThanTheHeaderIsAnError) {
  auto file = ReadFile(Path("all_dtypes.safetensors"));
  ASSERT_TRUE(file.ok());
  std::span<const uint8_t> all(reinterpret_cast<const uint8_t*>(file->data()), file->size());
  EXPECT_TRUE(ParseSafetensorsHeader(all, all.size(), "x").ok());
  auto s = ParseSafetensorsHeader(all.subspan(0, 20), all.size(), "x").status();
  EXPECT_THAT(Msg(s), HasSubstr("were given"));
}

TEST_F(SafetensorsTest, LyingOrEscapingIndexIsAnError) {
  const std::pair<const char*, const char*> cases[] = {
      {"unlisted_tensor", "weight_map 'b'"},
      {"phantom_tensor", "weight_map 'ghost'"},
      {"wrong_shard", "weight_map 'b'"},
      {"escaping_path", "../s1.safetensors"},
      {"absolute_path", "/etc/passwd"},
      {"missing_shard", "s3.safetensors"},
      {"no_weight_map", "weight_map: missing"},
  };
  for (const auto& [dir, what] : cases) {
    std::string index = Path(fmt::format("bad_index/{}/model.safetensors.index.json", dir));
    auto src = ReadSafetensors(index);
    ASSERT_FALSE(src.ok()) << dir;
    EXPECT_THAT(Msg(src.status()), HasSubstr(index)) << dir;
    EXPECT_THAT(Msg(src.status()), HasSubstr(what)) << dir;
  }
}

// Every file the fuzzer ever crashed on, and every seed, parses to a result
// or a DataError; none may crash.
TEST_F(SafetensorsTest, FuzzRegressionsAndSeedsGiveCleanResults) {
  int seen = 0;
  for (const char* sub : {"fuzz/regressions/safetensors", "fuzz/corpus/safetensors"}) {
    fs::path dir = fs::path(HART_SOURCE_DIR) / sub;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file() || e.path().filename().string().starts_with(".")) continue;
      auto bytes = ReadFile(e.path().string());
      ASSERT_TRUE(bytes.ok());
      std::span<const uint8_t> b(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
      auto h = ParseSafetensorsHeader(b, b.size(), e.path().filename().string());
      if (!h.ok()) {
        EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss) << e.path();
      } else {
        auto layout = SafetensorsLayout(*h, b.size(), 0);
        uint64_t pos = 0;
        for (const auto& s : layout) {
          EXPECT_EQ(s.offset, pos) << e.path();
          pos += s.size;
        }
        EXPECT_EQ(pos, b.size()) << e.path();
      }
      ++seen;
    }
  }
  EXPECT_GT(seen, 0);
}

}  // namespace
}  // namespace hart::formats

// GGUF reader and writer: fixtures from tests/fixtures/make_gguf.py (an
// independent writer in Python), the real vocabulary files of
// ../shared/testdata/llama-vocab, hand-built bad files, and fuzz crashers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/file_util.h"
#include "core/sha256.h"
#include "core/status.h"
#include "formats/gguf.h"

namespace hart::formats {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string g_dir;             // fixtures of make_gguf.py
nlohmann::json g_manifest;     // what each fixture holds

std::string VocabDir() { return HART_SOURCE_DIR "/../shared/testdata/llama-vocab"; }

std::vector<std::string> VocabFiles() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(VocabDir(), ec))
    if (e.path().extension() == ".gguf") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> Slurp(const std::string& path) {
  auto s = ReadFile(path);
  EXPECT_TRUE(s.ok()) << Msg(s.status());
  if (!s.ok()) return {};
  return std::vector<uint8_t>(s->begin(), s->end());
}

void Spit(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The file as its layout rebuilds it.
std::string LayoutSha(const ModelSource& src, size_t file) {
  Sha256Stream h;
  for (const Segment& s : src.files[file].layout) h.Update(src.SegmentBytes(file, s));
  return ToHex(h.Finish());
}

std::string Sha(std::span<const uint8_t> b) { return ToHex(Sha256(b)); }

class GgufTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "gguf_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    g_dir = tmpl;
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_gguf.py " + g_dir;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream f(g_dir + "/gguf_manifest.json");
    g_manifest = nlohmann::json::parse(f);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!g_dir.empty()) fs::remove_all(g_dir, ec);
  }
  static std::string Fixture(const std::string& name) { return g_dir + "/" + name; }
  static std::string Scratch(const std::string& name) {
    std::string d = g_dir + "/scratch";
    fs::create_directories(d);
    return d + "/" + name;
  }
};

// ---------------------------------------------------------------- reading

TEST_F(GgufTest, FixturesMatchTheManifest) {
  for (const auto& [file, m] : g_manifest.items()) {
    if (file.find("-of-") != std::string::npos) continue;  // split parts: own test
    SCOPED_TRACE(file);
    auto src = ReadGguf(Fixture(file));
    ASSERT_TRUE(src.ok()) << Msg(src.status());
    EXPECT_EQ(src->format, Format::kGguf);
    ASSERT_EQ(src->files.size(), 1u);
    EXPECT_EQ(src->files[0].name, file);
    ASSERT_EQ(src->tensors.size(), m["tensors"].size());
    for (size_t i = 0; i < src->tensors.size(); ++i) {
      const TensorDesc& t = src->tensors[i];
      const auto& e = m["tensors"][i];
      EXPECT_EQ(t.name, e["name"].get<std::string>());
      EXPECT_EQ(Name(t.dtype), e["dtype"].get<std::string>()) << t.name;
      EXPECT_EQ(t.shape, e["shape"].get<Shape>()) << t.name;
      EXPECT_EQ(t.offset, e["offset"].get<uint64_t>()) << t.name;
      EXPECT_EQ(t.nbytes, e["nbytes"].get<uint64_t>()) << t.name;
      EXPECT_EQ(Sha(src->TensorBytes(i)), e["sha256"].get<std::string>()) << t.name;
    }
    EXPECT_EQ(LayoutSha(*src, 0), m["sha256"].get<std::string>());
    auto h = ParseGgufHeader(src->files[0].map->bytes(), src->files[0].map->size(), file);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->version, m["version"].get<uint32_t>());
    EXPECT_EQ(h->alignment, m["alignment"].get<uint64_t>());
    EXPECT_EQ(h->data_offset, m["data_offset"].get<uint64_t>());
  }
}

TEST_F(GgufTest, GapsAndTrailingBytesAreRawSegments) {
  auto src = ReadGguf(Fixture("gaps_v3.gguf"));
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  const auto& layout = src->files[0].layout;
  // header, t2, t0, gap, t1, padding + "tail!"
  std::vector<int64_t> kinds;
  for (const Segment& s : layout) kinds.push_back(s.tensor);
  EXPECT_THAT(kinds, ::testing::ElementsAre(-1, 2, -1, 0, -1, 1, -1));
  EXPECT_EQ(layout.back().offset + layout.back().size, src->files[0].map->size());
}

TEST_F(GgufTest, AllTypesMetadataAccessors) {
  auto src = ReadGguf(Fixture("all_types_v3.gguf"));
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  EXPECT_EQ(src->name_hint, "fixture-all-types");
  EXPECT_EQ(src->architecture, "llama");
  EXPECT_EQ(src->license, "mit");

  auto md = ReadGgufMetadata(Fixture("all_types_v3.gguf"));
  ASSERT_TRUE(md.ok()) << Msg(md.status());
  const GgufMetadata& m = *md;
  EXPECT_EQ(m.entries.size(), 32u);
  EXPECT_EQ(m.entries[0].key, "general.architecture");  // file order kept
  EXPECT_EQ(m.GetInt("test.u8"), 200);
  EXPECT_EQ(m.GetInt("test.i8"), -100);
  EXPECT_EQ(m.GetInt("test.u16"), 60000);
  EXPECT_EQ(m.GetInt("test.i16"), -30000);
  EXPECT_EQ(m.GetInt("test.u32"), 4000000000);
  EXPECT_EQ(m.GetInt("test.i32"), -2000000000);
  EXPECT_EQ(m.GetInt("test.i64"), INT64_MIN);
  EXPECT_EQ(m.GetInt("test.u64"), std::nullopt);  // 2^64-1 does not fit int64
  ASSERT_NE(m.Find("test.u64"), nullptr);
  EXPECT_EQ(std::get<uint64_t>(m.Find("test.u64")->value), UINT64_MAX);
  EXPECT_EQ(m.GetFloat("test.f32"), 0.5);
  EXPECT_EQ(m.GetFloat("test.f64"), -1.25e300);
  EXPECT_EQ(m.GetBool("test.bool"), true);
  EXPECT_EQ(m.GetString("test.string"), "h\u00e9llo \u4e16\u754c");
  // Accessors refuse other types rather than converting.
  EXPECT_EQ(m.GetInt("test.f32"), std::nullopt);
  EXPECT_EQ(m.GetInt("test.bool"), std::nullopt);
  EXPECT_EQ(m.GetFloat("test.i32"), std::nullopt);
  EXPECT_EQ(m.GetString("test.u8"), std::nullopt);
  EXPECT_EQ(m.GetBool("test.u8"), std::nullopt);
  EXPECT_EQ(m.GetInt("no.such.key"), std::nullopt);
  EXPECT_EQ(m.GetStringArray("test.arr.i32"), std::nullopt);

  EXPECT_EQ(m.GetIntArray("test.arr.u8"), (std::vector<int64_t>{1, 2, 255}));
  EXPECT_EQ(m.GetIntArray("test.arr.i8"), (std::vector<int64_t>{-1, 0, 1}));
  EXPECT_EQ(m.GetIntArray("test.arr.i32"), (std::vector<int64_t>{-7, 8, 9}));
  EXPECT_EQ(m.GetIntArray("test.arr.u64"), std::nullopt);  // 2^63 does not fit
  EXPECT_EQ(m.GetIntArray("test.arr.empty"), std::vector<int64_t>{});
  EXPECT_EQ(m.GetFloatArray("test.arr.f32"), (std::vector<double>{0.25, -2.0}));
  EXPECT_EQ(m.GetFloatArray("test.arr.f64"), (std::vector<double>{3.5}));
  EXPECT_EQ(m.GetFloatArray("test.arr.i32"), std::nullopt);
  EXPECT_EQ(m.GetStringArray("test.arr.string"),
            (std::vector<std::string>{"a", "", "\u00fc"}));
  const GgufArray* nested = m.GetArray("test.arr.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->element_type, GgufType::kArray);
  ASSERT_EQ(nested->items.size(), 3u);
  EXPECT_EQ(std::get<GgufArray>(nested->items[0].value).items.size(), 2u);

  nlohmann::json j = m.ToJson();
  EXPECT_EQ(j["test.u64"].get<uint64_t>(), UINT64_MAX);
  EXPECT_EQ(j["test.i8"], -100);
  EXPECT_EQ(j["test.bool"], true);
  EXPECT_EQ(j["test.arr.nested"], nlohmann::json::parse("[[1,2],[],[3]]"));
  EXPECT_EQ(j["test.arr.deep"], nlohmann::json::parse("[[[[9]]]]"));
  EXPECT_EQ(j["test.arr.empty"], nlohmann::json::array());
  const auto& lng = j["test.arr.long"];
  EXPECT_EQ(lng["type"], "array");
  EXPECT_EQ(lng["element_type"], "string");
  EXPECT_EQ(lng["count"], 100);
  EXPECT_EQ(lng["head"], nlohmann::json::parse(R"(["tok0","tok1","tok2","tok3","tok4","tok5","tok6","tok7"])"));
  EXPECT_EQ(src->metadata, j);
  EXPECT_NO_THROW(j.dump());
}

TEST_F(GgufTest, SplitModelReadsAllParts) {
  auto src = ReadGguf(Fixture("tiny-split-00001-of-00003.gguf"));
  ASSERT_TRUE(src.ok()) << Msg(src.status());
  EXPECT_EQ(src->name_hint, "tiny-split");
  EXPECT_EQ(src->architecture, "llama");
  EXPECT_FALSE(src->license.has_value());
  ASSERT_EQ(src->files.size(), 3u);
  ASSERT_EQ(src->tensors.size(), 5u);
  size_t k = 0;
  for (uint32_t f = 0; f < 3; ++f) {
    std::string part = fmt::format("tiny-split-{:05}-of-00003.gguf", f + 1);
    SCOPED_TRACE(part);
    const auto& m = g_manifest[part];
    EXPECT_EQ(src->files[f].name, part);
    EXPECT_EQ(LayoutSha(*src, f), m["sha256"].get<std::string>());
    for (const auto& e : m["tensors"]) {
      const TensorDesc& t = src->tensors[k++];
      EXPECT_EQ(t.name, e["name"].get<std::string>());
      EXPECT_EQ(t.file, f);
      EXPECT_EQ(t.offset, e["offset"].get<uint64_t>());
    }
  }
  // The first part's metadata only.
  EXPECT_EQ(src->metadata["llama.block_count"], 3);
}

TEST_F(GgufTest, SplitErrors) {
  std::string dir = Scratch("split_missing");
  fs::create_directories(dir);
  for (int i : {1, 3}) {
    std::string n = fmt::format("tiny-split-{:05}-of-00003.gguf", i);
    fs::copy_file(Fixture(n), dir + "/" + n, fs::copy_options::overwrite_existing);
  }
  auto missing = ReadGguf(dir + "/tiny-split-00001-of-00003.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(Msg(missing.status()), HasSubstr("tiny-split-00002-of-00003.gguf"));

  auto second = ReadGguf(Fixture("tiny-split-00002-of-00003.gguf"));
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(Msg(second.status()), HasSubstr("tiny-split-00001-of-00003.gguf"));

  // A first part renamed as a single file: its split.count gives it away.
  std::string lone = Scratch("lone.gguf");
  fs::copy_file(Fixture("tiny-split-00001-of-00003.gguf"), lone, fs::copy_options::overwrite_existing);
  auto l = ReadGguf(lone);
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(Msg(l.status()), HasSubstr("split.count"));

  // Parts whose split.no disagrees with their names (2 and 3 swapped).
  std::string sw = Scratch("swap");
  fs::create_directories(sw);
  fs::copy_file(Fixture("tiny-split-00001-of-00003.gguf"), sw + "/m-00001-of-00003.gguf", fs::copy_options::overwrite_existing);
  fs::copy_file(Fixture("tiny-split-00003-of-00003.gguf"), sw + "/m-00002-of-00003.gguf", fs::copy_options::overwrite_existing);
  fs::copy_file(Fixture("tiny-split-00002-of-00003.gguf"), sw + "/m-00003-of-00003.gguf", fs::copy_options::overwrite_existing);
  auto s = ReadGguf(sw + "/m-00001-of-00003.gguf");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(Msg(s.status()), HasSubstr("m-00002-of-00003.gguf"));
  EXPECT_THAT(Msg(s.status()), HasSubstr("split.no"));
}

// Parts written with WriteGguf: a name repeated across parts, and a
// split.tensors.count that disagrees with the parts.
TEST_F(GgufTest, SplitChecksAcrossParts) {
  std::vector<uint8_t> data(16, 1);
  auto fn = [&](size_t) -> absl::StatusOr<std::span<const uint8_t>> {
    return std::span<const uint8_t>(data);
  };
  auto write_parts = [&](const std::string& dir, int64_t tensors_count,
                         const std::string& second_name) {
    fs::create_directories(dir);
    for (uint64_t i = 0; i < 2; ++i) {
      GgufMetadata md;
      md.entries.push_back({"split.no", {GgufType::kUint16, i}});
      md.entries.push_back({"split.count", {GgufType::kUint16, uint64_t{2}}});
      md.entries.push_back({"split.tensors.count", {GgufType::kInt32, tensors_count}});
      TensorDesc t{i == 0 ? "w" : second_name, DType::kF32, {4}, 0, 0, 16, nullptr};
      ASSERT_TRUE(WriteGguf(fmt::format("{}/m-{:05}-of-00002.gguf", dir, i + 1), md, {t}, fn).ok());
    }
  };
  write_parts(Scratch("split_ok"), 2, "v");
  auto ok = ReadGguf(Scratch("split_ok") + "/m-00001-of-00002.gguf");
  ASSERT_TRUE(ok.ok()) << Msg(ok.status());
  EXPECT_EQ(ok->tensors.size(), 2u);
  EXPECT_EQ(ok->tensors[1].file, 1u);

  write_parts(Scratch("split_dup"), 2, "w");
  auto dup = ReadGguf(Scratch("split_dup") + "/m-00001-of-00002.gguf");
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(Msg(dup.status()), HasSubstr("duplicate tensor name"));
  EXPECT_THAT(Msg(dup.status()), HasSubstr("m-00002-of-00002.gguf"));

  write_parts(Scratch("split_count"), 3, "v");
  auto count = ReadGguf(Scratch("split_count") + "/m-00001-of-00002.gguf");
  ASSERT_FALSE(count.ok());
  EXPECT_THAT(Msg(count.status()), HasSubstr("split.tensors.count"));
}

// ------------------------------------------------------ real vocab files

TEST_F(GgufTest, VocabFilesReadAndRebuildByteForByte) {
  auto files = VocabFiles();
  if (files.empty()) GTEST_SKIP() << "no " << VocabDir();
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto src = ReadGguf(path);
    ASSERT_TRUE(src.ok()) << Msg(src.status());
    EXPECT_TRUE(src->tensors.empty());
    std::vector<uint8_t> bytes = Slurp(path);
    EXPECT_EQ(LayoutSha(*src, 0), Sha(bytes));
    EXPECT_NO_THROW(src->metadata.dump());

    // ggml's writer (gguf-py) output, written back: identical bytes.
    auto md = ReadGgufMetadata(path);
    ASSERT_TRUE(md.ok()) << Msg(md.status());
    std::string out = Scratch(fs::path(path).filename().string());
    ASSERT_TRUE(WriteGguf(out, *md, {}, [](size_t) -> absl::StatusOr<std::span<const uint8_t>> {
                  return absl::InternalError("no tensors");
                }).ok());
    EXPECT_EQ(Sha(Slurp(out)), Sha(bytes));
    fs::remove(out);
  }
}

TEST_F(GgufTest, LlamaSpmVocabAccessors) {
  std::string path = VocabDir() + "/ggml-vocab-llama-spm.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << path;
  auto t0 = std::chrono::steady_clock::now();
  auto md = ReadGgufMetadata(path);
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(md.ok()) << Msg(md.status());
  RecordProperty("read_metadata_ms", std::to_string(ms));
  EXPECT_EQ(md->GetString("tokenizer.ggml.model"), "llama");
  auto tokens = md->GetStringArray("tokenizer.ggml.tokens");
  auto scores = md->GetFloatArray("tokenizer.ggml.scores");
  auto types = md->GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(tokens && scores && types);
  EXPECT_EQ(tokens->size(), 32000u);
  EXPECT_EQ(scores->size(), tokens->size());
  EXPECT_EQ(types->size(), tokens->size());
  EXPECT_EQ(md->GetArray("tokenizer.ggml.tokens")->items.size(), tokens->size());
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ(md->GetInt("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(md->GetInt("tokenizer.ggml.eos_token_id"), 2);
  nlohmann::json j = md->ToJson();
  EXPECT_EQ(j["tokenizer.ggml.tokens"]["count"], 32000);
  EXPECT_EQ(j["tokenizer.ggml.tokens"]["head"][1], "<s>");
  EXPECT_EQ(j["tokenizer.ggml.scores"]["element_type"], "float32");
}

// ------------------------------------------------------------- writing

absl::StatusOr<std::span<const uint8_t>> NoBytes(size_t) {
  return absl::InternalError("unexpected tensor bytes request");
}

TEST_F(GgufTest, WriteReproducesGgmlLayoutFixtures) {
  for (const auto& [file, m] : g_manifest.items()) {
    if (!m["ggml_layout"].get<bool>()) continue;
    SCOPED_TRACE(file);
    auto bytes = Slurp(Fixture(file));
    auto h = ParseGgufHeader(bytes, bytes.size(), file);
    ASSERT_TRUE(h.ok()) << Msg(h.status());
    std::vector<TensorDesc> tensors;
    for (const auto& t : h->tensors)
      tensors.push_back({t.name, t.dtype, t.shape, 0, h->data_offset + t.offset, t.nbytes, nullptr});
    std::string out = Scratch("rt_" + file);
    auto fn = [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
      return std::span<const uint8_t>(bytes).subspan(tensors[i].offset, tensors[i].nbytes);
    };
    auto st = WriteGguf(out, h->metadata, tensors, fn, h->alignment);
    ASSERT_TRUE(st.ok()) << Msg(st);
    // The writer always writes v3; v2 and v3 differ in that field only.
    bytes[4] = 3;
    EXPECT_EQ(Sha(Slurp(out)), Sha(bytes));
    EXPECT_FALSE(fs::exists(out + ".tmp"));
  }
}

TEST_F(GgufTest, WriteThenReadRoundTrip) {
  auto src = ReadGguf(Fixture("gaps_v3.gguf"));
  ASSERT_TRUE(src.ok());
  auto md = ReadGgufMetadata(Fixture("gaps_v3.gguf"));
  ASSERT_TRUE(md.ok());
  std::string out = Scratch("rewritten.gguf");
  auto fn = [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> { return src->TensorBytes(i); };
  ASSERT_TRUE(WriteGguf(out, *md, src->tensors, fn, 128).ok());
  auto back = ReadGguf(out);
  ASSERT_TRUE(back.ok()) << Msg(back.status());
  auto h = ParseGgufHeader(back->files[0].map->bytes(), back->files[0].map->size(), out);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->version, 3u);
  EXPECT_EQ(h->alignment, 128u);
  EXPECT_EQ(h->metadata.GetInt("general.alignment"), 128);  // written since != 32
  ASSERT_EQ(back->tensors.size(), src->tensors.size());
  for (size_t i = 0; i < src->tensors.size(); ++i) {
    EXPECT_EQ(back->tensors[i].name, src->tensors[i].name);
    EXPECT_EQ(back->tensors[i].shape, src->tensors[i].shape);
    EXPECT_EQ(back->tensors[i].dtype, src->tensors[i].dtype);
    EXPECT_EQ(back->tensors[i].offset % 128, 0u);
    EXPECT_EQ(Sha(back->TensorBytes(i)), Sha(src->TensorBytes(i)));
  }
  EXPECT_EQ(back->files[0].map->size() % 128, 0u);
}

TEST_F(GgufTest, WriteRejectsBadInput) {
  GgufMetadata md;
  std::vector<uint8_t> data(64, 7);
  auto fn = [&](size_t) -> absl::StatusOr<std::span<const uint8_t>> {
    return std::span<const uint8_t>(data);
  };
  std::string out = Scratch("bad_write.gguf");
  TensorDesc f32{"w", DType::kF32, {16}, 0, 0, 64, nullptr};
  EXPECT_FALSE(WriteGguf(out, md, {f32}, fn, 48).ok());  // not a power of two
  TensorDesc u8{"u", DType::kU8, {64}, 0, 0, 64, nullptr};
  auto s = WriteGguf(out, md, {u8}, fn);
  EXPECT_THAT(Msg(s), HasSubstr("'u'"));
  TensorDesc wrong{"w", DType::kF32, {8}, 0, 0, 32, nullptr};  // fn gives 64 bytes
  s = WriteGguf(out, md, {wrong}, fn);
  EXPECT_THAT(Msg(s), HasSubstr("'w'"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_FALSE(WriteGguf(out, md, {f32, f32}, fn).ok());  // duplicate name
  GgufMetadata dup;
  dup.entries.push_back({"k", {GgufType::kUint8, uint64_t{1}}});
  dup.entries.push_back({"k", {GgufType::kUint8, uint64_t{2}}});
  EXPECT_FALSE(WriteGguf(out, dup, {}, NoBytes).ok());
  GgufMetadata overflow;
  overflow.entries.push_back({"k", {GgufType::kUint8, uint64_t{256}}});
  EXPECT_FALSE(WriteGguf(out, overflow, {}, NoBytes).ok());
  GgufMetadata mismatch;
  mismatch.entries.push_back({"k", {GgufType::kString, int64_t{1}}});
  EXPECT_FALSE(WriteGguf(out, mismatch, {}, NoBytes).ok());
  GgufMetadata align;
  align.entries.push_back({"general.alignment", {GgufType::kUint32, uint64_t{64}}});
  EXPECT_FALSE(WriteGguf(out, align, {}, NoBytes, 32).ok());
  EXPECT_TRUE(WriteGguf(out, align, {}, NoBytes, 64).ok());
}

// ------------------------------------------------------------ bad input

// Little-endian GGUF bytes, built field by field.
struct Builder {
  std::string b;
  Builder& U32(uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); return *this; }
  Builder& U64(uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); return *this; }
  Builder& U8(uint8_t v) { b.push_back(static_cast<char>(v)); return *this; }
  Builder& Str(std::string_view s) { U64(s.size()); b.append(s); return *this; }
  Builder& Header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    b.append("GGUF");
    return U32(version).U64(tensors).U64(kvs);
  }
  // A tensor info; ne innermost first, as in the file.
  Builder& Tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
    Str(name).U32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) U64(d);
    return U32(type).U64(off);
  }
  Builder& PadTo(size_t a) { b.resize((b.size() + a - 1) / a * a, '\0'); return *this; }
  Builder& Zeros(size_t n) { b.append(n, '\0'); return *this; }
};

struct BadCase {
  std::string name;
  std::string bytes;
  std::string field;  // must appear in the message
};

std::vector<BadCase> BadCases() {
  std::vector<BadCase> c;
  auto add = [&](std::string name, Builder b, std::string field) {
    c.push_back({std::move(name), std::move(b.b), std::move(field)});
  };
  add("magic", Builder().Str("not a gguf file at all"), "magic");
  add("v1", Builder().Header(0, 0, 1), "version 1");
  add("v4", Builder().Header(0, 0, 4), "version");
  add("big_endian", Builder().Header(0, 0, 0x03000000), "big-endian");
  add("huge_kv_count", Builder().Header(0, uint64_t{1} << 60), "kv_count");
  add("huge_tensor_count", Builder().Header(uint64_t{1} << 60, 0), "tensor_count");
  add("huge_array", Builder().Header(0, 1).Str("big").U32(9).U32(0).U64(uint64_t{1} << 60), "metadata 'big'");
  add("huge_string_array", Builder().Header(0, 1).Str("big").U32(9).U32(8).U64(uint64_t{1} << 40).Str("x"), "metadata 'big'");
  add("huge_string", Builder().Header(0, 1).Str("s").U32(8).U64(uint64_t{1} << 62), "metadata 's'");
  add("huge_key", Builder().Header(0, 1).U64(uint64_t{1} << 50).Zeros(16), "metadata key #0");
  add("unknown_value_type", Builder().Header(0, 1).Str("k").U32(13).U32(0), "metadata 'k'");
  add("unknown_element_type", Builder().Header(0, 1).Str("k").U32(9).U32(77).U64(0), "metadata 'k'");
  add("bad_bool", Builder().Header(0, 1).Str("flag").U32(7).U8(2), "metadata 'flag'");
  {
    Builder b;
    b.Header(0, 1).Str("deep").U32(9);
    for (int i = 0; i < 12; ++i) b.U32(9).U64(1);
    b.Zeros(64);
    add("deep_nesting", b, "metadata 'deep'");
  }
  add("bad_item_in_array", Builder().Header(0, 1).Str("arr").U32(9).U32(8).U64(2).Str("ok").U64(999), "metadata 'arr'[1]");
  add("duplicate_key", Builder().Header(0, 2).Str("k").U32(0).U8(1).Str("k").U32(0).U8(2), "metadata 'k'");
  add("non_utf8_key", Builder().Header(0, 1).Str("k\xff").U32(0).U8(1), "metadata key #0");
  add("alignment_not_pow2", Builder().Header(0, 1).Str("general.alignment").U32(4).U32(48), "general.alignment");
  add("alignment_zero", Builder().Header(0, 1).Str("general.alignment").U32(4).U32(0), "general.alignment");
  add("alignment_u64", Builder().Header(0, 1).Str("general.alignment").U32(10).U64(64), "general.alignment");
  add("unknown_ggml_type", Builder().Header(1, 0).Tensor("w", {4}, 4, 0).PadTo(32).Zeros(32), "tensor 'w' type");
  add("ggml_type_huge", Builder().Header(1, 0).Tensor("w", {4}, 1000, 0).PadTo(32).Zeros(32), "unknown ggml type 1000");
  add("too_many_dims", Builder().Header(1, 0).Tensor("w", {1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 0).PadTo(32).Zeros(32), "tensor 'w' n_dims");
  add("negative_dim", Builder().Header(1, 0).Tensor("w", {uint64_t{1} << 63}, 0, 0), "tensor 'w' ne[0]");
  add("dims_overflow", Builder().Header(1, 0).Tensor("w", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0), "tensor 'w' ne");
  add("block_size", Builder().Header(1, 0).Tensor("q", {33}, 2, 0).PadTo(32).Zeros(64), "tensor 'q' ne[0]");
  add("unaligned_offset", Builder().Header(1, 0).Tensor("w", {4}, 0, 4).PadTo(32).Zeros(64), "tensor 'w' offset");
  add("out_of_bounds", Builder().Header(1, 0).Tensor("w", {100}, 0, 0).PadTo(32).Zeros(32), "tensor 'w'");
  add("offset_overflow", Builder().Header(1, 0).Tensor("w", {4}, 0, ~uint64_t{31}).PadTo(32).Zeros(32), "tensor 'w'");
  add("overlap_same", Builder().Header(2, 0).Tensor("a", {8}, 0, 0).Tensor("b", {8}, 0, 0).PadTo(32).Zeros(64), "overlaps");
  add("overlap_inside", Builder().Header(2, 0).Tensor("a", {16}, 0, 0).Tensor("b", {8}, 0, 32).PadTo(32).Zeros(64), "tensor 'b'");
  add("duplicate_tensor", Builder().Header(2, 0).Tensor("w", {8}, 0, 0).Tensor("w", {8}, 0, 32).PadTo(32).Zeros(64), "tensor 'w'");
  add("non_utf8_tensor", Builder().Header(1, 0).Tensor("w\xc3", {8}, 0, 0).PadTo(32).Zeros(32), "tensor #0 name");
  add("truncated_info", Builder().Header(1, 0).Str("w").U32(3).U64(4).U64(4), "tensor 'w' ne");
  return c;
}

TEST_F(GgufTest, BadFilesFailWithFileOffsetAndField) {
  for (const BadCase& bc : BadCases()) {
    SCOPED_TRACE(bc.name);
    std::string path = Scratch("bad_" + bc.name + ".gguf");
    Spit(path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bc.bytes.data()), bc.bytes.size()));
    auto src = ReadGguf(path);
    ASSERT_FALSE(src.ok());
    EXPECT_TRUE(absl::IsDataLoss(src.status())) << Msg(src.status());
    EXPECT_THAT(Msg(src.status()), HasSubstr("bad_" + bc.name + ".gguf"));
    EXPECT_THAT(Msg(src.status()), HasSubstr("offset "));
    EXPECT_THAT(Msg(src.status()), HasSubstr(bc.field));
  }
}

TEST_F(GgufTest, EveryPrefixFailsCleanlyOrParsesTheHeader) {
  auto whole = Slurp(Fixture("all_types_v3.gguf"));
  ASSERT_FALSE(whole.empty());
  auto full = ParseGgufHeader(whole, whole.size(), "all_types_v3.gguf");
  ASSERT_TRUE(full.ok());
  size_t first_ok = whole.size() + 1;
  for (size_t len = 0; len < whole.size(); ++len) {
    // An exact-size copy, so a read past the end is a sanitizer error.
    std::vector<uint8_t> prefix(whole.begin(), whole.begin() + len);
    // As a whole file: the tensors no longer fit, so never ok.
    auto as_file = ParseGgufHeader(prefix, len, "cut.gguf");
    ASSERT_FALSE(as_file.ok()) << len;
    ASSERT_THAT(Msg(as_file.status()), HasSubstr("cut.gguf")) << len;
    // As a prefix of the real file: ok once the tensor infos are in.
    auto as_prefix = ParseGgufHeader(prefix, whole.size(), "cut.gguf");
    if (as_prefix.ok()) {
      first_ok = std::min(first_ok, len);
      ASSERT_EQ(as_prefix->tensors.size(), full->tensors.size());
      ASSERT_EQ(as_prefix->data_offset, full->data_offset);
    } else {
      ASSERT_GT(first_ok, len) << "a longer prefix failed after a shorter one parsed";
    }
  }
  EXPECT_LE(first_ok, full->data_offset);
  EXPECT_GT(first_ok + full->alignment, full->data_offset);
}

TEST_F(GgufTest, TruncatedFilesNameTheFile) {
  auto whole = Slurp(Fixture("align64_v2.gguf"));
  const auto& last = g_manifest["align64_v2.gguf"]["tensors"].back();
  size_t data_end = last["offset"].get<size_t>() + last["nbytes"].get<size_t>();
  // Cuts in the header, the metadata, the tensor infos and the last tensor.
  // (A cut in the final padding loses no tensor byte and still reads.)
  for (size_t len : {size_t{0}, size_t{3}, size_t{10}, size_t{23}, size_t{50}, size_t{150},
                     data_end - 1}) {
    std::string path = Scratch(fmt::format("cut_{}.gguf", len));
    Spit(path, std::span<const uint8_t>(whole).first(len));
    auto src = ReadGguf(path);
    ASSERT_FALSE(src.ok()) << len;
    EXPECT_THAT(Msg(src.status()), HasSubstr(fmt::format("cut_{}.gguf", len)));
  }
}

// Crashers the fuzzer found, and its seeds: parsing them must just return.
TEST_F(GgufTest, FuzzRegressionsAndCorpusParseCleanly) {
  size_t n = 0;
  for (const char* sub : {"/fuzz/regressions/gguf", "/fuzz/corpus/gguf"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(std::string(HART_SOURCE_DIR) + sub, ec)) {
      if (!e.is_regular_file()) continue;
      auto bytes = Slurp(e.path().string());
      auto h = ParseGgufHeader(bytes, bytes.size(), e.path().filename().string());
      if (!h.ok()) {
        EXPECT_THAT(Msg(h.status()), HasSubstr(e.path().filename().string()));
      }
      ++n;
    }
  }
  EXPECT_GT(n, 0u);
}

}  // namespace
}  // namespace hart::formats

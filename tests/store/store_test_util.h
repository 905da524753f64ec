// Test helpers for the store suites: a temp store directory, and ModelSources
// built by hand from raw files (a header then the tensors back to back), so
// these tests do not depend on the format readers.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/progress.h"
#include "formats/model_source.h"
#include "store/store.h"

namespace hart::store::testing {

inline std::string MakeTempDir(const std::string& tag) {
  std::string tmpl = ::testing::TempDir() + "/hart_store_" + tag + "_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = ::mkdtemp(buf.data());
  EXPECT_NE(d, nullptr);
  return d ? std::string(d) : tmpl;
}

inline std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<uint8_t>(rng());
  return out;
}

// The integer the first row of a one-value query gives.
inline int64_t One(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  EXPECT_EQ(sqlite3_step(st), SQLITE_ROW) << sql;
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

inline std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline void WriteAllBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

struct TestTensor {
  std::string name;
  std::vector<uint8_t> bytes;
};

struct TestFile {
  std::string name;                // relative name in the model
  std::vector<uint8_t> header;     // raw bytes before the tensors
  std::vector<TestTensor> tensors;
  std::vector<uint8_t> trailer;    // raw bytes after them
};

// Writes each file under root and returns a ModelSource over them with a
// layout (header raw, tensors, trailer raw). Tensors are U8 of shape [n].
inline formats::ModelSource MakeSource(const std::string& root, const std::vector<TestFile>& files,
                                       std::optional<std::string> license = "mit",
                                       std::string name_hint = "tiny") {
  formats::ModelSource src;
  src.format = formats::Format::kSafetensors;
  src.path = root;
  src.name_hint = std::move(name_hint);
  src.license = std::move(license);
  src.architecture = "llama";
  src.metadata = {{"general.architecture", "llama"}, {"general.name", "tiny"}};
  for (size_t f = 0; f < files.size(); ++f) {
    const TestFile& tf = files[f];
    std::vector<uint8_t> all = tf.header;
    formats::SourceFile sf;
    sf.name = tf.name;
    if (!tf.header.empty()) sf.layout.push_back({0, tf.header.size(), -1});
    for (const TestTensor& t : tf.tensors) {
      formats::TensorDesc d;
      d.name = t.name;
      d.dtype = DType::kU8;
      d.shape = {t.bytes.size()};
      d.file = static_cast<uint32_t>(f);
      d.offset = all.size();
      d.nbytes = t.bytes.size();
      sf.layout.push_back({all.size(), t.bytes.size(), static_cast<int64_t>(src.tensors.size())});
      src.tensors.push_back(d);
      all.insert(all.end(), t.bytes.begin(), t.bytes.end());
    }
    if (!tf.trailer.empty()) sf.layout.push_back({all.size(), tf.trailer.size(), -1});
    all.insert(all.end(), tf.trailer.begin(), tf.trailer.end());
    std::string path = root + "/" + tf.name;
    WriteAllBytes(path, all);
    auto map = MappedFile::Open(path);
    EXPECT_TRUE(map.ok()) << map.status();
    sf.map = *map;
    src.files.push_back(std::move(sf));
  }
  return src;
}

// A fresh store in a temp dir, progress bars off.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Progress::SetEnabled(false);
    root_ = MakeTempDir("t");
    dir_ = root_ + "/store";
    ASSERT_TRUE(Store::Init(dir_).ok());
    auto s = Store::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  IngestOptions Opts(std::string model = "tiny") {
    IngestOptions o;
    o.model = std::move(model);
    o.progress = false;
    return o;
  }
  std::string root_, dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace hart::store::testing

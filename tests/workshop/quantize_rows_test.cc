// The workshop's quantizers against an independent numpy implementation of
// ggml's reference quantizers (tests/workshop/quant_reference.py), byte for
// byte, on rows that hold the edge cases: all-zero blocks, one huge value,
// scales that underflow to f16 subnormals or zero, constant and sparse
// blocks. Non-finite input is refused with the element named.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "gtest/gtest.h"
#include "workshop/quantize_rows.h"

namespace hart::workshop {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

class QuantizeRowsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / fmt::format("hart-wsq-{}", ::getpid()));
    std::string cmd = fmt::format("/usr/bin/python3 -W ignore {}/tests/workshop/quant_reference.py --cases '{}'",
                                  HART_SOURCE_DIR, dir_->string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::vector<float> Input() {
    std::vector<uint8_t> b = ReadAll(*dir_ / "input.f32");
    std::vector<float> x(b.size() / 4);
    std::memcpy(x.data(), b.data(), b.size());
    return x;
  }
  static fs::path* dir_;
};
fs::path* QuantizeRowsTest::dir_ = nullptr;

struct Case {
  const char* name;
  DType type;
  size_t block_bytes;
  size_t block;
};

class QuantizeTypeTest : public QuantizeRowsTest, public ::testing::WithParamInterface<Case> {};

TEST_P(QuantizeTypeTest, BytesEqualTheNumpyReference) {
  const Case& c = GetParam();
  std::vector<float> x = Input();
  ASSERT_EQ(x.size() % 512, 0u);
  std::vector<uint8_t> want = ReadAll(*dir_ / (std::string(c.name) + ".bin"));
  ASSERT_EQ(want.size(), x.size() / c.block * c.block_bytes);
  std::vector<uint8_t> got(want.size(), 0xAA);
  ASSERT_TRUE(QuantizeRows(c.type, x, got).ok());
  // Report the first differing block with its row, so a failure says which
  // edge case broke.
  for (size_t b = 0; b < want.size() / c.block_bytes; ++b) {
    if (std::memcmp(&got[b * c.block_bytes], &want[b * c.block_bytes], c.block_bytes) == 0) continue;
    size_t k = 0;
    while (got[b * c.block_bytes + k] == want[b * c.block_bytes + k]) ++k;
    FAIL() << c.name << ": block " << b << " (row " << b * c.block / 512 << ") differs at byte " << k
           << ": got " << int(got[b * c.block_bytes + k]) << ", want " << int(want[b * c.block_bytes + k]);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Types, QuantizeTypeTest,
    ::testing::Values(Case{"q8_0", DType::kQ8_0, 34, 32}, Case{"q4_0", DType::kQ4_0, 18, 32},
                      Case{"q4_1", DType::kQ4_1, 20, 32}, Case{"q5_0", DType::kQ5_0, 22, 32},
                      Case{"q5_1", DType::kQ5_1, 24, 32}, Case{"q4_k", DType::kQ4_K, 144, 256},
                      Case{"q5_k", DType::kQ5_K, 176, 256}, Case{"q6_k", DType::kQ6_K, 210, 256}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(QuantizeRows, RefusesNaNAndInfinityNamingTheElement) {
  std::vector<float> x(256, 0.5f);
  x[77] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> out(34 * 8);
  absl::Status s = QuantizeRows(DType::kQ8_0, x, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("element 77 is NaN"), std::string::npos) << s;
  x[77] = 1.0f;
  x[200] = -std::numeric_limits<float>::infinity();
  std::vector<uint8_t> k(144);
  s = QuantizeRows(DType::kQ4_K, x, k);
  EXPECT_NE(s.message().find("element 200 is infinite"), std::string::npos) << s;
}

TEST(QuantizeRows, RefusesSizesThatAreNotWholeBlocks) {
  std::vector<float> x(48, 1.0f);
  std::vector<uint8_t> out(34 * 2);
  EXPECT_EQ(QuantizeRows(DType::kQ8_0, x, out).code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> y(256, 1.0f);
  std::vector<uint8_t> small(100);
  EXPECT_EQ(QuantizeRows(DType::kQ6_K, y, small).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizeRows(DType::kF16, y, small).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hart::workshop

#include "core/decode.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace hart {
namespace {

std::vector<float> Decode(DType t, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> out(n);
  absl::Status s = DecodeToF32(t, bytes, out);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

void PutU16(std::vector<uint8_t>& b, size_t at, uint16_t v) { std::memcpy(b.data() + at, &v, 2); }

TEST(DecodeTest, F16KnownValues) {
  auto y = Decode(DType::kF16, Bytes<uint16_t>({0x3C00, 0xC000, 0x7BFF, 0x0001, 0x0400, 0x8000,
                                                 0x7C00, 0xFC00, 0x7E00, 0x3555}), 10);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], 65504.0f);
  EXPECT_EQ(y[3], std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(y[4], std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(std::bit_cast<uint32_t>(y[5]), 0x80000000u);  // -0 keeps its sign
  EXPECT_EQ(y[6], std::numeric_limits<float>::infinity());
  EXPECT_EQ(y[7], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(y[8]));
  EXPECT_EQ(y[9], 0.333251953125f);
}

TEST(DecodeTest, F16FastPathMatchesScalarForEveryValue) {
  // 9 elements per call exercise both the 8-wide path and the tail.
  std::vector<uint16_t> all(65536 + 7);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  auto y = Decode(DType::kF16, Bytes(all), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    float want = F16ToF32(all[i]);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(y[i])) << i;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(want)) << i;
    }
  }
}

TEST(DecodeTest, BF16AndF32AndF64) {
  auto b = Decode(DType::kBF16, Bytes<uint16_t>({0x3F80, 0x4049, 0xFF80, 0x7FC0}), 4);
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], 3.140625f);
  EXPECT_EQ(b[2], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(b[3]));
  auto f = Decode(DType::kF32, Bytes<float>({1.5f, -0.25f}), 2);
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_EQ(f[1], -0.25f);
  auto d = Decode(DType::kF64, Bytes<double>({2.5, 1e300}), 2);
  EXPECT_EQ(d[0], 2.5f);
  EXPECT_TRUE(std::isinf(d[1]));  // out of float range
}

TEST(DecodeTest, F8E4M3EdgeCases) {
  auto y = Decode(DType::kF8E4M3, {0x38, 0x7E, 0x7F, 0xFF, 0x01, 0x08, 0x80, 0xFE, 0x78, 0x07}, 10);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 448.0f);  // largest finite: E4M3FN has no infinity
  EXPECT_TRUE(std::isnan(y[2]));
  EXPECT_TRUE(std::isnan(y[3]));
  EXPECT_EQ(y[4], std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(y[5], std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(std::bit_cast<uint32_t>(y[6]), 0x80000000u);
  EXPECT_EQ(y[7], -448.0f);
  EXPECT_EQ(y[8], 256.0f);  // exponent 15 with mantissa < 7 is finite
  EXPECT_EQ(y[9], 7.0f * std::ldexp(1.0f, -9));  // largest subnormal
}

TEST(DecodeTest, F8E5M2EdgeCases) {
  auto y = Decode(DType::kF8E5M2, {0x3C, 0x7B, 0x7C, 0xFC, 0x7E, 0x01, 0x04, 0xC0}, 8);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 57344.0f);
  EXPECT_EQ(y[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(y[3], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(y[4]));
  EXPECT_EQ(y[5], std::ldexp(1.0f, -16));
  EXPECT_EQ(y[6], std::ldexp(1.0f, -14));
  EXPECT_EQ(y[7], -2.0f);
}

TEST(DecodeTest, IntegersAndBool) {
  EXPECT_EQ(Decode(DType::kI8, {0xFF, 0x7F, 0x80}, 3), (std::vector<float>{-1, 127, -128}));
  EXPECT_EQ(Decode(DType::kU8, {0xFF, 0x00}, 2), (std::vector<float>{255, 0}));
  EXPECT_EQ(Decode(DType::kI16, Bytes<int16_t>({-300, 32767}), 2), (std::vector<float>{-300, 32767}));
  EXPECT_EQ(Decode(DType::kU16, Bytes<uint16_t>({65535}), 1), (std::vector<float>{65535}));
  EXPECT_EQ(Decode(DType::kI32, Bytes<int32_t>({-7, 1 << 24}), 2), (std::vector<float>{-7, 16777216}));
  EXPECT_EQ(Decode(DType::kU32, Bytes<uint32_t>({4000000000u}), 1), (std::vector<float>{4e9f}));
  EXPECT_EQ(Decode(DType::kI64, Bytes<int64_t>({-5, int64_t{1} << 40}), 2),
            (std::vector<float>{-5, 1099511627776.0f}));
  EXPECT_EQ(Decode(DType::kU64, Bytes<uint64_t>({9}), 1), (std::vector<float>{9}));
  EXPECT_EQ(Decode(DType::kBool, {0, 1, 2}, 3), (std::vector<float>{0, 1, 1}));
}

TEST(DecodeTest, Q8_0Block) {
  std::vector<uint8_t> b(34);
  PutU16(b, 0, 0x3800);  // d = 0.5
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  auto y = Decode(DType::kQ8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 16) * 0.5f) << j;
}

TEST(DecodeTest, Q4_0Block) {
  std::vector<uint8_t> b(18 * 2);
  PutU16(b, 0, 0x4000);   // d = 2
  PutU16(b, 18, 0xBC00);  // d = -1
  for (int j = 0; j < 16; ++j) b[2 + j] = 0x8F, b[20 + j] = static_cast<uint8_t>(j | (j << 4));
  auto y = Decode(DType::kQ4_0, b, 64);
  EXPECT_EQ(y[0], 14.0f);   // (15 - 8) * 2
  EXPECT_EQ(y[16], 0.0f);   // (8 - 8) * 2
  EXPECT_EQ(y[32], 8.0f);   // (0 - 8) * -1
  EXPECT_EQ(y[32 + 16 + 3], 5.0f);  // (3 - 8) * -1, high nibble
}

TEST(DecodeTest, Q4_KBlock) {
  std::vector<uint8_t> b(144, 0);
  PutU16(b, 0, 0x3C00);  // d = 1
  PutU16(b, 2, 0x3800);  // dmin = 0.5
  for (int j = 0; j < 4; ++j) b[4 + j] = 2, b[8 + j] = 1;  // sub-blocks 0-3: sc 2, m 1
  for (int j = 0; j < 4; ++j) b[12 + j] = 0x13;            // sub-blocks 4-7: sc 3, m 1
  for (int l = 0; l < 128; ++l) b[16 + l] = 0x21;          // low nibble 1, high 2
  auto y = Decode(DType::kQ4_K, b, 256);
  EXPECT_EQ(y[0], 1.5f);     // 2*1 - 0.5
  EXPECT_EQ(y[32], 3.5f);    // 2*2 - 0.5
  EXPECT_EQ(y[128], 2.5f);   // 3*1 - 0.5
  EXPECT_EQ(y[191], 5.5f);   // 3*2 - 0.5
}

TEST(DecodeTest, Q5_KBlock) {
  std::vector<uint8_t> b(176, 0);
  PutU16(b, 0, 0x3C00);
  for (int j = 0; j < 4; ++j) b[4 + j] = 2;  // sc 2, m 0
  b[16] = 0x03;  // qh[0]: fifth bit of element 0 (sub-block 0) and 32 (sub-block 1)
  b[48] = 0x51;  // ql[0]: low nibble 1, high 5
  auto y = Decode(DType::kQ5_K, b, 256);
  EXPECT_EQ(y[0], 34.0f);   // 2 * (1 + 16)
  EXPECT_EQ(y[32], 42.0f);  // 2 * (5 + 16)
  EXPECT_EQ(y[1], 0.0f);
}

TEST(DecodeTest, Q6_KBlock) {
  std::vector<uint8_t> b(210, 0);
  for (int i = 0; i < 16; ++i) b[192 + i] = 1;
  b[193] = 2;              // scale of elements 16..31
  PutU16(b, 208, 0x3C00);  // d = 1
  b[0] = 0x05;
  b[128] = 0x01;
  auto y = Decode(DType::kQ6_K, b, 256);
  EXPECT_EQ(y[0], -11.0f);   // (5 | 1 << 4) - 32
  EXPECT_EQ(y[64], -32.0f);
  EXPECT_EQ(y[16], -64.0f);  // 2 * -32
  EXPECT_EQ(y[255], -32.0f);
}

TEST(DecodeTest, ErrorsNameTheProblem) {
  std::vector<float> out(32);
  std::vector<uint8_t> b(10);
  absl::Status s = DecodeToF32(DType::kQ8_0, b, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("34"), std::string::npos) << s;
  std::vector<uint8_t> q2(84);
  std::vector<float> o2(256);
  s = DecodeToF32(DType::kQ2_K, q2, o2);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(std::string(s.message()).find("Q2_K"), std::string::npos) << s;
  std::vector<float> o3(31);
  std::vector<uint8_t> b3(34);
  EXPECT_FALSE(DecodeToF32(DType::kQ8_0, b3, o3).ok());  // not whole blocks
}

}  // namespace
}  // namespace hart

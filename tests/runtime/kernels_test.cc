// Kernels: half-float conversions, exact dequantization of every supported
// block layout, GetRow and input checks. MatMul is in kernels_matmul_test.cc.
#include "runtime/kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernel_test_blocks.h"

namespace hart::runtime {
namespace {

using testing::EncodeQ4_0;
using testing::EncodeQ4_K;
using testing::EncodeQ5_K;
using testing::EncodeQ6_K;
using testing::EncodeQ8_0;

TEST(F16Test, DecodesZerosSubnormalsNormalsAndSpecials) {
  EXPECT_EQ(std::bit_cast<uint32_t>(F16ToF32(0x0000)), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(F16ToF32(0x8000)), 0x80000000u);  // -0 keeps its sign
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));                 // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03FF), 1023 * std::ldexp(1.0f, -24));          // largest subnormal
  EXPECT_EQ(F16ToF32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0xC000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToF32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToF32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToF32(0x7E00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7C01)));  // signalling-style payload stays NaN
}

TEST(F16Test, EncodesWithRoundToNearestEven) {
  const float two_m24 = std::ldexp(1.0f, -24);
  EXPECT_EQ(F32ToF16(0.0f), 0x0000);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even (down)
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65519.996f), 0x7BFF);  // just below the overflow tie
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);    // tie with 2^16 rounds to even: inf
  EXPECT_EQ(F32ToF16(1e9f), 0x7C00);
  EXPECT_EQ(F32ToF16(-1e9f), 0xFC00);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::infinity()), 0x7C00);
  const uint16_t nan = F32ToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_EQ(F32ToF16(two_m24), 0x0001);
  EXPECT_EQ(F32ToF16(two_m24 / 2), 0x0000);            // tie between 0 and 1 -> 0
  EXPECT_EQ(F32ToF16(two_m24 / 2 * 1.0001f), 0x0001);  // just above the tie
  EXPECT_EQ(F32ToF16(3 * two_m24 / 2), 0x0002);        // tie between 1 and 2 -> 2
  EXPECT_EQ(F32ToF16(1023.5f * two_m24), 0x0400);      // rounds up into the normals
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(F16Test, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f)))) << h;
      continue;
    }
    ASSERT_EQ(F32ToF16(f), h) << std::hex << h;
  }
}

#ifdef __FLT16_MAX__
// The compiler's own float -> _Float16 conversion is an independent oracle
// for rounding of arbitrary floats, subnormal range included.
TEST(F16Test, MatchesCompilerConversionOnRandomFloats) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    uint32_t b = bits(rng);
    // Bias the exponent into the interesting half-precision range.
    if (i % 2) b = (b & 0x807FFFFF) | ((100 + (b >> 23) % 45) << 23);
    const float f = std::bit_cast<float>(b);
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    ASSERT_EQ(F32ToF16(f), std::bit_cast<uint16_t>(h)) << std::hex << b;
  }
}
#endif

TEST(BF16Test, DecodesTopHalfOfFloat) {
  EXPECT_EQ(BF16ToF32(0x3F80), 1.0f);
  EXPECT_EQ(BF16ToF32(0xC040), -3.0f);
  EXPECT_EQ(BF16ToF32(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(BF16ToF32(0x7FC0)));
  EXPECT_EQ(BF16ToF32(0x0001), std::bit_cast<float>(0x00010000u));
}

TEST(SupportTest, ListsTheEightWeightTypes) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})
    EXPECT_TRUE(IsSupportedWeightType(t)) << Name(t);
  for (DType t : {DType::kQ4_1, DType::kQ2_K, DType::kQ3_K, DType::kIQ4_NL, DType::kI32, DType::kF64})
    EXPECT_FALSE(IsSupportedWeightType(t)) << Name(t);
}

// Random fields with known values; two blocks each so the block stride is
// checked too. Expected values use ggml's float operations in its order
// ((d * sc) * q - dmin * m), so the comparisons are exact.
class DequantizeTest : public ::testing::Test {
 protected:
  std::mt19937 rng_{42};
  int Rand(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  uint16_t RandHalf() {
    return F32ToF16(std::uniform_real_distribution<float>(-0.1f, 0.1f)(rng_));
  }
};

TEST_F(DequantizeTest, Q4_0) {
  std::vector<uint8_t> buf(2 * 18);
  std::vector<float> want;
  for (int b = 0; b < 2; ++b) {
    int q[32];
    for (int& v : q) v = Rand(0, 15);
    const uint16_t d = RandHalf();
    EncodeQ4_0(d, q, buf.data() + 18 * b);
    for (int v : q) want.push_back(static_cast<float>(v - 8) * F16ToF32(d));
  }
  std::vector<float> got(64);
  Dequantize(DType::kQ4_0, buf.data(), got.data(), 64);
  EXPECT_EQ(got, want);
}

TEST_F(DequantizeTest, Q8_0) {
  std::vector<uint8_t> buf(2 * 34);
  std::vector<float> want;
  for (int b = 0; b < 2; ++b) {
    int q[32];
    for (int& v : q) v = Rand(-128, 127);
    const uint16_t d = RandHalf();
    EncodeQ8_0(d, q, buf.data() + 34 * b);
    for (int v : q) want.push_back(static_cast<float>(v) * F16ToF32(d));
  }
  std::vector<float> got(64);
  Dequantize(DType::kQ8_0, buf.data(), got.data(), 64);
  EXPECT_EQ(got, want);
}

TEST_F(DequantizeTest, Q4_KAndQ5_K) {
  for (DType t : {DType::kQ4_K, DType::kQ5_K}) {
    const bool q5 = t == DType::kQ5_K;
    const int size = q5 ? 176 : 144;
    std::vector<uint8_t> buf(2 * size);
    std::vector<float> want;
    for (int b = 0; b < 2; ++b) {
      int sc[8], m[8], q[256];
      // Scales and mins use the full 6 bits, so the spare-bit packing of
      // sub-blocks 4-7 is exercised.
      for (int j = 0; j < 8; ++j) sc[j] = Rand(0, 63), m[j] = Rand(0, 63);
      sc[7] = 63, m[4] = 63;
      for (int& v : q) v = Rand(0, q5 ? 31 : 15);
      const uint16_t d = RandHalf(), dmin = RandHalf();
      if (q5) EncodeQ5_K(d, dmin, sc, m, q, buf.data() + size * b);
      else EncodeQ4_K(d, dmin, sc, m, q, buf.data() + size * b);
      for (int e = 0; e < 256; ++e) {
        const float d1 = F16ToF32(d) * sc[e / 32], m1 = F16ToF32(dmin) * m[e / 32];
        want.push_back(d1 * q[e] - m1);
      }
    }
    std::vector<float> got(512);
    Dequantize(t, buf.data(), got.data(), 512);
    EXPECT_EQ(got, want) << Name(t);
  }
}

TEST_F(DequantizeTest, Q6_K) {
  std::vector<uint8_t> buf(2 * 210);
  std::vector<float> want;
  for (int b = 0; b < 2; ++b) {
    int sc[16], q[256];
    for (int& v : sc) v = Rand(-128, 127);
    for (int& v : q) v = Rand(-32, 31);
    q[0] = -32, q[255] = 31;
    const uint16_t d = RandHalf();
    EncodeQ6_K(d, sc, q, buf.data() + 210 * b);
    for (int e = 0; e < 256; ++e) want.push_back(F16ToF32(d) * sc[e / 16] * q[e]);
  }
  std::vector<float> got(512);
  Dequantize(DType::kQ6_K, buf.data(), got.data(), 512);
  EXPECT_EQ(got, want);
}

TEST_F(DequantizeTest, FloatTypes) {
  const std::vector<float> x = testing::RandomFloats(40, 3);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    const std::vector<uint8_t> buf = testing::Quantize(t, x);
    std::vector<float> got(40);
    Dequantize(t, buf.data(), got.data(), 40);
    for (int i = 0; i < 40; ++i) {
      uint16_t h;
      std::memcpy(&h, buf.data() + 2 * i, 2);
      const float want = t == DType::kF32 ? x[i] : t == DType::kF16 ? F16ToF32(h) : BF16ToF32(h);
      ASSERT_EQ(got[i], want) << Name(t) << " " << i;
    }
  }
}

TEST(GetRowTest, ReturnsOneRowOfEveryTypeAndNaNOutOfRange) {
  const int64_t rows = 3, cols = 512;
  const std::vector<float> x = testing::RandomFloats(rows * cols, 5);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const std::vector<uint8_t> data = testing::Quantize(t, x);
    std::vector<float> all(rows * cols), row(cols);
    Dequantize(t, data.data(), all.data(), rows * cols);
    const WeightMatrix w{t, rows, cols, data.data()};
    GetRow(w, 2, row.data());
    EXPECT_TRUE(std::equal(row.begin(), row.end(), all.begin() + 2 * cols)) << Name(t);
    // The reference quantizers keep weights near the originals: a sanity
    // check that the encoders and decoders agree on the layout.
    double err = 0, norm = 0;
    for (int64_t i = 0; i < rows * cols; ++i) err += std::pow(all[i] - x[i], 2), norm += x[i] * x[i];
    EXPECT_LT(std::sqrt(err / norm), t == DType::kQ4_0 ? 0.2 : 0.1) << Name(t);
    GetRow(w, 3, row.data());
    EXPECT_TRUE(std::isnan(row[0]) && std::isnan(row[cols - 1])) << Name(t);
  }
}

TEST(CheckWeightMatrixTest, RejectsWhatMatMulCannotCompute) {
  std::vector<uint8_t> data(4096);
  EXPECT_TRUE(CheckWeightMatrix({DType::kQ4_K, 2, 512, data.data()}).ok());
  EXPECT_EQ(CheckWeightMatrix({DType::kQ4_1, 2, 64, data.data()}).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(CheckWeightMatrix({DType::kQ4_K, 2, 300, data.data()}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckWeightMatrix({DType::kF32, 0, 8, data.data()}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckWeightMatrix({DType::kF32, 2, 8, nullptr}).code(),
            absl::StatusCode::kInvalidArgument);

  ThreadPool pool(2);
  std::vector<float> x(300, 1.0f), y(2, 0.0f);
  MatMul({DType::kQ4_K, 2, 300, data.data()}, x.data(), y.data(), 1, pool);
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
}

TEST(KernelPathTest, NamesAPathTheEnvironmentAllows) {
  const std::string path = KernelPath();
  const std::string env = std::getenv("HART_KERNELS") != nullptr ? std::getenv("HART_KERNELS") : "";
#if defined(__x86_64__)
  const bool avx2 = env != "portable" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && env != "avx2" && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512vnni");
#else
  const bool avx2 = false, avx512 = false;
#endif
  EXPECT_EQ(path, avx512 ? "avx512vnni" : avx2 ? "avx2+fma+f16c" : "portable");
}

}  // namespace
}  // namespace hart::runtime

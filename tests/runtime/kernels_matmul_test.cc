// MatMul on every ISA against dequantize-then-dot references, for every
// supported weight type, decode (1 token) and prefill (7, 37 tokens), row
// counts that are not a multiple of the thread chunk and unaligned weights;
// and the multi-row decode kernels against the one-row ones, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "kernel_test_blocks.h"
#include "runtime/kernels.h"
#include "runtime/kernels_internal.h"
#include "runtime/quant_blocks.h"

namespace hart::runtime {
namespace {

using internal::Isa;

// ||a - b|| / ||b||: errors of single outputs that happen to be near zero
// would make an element-wise relative bound meaningless.
double RelError(const std::vector<float>& a, const std::vector<double>& b) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(err / norm);
}

// y = x . W^T in double from dequantized weights.
std::vector<double> Reference(const std::vector<float>& w, const std::vector<float>& x,
                              int64_t rows, int64_t cols, int64_t n_tokens) {
  std::vector<double> y(n_tokens * rows);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += double(w[r * cols + c]) * x[t * cols + c];
      y[t * rows + r] = s;
    }
  return y;
}

// The activations as the quantized kernels see them: each row through the
// runtime's int8 activation quantizer and back to float.
std::vector<float> AsKernelSeesActivations(DType t, const std::vector<float>& x, int64_t cols) {
  const internal::ActFormat f = internal::ActivationFormat(t);
  std::vector<float> out(x.size());
  std::vector<uint8_t> buf(internal::ActivationRowBytes(f, cols));
  for (size_t r = 0; r < x.size() / cols; ++r) {
    internal::QuantizeActivationRow(f, x.data() + r * cols, cols, buf.data());
    float* o = out.data() + r * cols;
    if (f == internal::ActFormat::kQ8) {
      const auto* b = reinterpret_cast<const ActBlockQ8*>(buf.data());
      for (int64_t i = 0; i < cols; ++i) o[i] = b[i / kQK].d * b[i / kQK].qs[i % kQK];
    } else if (f == internal::ActFormat::kQ8K) {
      const auto* b = reinterpret_cast<const ActBlockQ8K*>(buf.data());
      for (int64_t i = 0; i < cols; ++i) o[i] = b[i / kQKK].d * b[i / kQKK].qs[i % kQKK];
    } else {
      std::memcpy(o, x.data() + r * cols, cols * sizeof(float));
    }
  }
  return out;
}

struct Shape2 {
  int64_t rows, cols, n_tokens;
};

class MatMulTest : public ::testing::TestWithParam<std::tuple<DType, Isa>> {
 protected:
  void SetUp() override {
    if (!internal::IsaSupported(isa())) GTEST_SKIP() << "CPU lacks " << internal::IsaName(isa());
  }
  DType dtype() const { return std::get<0>(GetParam()); }
  Isa isa() const { return std::get<1>(GetParam()); }
  bool quantized() const { return IsQuantized(dtype()); }
  // Row counts 75 and 200 leave a partial last chunk; 37 tokens cross the
  // 16-token tile and leave a remainder of 1 after groups of 4. For 32-wide
  // blocks, 544 columns are two 8-block groups of the AVX-512 kernels and a
  // partial one; 256 is whole groups only, 32 a partial group only.
  std::vector<Shape2> Shapes() const {
    const int64_t bs = Info(dtype()).block_size;
    const int64_t cols = bs == 1 ? 523 : bs == 32 ? 544 : 768;
    std::vector<Shape2> shapes = {{75, cols, 1}, {75, cols, 7}, {200, cols, 37}, {1, cols, 2}};
    if (bs == 32) shapes.insert(shapes.end(), {{13, 256, 1}, {13, 256, 5}, {9, 32, 1}, {9, 32, 3}});
    return shapes;
  }
  ThreadPool pool_{3};
};

TEST_P(MatMulTest, MatchesDequantizedReference) {
  for (const Shape2& s : Shapes()) {
    SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << " tokens " << s.n_tokens);
    const std::vector<float> wf = testing::RandomFloats(s.rows * s.cols, 11);
    const std::vector<float> x = testing::RandomFloats(s.n_tokens * s.cols, 12);
    const std::vector<uint8_t> wq = testing::Quantize(dtype(), wf);
    std::vector<float> wd(wf.size());
    Dequantize(dtype(), wq.data(), wd.data(), s.rows * s.cols);

    std::vector<float> y(s.n_tokens * s.rows, -1.0f);
    internal::MatMulIsa(isa(), {dtype(), s.rows, s.cols, wq.data()}, x.data(), y.data(),
                        s.n_tokens, pool_);

    // Against the activations the kernel really multiplies (exact for the
    // float types), only the order and width of the float sums differ:
    // about sqrt(cols) * 2^-24 relative.
    const std::vector<float> xk = AsKernelSeesActivations(dtype(), x, s.cols);
    EXPECT_LT(RelError(y, Reference(wd, xk, s.rows, s.cols, s.n_tokens)), 1e-5);
    if (quantized()) {
      // Against float activations, add the int8 activation rounding: each
      // activation moves by up to amax/254 (amax of its 32- or 256-block),
      // uniform noise of std amax/(127 * sqrt(12)); for Gaussian activations
      // amax is about 2.5-3 sigma, so about 0.6-0.7% of the signal, and the
      // noise propagates to y with the same relative size. Bound: 1e-2.
      EXPECT_LT(RelError(y, Reference(wd, x, s.rows, s.cols, s.n_tokens)), 1e-2);
    }
  }
}

TEST_P(MatMulTest, AgreesWithPortablePath) {
  if (isa() == Isa::kPortable) GTEST_SKIP() << "compares a SIMD path to portable";
  const Shape2 s = Shapes()[2];
  const std::vector<float> wf = testing::RandomFloats(s.rows * s.cols, 21, 0.05f);
  const std::vector<float> x = testing::RandomFloats(s.n_tokens * s.cols, 22, 3.0f);
  const std::vector<uint8_t> wq = testing::Quantize(dtype(), wf);
  const WeightMatrix w{dtype(), s.rows, s.cols, wq.data()};
  std::vector<float> ya(s.n_tokens * s.rows), yp(s.n_tokens * s.rows);
  internal::MatMulIsa(isa(), w, x.data(), ya.data(), s.n_tokens, pool_);
  internal::MatMulIsa(Isa::kPortable, w, x.data(), yp.data(), s.n_tokens, pool_);
  // Same integers, same per-block scales: only float summation order differs.
  EXPECT_LT(RelError(ya, std::vector<double>(yp.begin(), yp.end())), 1e-5);
}

TEST_P(MatMulTest, UnalignedWeightsGiveIdenticalResults) {
  const Shape2 s = Shapes()[1];
  const std::vector<float> wf = testing::RandomFloats(s.rows * s.cols, 31);
  const std::vector<float> x = testing::RandomFloats(s.n_tokens * s.cols, 32);
  const std::vector<uint8_t> wq = testing::Quantize(dtype(), wf);
  std::vector<uint8_t> shifted(wq.size() + 1);
  std::memcpy(shifted.data() + 1, wq.data(), wq.size());
  std::vector<float> y0(s.n_tokens * s.rows), y1(s.n_tokens * s.rows);
  internal::MatMulIsa(isa(), {dtype(), s.rows, s.cols, wq.data()}, x.data(), y0.data(),
                      s.n_tokens, pool_);
  internal::MatMulIsa(isa(), {dtype(), s.rows, s.cols, shifted.data() + 1}, x.data(), y1.data(),
                      s.n_tokens, pool_);
  EXPECT_EQ(y0, y1);
}

TEST_P(MatMulTest, NaNInAnActivationRowPoisonsOnlyThatToken) {
  const Shape2 s = Shapes()[1];
  const std::vector<uint8_t> wq = testing::Quantize(dtype(), testing::RandomFloats(s.rows * s.cols, 41));
  std::vector<float> x = testing::RandomFloats(s.n_tokens * s.cols, 42);
  x[3 * s.cols + 5] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> y(s.n_tokens * s.rows);
  internal::MatMulIsa(isa(), {dtype(), s.rows, s.cols, wq.data()}, x.data(), y.data(), s.n_tokens,
                      pool_);
  for (int64_t t = 0; t < s.n_tokens; ++t)
    for (int64_t r = 0; r < s.rows; ++r)
      ASSERT_EQ(std::isnan(y[t * s.rows + r]), t == 3) << t << " " << r;
}

// The multi-row decode kernel against the one-row kernel of the same ISA for
// 1..kRowsPerDot rows, and a prefill tile (several tokens through RowDot)
// against one token at a time: MatMul groups rows and tokens as threads and
// tiles fall, so every grouping must give the same bits.
TEST_P(MatMulTest, GroupedRowsAndTokensGiveIdenticalBits) {
  const internal::KernelSet k = internal::SelectKernels(isa(), dtype());
  ASSERT_NE(k.dot, nullptr);
  const int64_t bs = Info(dtype()).block_size;
  for (int64_t cols : {Shapes()[0].cols, 8 * bs, bs}) {
    SCOPED_TRACE(::testing::Message() << "cols " << cols);
    const int64_t rows = internal::kRowsPerDot, n_x = 6;
    const std::vector<uint8_t> wq = testing::Quantize(dtype(), testing::RandomFloats(rows * cols, 61));
    const std::vector<float> x = testing::RandomFloats(n_x * cols, 62);
    const size_t xs = internal::ActivationRowBytes(k.format, cols);
    std::vector<uint8_t> xq(xs * n_x);
    for (int64_t t = 0; t < n_x; ++t)
      internal::QuantizeActivationRow(k.format, x.data() + t * cols, cols, xq.data() + t * xs);
    const size_t row_bytes = wq.size() / rows;

    std::vector<float> one(rows * n_x);  // one(r, t): RowDot of one row and one token
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < n_x; ++t)
        k.dot(wq.data() + r * row_bytes, xq.data() + t * xs, xs, 1, cols, &one[r * n_x + t], 1);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> tile(n_x);
      k.dot(wq.data() + r * row_bytes, xq.data(), xs, n_x, cols, tile.data(), 1);
      for (int64_t t = 0; t < n_x; ++t) EXPECT_EQ(tile[t], one[r * n_x + t]) << "row " << r << " token " << t;
    }
    if (k.rows_dot == nullptr) continue;
    for (int n = 1; n <= internal::kRowsPerDot; ++n) {
      for (int64_t r0 = 0; r0 + n <= rows; ++r0) {
        std::vector<float> got(n, -1.0f);
        k.rows_dot(wq.data() + r0 * row_bytes, row_bytes, n, xq.data(), cols, got.data());
        for (int i = 0; i < n; ++i) EXPECT_EQ(got[i], one[(r0 + i) * n_x]) << n << " rows from " << r0;
      }
    }
  }
}

// Q4_0 and Q8_0 take the same float steps per block on AVX2 and AVX-512
// (exact integer block dots, (d_w * d_x) * dot into one accumulator per slot
// of ActGroupQ8), so the two paths give the same bits, decode and batched.
TEST_P(MatMulTest, Avx2AndAvx512GiveIdenticalBits) {
  if (isa() != Isa::kAvx512 || (dtype() != DType::kQ4_0 && dtype() != DType::kQ8_0))
    GTEST_SKIP() << "AVX-512 Q4_0 / Q8_0 only";
  for (const Shape2& s : Shapes()) {
    SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << " tokens " << s.n_tokens);
    const std::vector<uint8_t> wq = testing::Quantize(dtype(), testing::RandomFloats(s.rows * s.cols, 71));
    const std::vector<float> x = testing::RandomFloats(s.n_tokens * s.cols, 72);
    std::vector<float> y2(s.n_tokens * s.rows), y5(s.n_tokens * s.rows);
    internal::MatMulIsa(Isa::kAvx2, {dtype(), s.rows, s.cols, wq.data()}, x.data(), y2.data(), s.n_tokens, pool_);
    internal::MatMulIsa(Isa::kAvx512, {dtype(), s.rows, s.cols, wq.data()}, x.data(), y5.data(), s.n_tokens, pool_);
    EXPECT_EQ(y2, y5);
  }
}

// Packed Q8_0 and Q4_0 rows (PackRows) give the same bits as the plain rows on every
// path, decode (the multi-row kernel), batched steps and prefill tiles,
// whole groups and a partial last group; GetRow reads them back exactly, and
// UnpackRows restores the original bytes.
class PackedMatMulTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!internal::IsaSupported(GetParam())) GTEST_SKIP() << "CPU lacks " << internal::IsaName(GetParam());
  }
  ThreadPool pool_{3};
};

TEST_P(PackedMatMulTest, PackedRowsGiveIdenticalBits) {
  for (DType t : {DType::kQ8_0, DType::kQ4_0})
  for (const Shape2& s : std::vector<Shape2>{{75, 544, 1}, {75, 544, 7}, {200, 544, 37}, {1, 544, 2},
                                             {13, 256, 1}, {13, 256, 5}, {9, 32, 1}, {9, 32, 3}}) {
    SCOPED_TRACE(::testing::Message() << Name(t) << " " << s.rows << "x" << s.cols << " tokens " << s.n_tokens);
    const std::vector<uint8_t> wq = testing::Quantize(t, testing::RandomFloats(s.rows * s.cols, 81));
    std::vector<uint8_t> packed = wq;
    PackRows(t, s.cols, packed.data(), s.rows);
    if (s.cols >= 256) {
      EXPECT_NE(packed, wq) << "a whole group was left in place";
    }
    const std::vector<float> x = testing::RandomFloats(s.n_tokens * s.cols, 82);
    std::vector<float> y(s.n_tokens * s.rows), yp(s.n_tokens * s.rows, -1.0f);
    internal::MatMulIsa(GetParam(), {t, s.rows, s.cols, wq.data()}, x.data(), y.data(), s.n_tokens, pool_);
    internal::MatMulIsa(GetParam(), {t, s.rows, s.cols, packed.data(), true}, x.data(), yp.data(), s.n_tokens,
                        pool_);
    EXPECT_EQ(y, yp);
    for (int64_t r : {int64_t{0}, s.rows - 1}) {
      std::vector<float> a(s.cols), b(s.cols);
      GetRow({t, s.rows, s.cols, wq.data()}, r, a.data());
      GetRow({t, s.rows, s.cols, packed.data(), true}, r, b.data());
      EXPECT_EQ(a, b) << "row " << r;
    }
    UnpackRows(t, s.cols, packed.data(), s.rows);
    EXPECT_EQ(packed, wq);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, PackedMatMulTest, ::testing::Values(Isa::kPortable, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) { return internal::IsaName(info.param); });

TEST(MatMulPackedTest, OnlyQ8_0AndQ4_0HaveAPackedLayout) {
  const std::vector<uint8_t> wq = testing::Quantize(DType::kQ4_K, testing::RandomFloats(256, 91));
  EXPECT_FALSE(CheckWeightMatrix({DType::kQ4_K, 1, 256, wq.data(), true}).ok());
  EXPECT_TRUE(CheckWeightMatrix({DType::kQ4_K, 1, 256, wq.data(), false}).ok());
  EXPECT_FALSE(PackedLayoutHelps(DType::kQ4_K, 2048));
  EXPECT_FALSE(PackedLayoutHelps(DType::kQ8_0, 32));  // no whole group
  EXPECT_EQ(PackedLayoutHelps(DType::kQ8_0, 2048), internal::ActiveIsa() != Isa::kPortable);
  EXPECT_EQ(PackedLayoutHelps(DType::kQ4_0, 2048), internal::ActiveIsa() != Isa::kPortable);
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<DType, Isa>>& info) {
  return std::string(Name(std::get<0>(info.param))) + "_" + internal::IsaName(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, MatMulTest,
    ::testing::Combine(::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                         DType::kQ4_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K),
                       ::testing::Values(Isa::kPortable, Isa::kAvx2, Isa::kAvx512)),
    ParamName);

TEST(MatMulDispatchTest, PublicMatMulRunsTheActivePath) {
  ThreadPool pool(2);
  const int64_t rows = 40, cols = 256;
  const std::vector<uint8_t> wq = testing::Quantize(DType::kQ6_K, testing::RandomFloats(rows * cols, 51));
  const std::vector<float> x = testing::RandomFloats(cols, 52);
  const WeightMatrix w{DType::kQ6_K, rows, cols, wq.data()};
  std::vector<float> y(rows), want(rows);
  MatMul(w, x.data(), y.data(), 1, pool);
  internal::MatMulIsa(internal::ActiveIsa(), w, x.data(), want.data(), 1, pool);
  EXPECT_EQ(y, want);
  std::vector<float> untouched(rows, 7.0f);
  MatMul(w, x.data(), untouched.data(), 0, pool);
  EXPECT_EQ(untouched, std::vector<float>(rows, 7.0f));
}

}  // namespace
}  // namespace hart::runtime

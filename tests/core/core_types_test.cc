#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "core/dtype.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/shape.h"
#include "core/thread_pool.h"

namespace hart {
namespace {

TEST(DType, GgmlIdsRoundTrip) {
  for (size_t i = 0; i < static_cast<size_t>(DType::kCount); ++i) {
    DType t = static_cast<DType>(i);
    const DTypeInfo& info = Info(t);
    ASSERT_EQ(info.dtype, t);
    if (info.ggml_type >= 0) {
      auto back = DTypeFromGgml(static_cast<uint32_t>(info.ggml_type));
      ASSERT_TRUE(back.ok());
      EXPECT_EQ(*back, t) << info.name;
    }
    auto by_name = DTypeFromName(info.name);
    ASSERT_TRUE(by_name.ok());
    EXPECT_EQ(*by_name, t);
  }
  EXPECT_FALSE(DTypeFromGgml(4).ok());  // Q4_2, retired
  EXPECT_FALSE(DTypeFromGgml(1000).ok());
  EXPECT_FALSE(DTypeFromSafetensors("Q4_0").ok());
}

TEST(DType, BlockSizes) {
  EXPECT_EQ(*ByteSize(DType::kQ4_0, 64), 36u);
  EXPECT_EQ(*ByteSize(DType::kQ4_K, 256), 144u);
  EXPECT_EQ(*ByteSize(DType::kQ6_K, 512), 420u);
  EXPECT_EQ(*ByteSize(DType::kBF16, 3), 6u);
  EXPECT_FALSE(ByteSize(DType::kQ8_0, 33).ok());
  EXPECT_FALSE(ByteSize(DType::kF64, uint64_t{1} << 62).ok());
}

TEST(Shape, ElementsAndOverflow) {
  EXPECT_EQ(*NumElements({}), 1u);
  EXPECT_EQ(*NumElements({2, 3, 4}), 24u);
  EXPECT_FALSE(NumElements({uint64_t{1} << 40, uint64_t{1} << 40}).ok());
  EXPECT_EQ(ShapeToString({4096, 11008}), "[4096, 11008]");
}

TEST(Sha256, KnownVectors) {
  std::string abc = "abc";
  auto d = Sha256({reinterpret_cast<const uint8_t*>(abc.data()), abc.size()});
  EXPECT_EQ(ToHex(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256Stream s;
  s.Update({reinterpret_cast<const uint8_t*>("a"), 1});
  s.Update({reinterpret_cast<const uint8_t*>("bc"), 2});
  EXPECT_EQ(s.Finish(), d);
  EXPECT_EQ(*DigestFromHex(ToHex(d)), d);
  EXPECT_FALSE(DigestFromHex("zz").ok());
}

TEST(ThreadPool, VisitsEveryIndexOnce) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(1000);
  pool.ParallelFor(hits.size(), [&](size_t i) { hits[i]++; });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(Progress, ParseBytes) {
  uint64_t v = 0;
  ASSERT_TRUE(ParseBytes("1.5G", &v));
  EXPECT_EQ(v, 1610612736u);
  ASSERT_TRUE(ParseBytes("512MiB", &v));
  EXPECT_EQ(v, 512u << 20);
  ASSERT_TRUE(ParseBytes("4096", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_FALSE(ParseBytes("lots", &v));
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
}

}  // namespace
}  // namespace hart

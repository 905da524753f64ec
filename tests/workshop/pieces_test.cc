// Derivations stream in pieces: with pieces far smaller than the tensors
// (1000 bytes, aligned to nothing), taken tensors copied piece by piece and
// computed tensors produced piece by piece give a GGUF byte for byte the
// same (same NinaDB file digest) as with the default 8 MiB pieces, which
// hold every tensor of the tiny model whole; and a piece callback that
// produces the wrong number of bytes is refused, leaving the store as it was.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/status.h"
#include "fmt/format.h"
#include "tests/cli/cli_runner.h"
#include "tests/workshop/store_suite.h"
#include "workshop/lora.h"
#include "workshop/merge.h"
#include "workshop/quantize.h"

namespace hart::workshop {
namespace {

using cli_test::Describe;
using cli_test::RunResult;
using cli_test::TempStore;
namespace fs = std::filesystem;

constexpr uint64_t kSmallPiece = 1000;

class Pieces : public testing::StoreSuite {
 protected:
  static void SetUpTestSuite() {
    MakeSuiteStore("hart_pieces_models_");
    for (const char* m : {"a", "b"}) {
      const std::string dir = *models_ + "/" + m;
      const std::string cmd = fmt::format(
          "/usr/bin/python3 {}/tests/fixtures/make_tiny_llama.py '{}' --seed {} --layers 2 --tied > /dev/null",
          HART_SOURCE_DIR, dir, m[0] == 'a' ? 1 : 2);
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      RunResult r = store_->Run({"ingest", dir + "/model.gguf", "--model", m, "--license", "mit"});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
    }
  }
  void TearDown() override {
    SetPieceBytesForTesting(0);
    SetMergeBlockElemsForTesting(0);
  }

  // The merge's digest with small pieces (and small merge blocks) and with
  // the defaults; the largest output tensor must span many small pieces.
  static void MergeBothWays(const std::string& name, const std::string& yaml) {
    auto st = store::Store::Open(store_->dir());
    ASSERT_TRUE(st.ok()) << st.status();
    const std::string recipe = *models_ + "/" + name + ".yaml";
    std::ofstream(recipe) << yaml;
    DeriveOptions o;
    o.model = name;
    auto whole = RunMerge(**st, yaml, recipe, o);
    ASSERT_TRUE(whole.ok()) << whole.status();
    SetPieceBytesForTesting(kSmallPiece);
    SetMergeBlockElemsForTesting(256);
    auto pieces = RunMerge(**st, yaml, recipe, o);
    ASSERT_TRUE(pieces.ok()) << pieces.status();
    EXPECT_FALSE(whole->derive.file_digest.empty());
    EXPECT_EQ(pieces->derive.file_digest, whole->derive.file_digest) << name;
    EXPECT_EQ(pieces->derive.ingest.new_bytes, 0u) << name << ": the same bytes, nothing new";
    // Derive's own buffer held one piece at most, not a tensor.
    EXPECT_LE(pieces->derive.max_tensor_buffer, kSmallPiece) << name;
    uint64_t largest = 0;
    for (const OutputTensor& t : whole->plan.derivation.tensors) {
      auto n = NumElements(t.shape);
      ASSERT_TRUE(n.ok());
      largest = std::max(largest, *ByteSize(t.dtype, *n));
    }
    EXPECT_GT(largest, 20 * kSmallPiece) << name;
  }

};

TEST_F(Pieces, TakenTensorsCopiedInPieces) {
  MergeBothWays("stack", R"(
merge_method: passthrough
slices:
  - sources: [{model: a, layer_range: [0, 1]}]
  - sources: [{model: b, layer_range: [1, 2]}]
)");
}

TEST_F(Pieces, MergedTensorsProducedInPieces) {
  MergeBothWays("lin", R"(
merge_method: linear
models:
  - {model: a, parameters: {weight: 0.3}}
  - {model: b, parameters: {weight: 0.7}}
dtype: bfloat16
)");
}

TEST_F(Pieces, QuantizedTensorsProducedInPieces) {
  auto st = store::Store::Open(store_->dir());
  ASSERT_TRUE(st.ok()) << st.status();
  auto src = OpenSource(**st, "a");
  ASSERT_TRUE(src.ok()) << src.status();
  for (const char* type : {"q8_0", "q4_k_m"}) {
    SetPieceBytesForTesting(0);
    auto d = BuildQuantize(**st, *src, QuantizeParams{type, {}});
    ASSERT_TRUE(d.ok()) << d.status();
    auto whole = DeriveDigestOnly(**st, *d);
    ASSERT_TRUE(whole.ok()) << whole.status();
    SetPieceBytesForTesting(kSmallPiece);
    auto d2 = BuildQuantize(**st, *src, QuantizeParams{type, {}});
    ASSERT_TRUE(d2.ok()) << d2.status();
    auto pieces = DeriveDigestOnly(**st, *d2);
    ASSERT_TRUE(pieces.ok()) << pieces.status();
    EXPECT_EQ(pieces->file_digest, whole->file_digest) << type;
    EXPECT_EQ(pieces->computed_tensors, whole->computed_tensors);
    EXPECT_GT(pieces->computed_tensors, 0u);
  }
}

TEST_F(Pieces, LoraMergedTensorsProducedInPieces) {
  const std::string ad = *models_ + "/ad";
  const std::string cmd = fmt::format(
      "/usr/bin/python3 {}/tests/workshop/lora_reference.py make '{}/a/model.gguf' '{}' > /dev/null",
      HART_SOURCE_DIR, *models_, ad);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  RunResult r = store_->Run({"lora", ad + "/peft", "--base", "a", "--as", "ad"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto st = store::Store::Open(store_->dir());
  ASSERT_TRUE(st.ok()) << st.status();
  auto whole_plan = PlanMergeLora(**st, "a", "ad", 0.5);
  ASSERT_TRUE(whole_plan.ok()) << whole_plan.status();
  auto whole = DeriveDigestOnly(**st, whole_plan->derivation);
  ASSERT_TRUE(whole.ok()) << whole.status();
  SetPieceBytesForTesting(kSmallPiece);
  auto plan = PlanMergeLora(**st, "a", "ad", 0.5);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto pieces = DeriveDigestOnly(**st, plan->derivation);
  ASSERT_TRUE(pieces.ok()) << pieces.status();
  EXPECT_EQ(pieces->file_digest, whole->file_digest);
  EXPECT_GT(pieces->computed_tensors, 0u);
}

// A computed tensor as odd-sized pieces equals the same bytes computed whole;
// too few or too many bytes are refused naming the tensor, nothing stored.
TEST_F(Pieces, PieceCallbackChecked) {
  auto st = store::Store::Open(store_->dir());
  ASSERT_TRUE(st.ok()) << st.status();
  auto src = OpenSource(**st, "a");
  ASSERT_TRUE(src.ok()) << src.status();
  std::vector<uint8_t> bytes(64 * 96 * 4);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 131 + 7);
  auto make = [&](int mode) {
    Derivation d;
    d.method = "test";
    d.inputs = {src->version.id};
    d.metadata = src->header.metadata;
    OutputTensor t;
    t.name = "x";
    t.dtype = DType::kF32;
    t.shape = {64, 96};
    if (mode == 0) {
      t.compute = [&](std::span<uint8_t> out) -> absl::Status {
        std::copy(bytes.begin(), bytes.end(), out.begin());
        return absl::OkStatus();
      };
    } else {
      const size_t total = mode == 1 ? bytes.size() : mode == 2 ? bytes.size() - 5 : bytes.size() + 3;
      t.pieces = [&, total](const PieceSink& emit) -> absl::Status {
        std::vector<uint8_t> more(bytes);
        more.resize(total, 0);
        for (size_t off = 0; off < total; off += 7)
          RETURN_IF_ERROR(emit(std::span<const uint8_t>(more).subspan(off, std::min<size_t>(7, total - off))));
        return absl::OkStatus();
      };
    }
    d.tensors.push_back(std::move(t));
    return d;
  };
  auto whole = DeriveDigestOnly(**st, make(0));
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto pieces = DeriveDigestOnly(**st, make(1));
  ASSERT_TRUE(pieces.ok()) << pieces.status();
  EXPECT_EQ(pieces->file_digest, whole->file_digest);
  auto versions = (*st)->ListVersions();
  ASSERT_TRUE(versions.ok());
  for (int mode : {2, 3}) {
    DeriveOptions o;
    o.model = "bad";
    auto r = Derive(**st, make(mode), o);
    ASSERT_FALSE(r.ok()) << mode;
    EXPECT_NE(r.status().message().find("tensor 'x'"), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("bytes produced, the tensor has 24576"), std::string::npos)
        << r.status();
  }
  auto after = (*st)->ListVersions();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), versions->size());
}

}  // namespace
}  // namespace hart::workshop

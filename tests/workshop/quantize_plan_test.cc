// Which tensors `hart quantize` quantizes and to what: llama.cpp's choices
// for the presets, the fallbacks for rows a K-quant block does not divide,
// --keep, and the refusal of tensors that are already quantized.
#include <map>

#include "gtest/gtest.h"
#include "workshop/quantize.h"

namespace hart::workshop {
namespace {

store::TensorRow Row(std::string name, DType t, Shape shape) {
  store::TensorRow r;
  r.name = std::move(name);
  r.dtype = t;
  r.shape = std::move(shape);
  return r;
}

std::map<std::string, DType> Plan(const SourceModel& src, QuantizeParams p) {
  auto plan = PlanQuantize(src, p);
  EXPECT_TRUE(plan.ok()) << plan.status();
  std::map<std::string, DType> out;
  if (plan.ok())
    for (const auto& r : *plan) out[r.name] = r.to;
  return out;
}

SourceModel Odd() {
  SourceModel s;
  s.tensors = {Row("token_embd.weight", DType::kF16, {300, 512}),
               Row("blk.0.attn_norm.weight", DType::kF32, {96}),
               Row("blk.0.attn_q.weight", DType::kF16, {64, 96}),
               Row("blk.0.attn_v.weight", DType::kF16, {64, 512}),
               Row("blk.0.ffn_up.weight", DType::kF32, {10, 100}),
               Row("blk.0.ffn_down.weight", DType::kBF16, {512, 288}),
               Row("output.weight", DType::kF16, {300, 320})};
  return s;
}

TEST(QuantizePlan, PresetChoicesAndFallbacks) {
  auto p = Plan(Odd(), {"q4_k_m", {}});
  EXPECT_EQ(p["token_embd.weight"], DType::kQ4_K);
  EXPECT_EQ(p["blk.0.attn_norm.weight"], DType::kF32);  // vectors stay
  EXPECT_EQ(p["blk.0.attn_q.weight"], DType::kQ5_0);    // row 96: Q4_K -> Q5_0
  EXPECT_EQ(p["blk.0.attn_v.weight"], DType::kQ6_K);    // the only layer is the last eighth
  EXPECT_EQ(p["blk.0.ffn_up.weight"], DType::kF16);     // row 100 fits no block
  EXPECT_EQ(p["blk.0.ffn_down.weight"], DType::kQ8_0);  // Q6_K, row 288 -> Q8_0
  EXPECT_EQ(p["output.weight"], DType::kQ8_0);          // output with a row not of 256
}

TEST(QuantizePlan, PureTypesFallBackLikeLlamaCpp) {
  auto p5 = Plan(Odd(), {"q5_k", {}});
  EXPECT_EQ(p5["blk.0.attn_q.weight"], DType::kQ5_1);
  EXPECT_EQ(p5["blk.0.attn_v.weight"], DType::kQ5_K);
  EXPECT_EQ(p5["output.weight"], DType::kQ5_1);  // --pure: no output rule
  auto p6 = Plan(Odd(), {"q6_k", {}});
  EXPECT_EQ(p6["blk.0.ffn_down.weight"], DType::kQ8_0);
  auto p8 = Plan(Odd(), {"q8_0", {"output*", "blk.*.attn_v.*"}});
  EXPECT_EQ(p8["output.weight"], DType::kF16);      // kept
  EXPECT_EQ(p8["blk.0.attn_v.weight"], DType::kF16);
  EXPECT_EQ(p8["blk.0.attn_q.weight"], DType::kQ8_0);
}

TEST(QuantizePlan, TiedEmbeddingGetsTheOutputType) {
  SourceModel s;
  s.tensors = {Row("token_embd.weight", DType::kF16, {1000, 512}),
               Row("blk.0.attn_q.weight", DType::kF16, {512, 512})};
  auto p = Plan(s, {"q5_k_m", {}});
  EXPECT_EQ(p["token_embd.weight"], DType::kQ6_K);
  EXPECT_EQ(p["blk.0.attn_q.weight"], DType::kQ5_K);
}

TEST(QuantizePlan, RefusesUnknownTypesAndQuantizedInputs) {
  auto bad = PlanQuantize(Odd(), {"q4_k_s", {}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("type: unknown quantization type 'q4_k_s'"), std::string::npos);
  SourceModel s = Odd();
  s.tensors.push_back(Row("blk.1.attn_q.weight", DType::kQ4_0, {64, 512}));
  auto q = PlanQuantize(s, {"q8_0", {}});
  EXPECT_NE(q.status().message().find("'blk.1.attn_q.weight' is Q4_0"), std::string::npos) << q.status();
  auto kept = PlanQuantize(s, {"q8_0", {"blk.1.*"}});
  EXPECT_TRUE(kept.ok()) << kept.status();
}

}  // namespace
}  // namespace hart::workshop

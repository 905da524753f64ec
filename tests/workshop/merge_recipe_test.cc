// The mergekit recipe parser: accepted forms, parameter evaluation
// (gradients, filters), and the errors that name the field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/status.h"
#include "workshop/merge_math.h"
#include "workshop/merge_recipe.h"

namespace hart::workshop {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<MergeRecipe> P(std::string_view y) { return ParseMergeRecipe(y, "r.yaml"); }

std::string Err(std::string_view y) {
  auto r = P(y);
  EXPECT_FALSE(r.ok()) << y;
  return r.ok() ? "" : std::string(Msg(r.status()));
}

TEST(MergeRecipe, SlerpWithFilteredGradients) {
  auto r = P(R"(
slices:
  - sources:
      - model: a
        layer_range: [0, 4]
      - model: b@2
        layer_range: [0, 4]
merge_method: slerp
base_model: a
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
dtype: bfloat16
tokenizer_source: base
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->method, MergeMethod::kSlerp);
  EXPECT_TRUE(r->uses_slices);
  ASSERT_EQ(r->slices.size(), 1u);
  EXPECT_EQ(r->slices[0].sources[1].model, "b@2");
  EXPECT_EQ(*r->dtype, DType::kBF16);
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_THAT(r->notes[0], HasSubstr("tokenizer_source ignored"));
  const ParamSetting& t = r->params.at("t");
  // GGUF names match the Hugging Face filters.
  EXPECT_DOUBLE_EQ(*t.Evaluate("blk.0.attn_q.weight", 0.0), 0.0);
  EXPECT_DOUBLE_EQ(*t.Evaluate("model.layers.0.self_attn.q_proj.weight", 0.25), 0.5);
  EXPECT_DOUBLE_EQ(*t.Evaluate("blk.1.attn_k.weight", 0.375), 0.4);  // between 0.5 and 0.3
  EXPECT_DOUBLE_EQ(*t.Evaluate("blk.3.ffn_up.weight", 1.0), 0.0);
  EXPECT_DOUBLE_EQ(*t.Evaluate("output_norm.weight", 0.3), 0.5);
  EXPECT_EQ(r->ModelRefs(), (std::vector<std::string>{"a", "b@2"}));
}

TEST(MergeRecipe, TiesWithPerModelParameters) {
  auto r = P(R"(
models:
  - model: base
  - model: ft1
    parameters: {density: 0.5, weight: 0.7}
  - model: ft2
    parameters:
      density: 0.3
      weight: [0.1, 0.9]
merge_method: ties
base_model: base
parameters: {normalize: true, int8_mask: true}
random_seed: 42
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->models.size(), 3u);
  EXPECT_DOUBLE_EQ(*r->models[2].params.at("weight").Evaluate("x", 0.5), 0.5);
  EXPECT_EQ(r->seed, 42u);
  EXPECT_FALSE(r->models[0].params.count("weight"));
}

TEST(MergeRecipe, ErrorsNameTheField) {
  EXPECT_THAT(Err("models: [{model: a}]\n"), HasSubstr("merge_method: missing"));
  EXPECT_THAT(Err("merge_method: frankenmerge\nmodels: [{model: a}]\n"),
              HasSubstr("r.yaml:1: merge_method: unknown merge method 'frankenmerge'"));
  EXPECT_THAT(Err("merge_method: linear\nmodels:\n  - model: a\n    parameters: {wieght: 1}\n"),
              HasSubstr("r.yaml:4: models[0].parameters.wieght: unknown parameter for "
                        "merge_method linear"));
  EXPECT_THAT(Err("merge_method: ties\nmodels: [{model: a}, {model: b}]\n"),
              HasSubstr("base_model: required by ties"));
  EXPECT_THAT(Err("merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n"),
              HasSubstr("slices[0].sources[0].layer_range: missing"));
  EXPECT_THAT(Err("merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n"
                  "        layer_range: [4, 2]\n"),
              HasSubstr("slices[0].sources[0].layer_range: [4, 2] is empty"));
  EXPECT_THAT(Err("merge_method: linear\nslices:\n  - sources:\n"
                  "      - {model: a, layer_range: [0, 4]}\n"
                  "      - {model: b, layer_range: [0, 3]}\n"),
              HasSubstr("slices[0].sources[1].layer_range: covers 3 layers but "
                        "slices[0].sources[0] covers 4"));
  EXPECT_THAT(Err("merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}]\n"),
              HasSubstr("parameters.t: required by slerp"));
  EXPECT_THAT(Err("merge_method: slerp\nbase_model: c\nmodels: [{model: a}, {model: b}]\n"
                  "parameters: {t: 0.5}\n"),
              HasSubstr("base_model: 'c' is not one of the two models"));
  EXPECT_THAT(Err("merge_method: ties\nbase_model: a\nmodels: [{model: a}, {model: b, "
                  "parameters: {density: 1.5, weight: 1}}]\n"),
              HasSubstr("models[1].parameters.density: 1.5 is outside (0, 1]"));
  EXPECT_THAT(Err("merge_method: linear\nmodels: [{model: a, parameters: {normalize: true}}]\n"),
              HasSubstr("models[0].parameters.normalize: a whole-merge parameter"));
  EXPECT_THAT(Err("merge_method: linear\nmodels: [{model: a}]\ndtype: int8\n"),
              HasSubstr("dtype: 'int8': expected float32, float16 or bfloat16"));
  EXPECT_THAT(Err("merge_method: linear\nmodels: [{model: a}]\noutput_dir: x\n"),
              HasSubstr("output_dir: unknown field"));
  EXPECT_THAT(Err("merge_method: linear\n"), HasSubstr("give exactly one of models and slices"));
  EXPECT_THAT(Err("merge_method: linear\nmodels: [{model: a+lora}]\n"),
              HasSubstr("model+lora references are not supported"));
  EXPECT_THAT(Err("merge_method: [linear\n"), HasSubstr("not valid YAML"));
  EXPECT_THAT(Err("- 1\n- 2\n"), HasSubstr("expected a YAML map"));
  EXPECT_THAT(Err("merge_method: linear\nmodels: [{model: a, parameters: {weight: .nan}}]\n"),
              HasSubstr("expected a number, got '.nan'"));
}

TEST(MergeMath, DareKeepIsAPureFunctionNearDensity) {
  const uint64_t key = DareKey(7, "blk.0.attn_q.weight", 1);
  EXPECT_EQ(key, DareKey(7, "blk.0.attn_q.weight", 1));
  EXPECT_NE(key, DareKey(8, "blk.0.attn_q.weight", 1));
  EXPECT_NE(key, DareKey(7, "blk.0.attn_q.weight", 2));
  int kept = 0;
  for (uint64_t i = 0; i < 100000; ++i) kept += DareKeep(key, i, 0.3);
  EXPECT_NEAR(kept / 100000.0, 0.3, 0.01);
  // Known values (the numpy reference in merge_reference.py computes the same).
  EXPECT_EQ(SplitMix64(0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
}

TEST(MergeMath, TiesKeepsExactlyKByMagnitudeInTwoRadixPasses) {
  // Base zero; one model whose deltas are 1..1000 with ties at the
  // threshold: density 0.25 keeps 250 elements, the largest first, equal
  // magnitudes in index order.
  const size_t n = 1000;
  std::vector<float> base(n, 0.0f), x(n);
  for (size_t i = 0; i < n; ++i) x[i] = (i % 2 ? -1.0f : 1.0f) * static_cast<float>(i / 4);
  MergeSettings s;
  s.method = MergeMethod::kTies;
  s.base = 0;
  s.weight = {1, 1};
  s.density = {1, 0.25};
  s.normalize = true;
  TensorMerger m(s, 2, n);
  const float* in[] = {base.data(), x.data()};
  // Two blocks each pass, to check the streaming.
  for (int pass = 0; pass < m.observe_passes(); ++pass) {
    m.Observe(pass, 0, in, 600);
    const float* in2[] = {base.data() + 600, x.data() + 600};
    m.Observe(pass, 600, in2, 400);
  }
  std::vector<float> out(n);
  m.Compute(0, in, 600, out.data());
  const float* in2[] = {base.data() + 600, x.data() + 600};
  m.Compute(600, in2, 400, out.data() + 600);
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i)
    if (out[i] != 0) {
      ++kept;
      EXPECT_EQ(out[i], x[i]);
    }
  EXPECT_EQ(kept, 250u);
  EXPECT_EQ(out[999], x[999]);
  EXPECT_EQ(out[0], 0.0f);
}

TEST(MergeMath, Bf16RoundsToNearestEven) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
}

}  // namespace
}  // namespace hart::workshop

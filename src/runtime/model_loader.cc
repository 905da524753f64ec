#include "runtime/model_loader.h"

#include <algorithm>

#include "core/status.h"
#include "runtime/kernels.h"

namespace hart::runtime {
namespace {

struct RoleNames {
  Role role;
  const char* gguf;  // after "blk.N."
  const char* hf;    // after "model.layers.N."
};

constexpr RoleNames kRoleNames[] = {
    {Role::kAttnNorm, "attn_norm.weight", "input_layernorm.weight"},
    {Role::kQ, "attn_q.weight", "self_attn.q_proj.weight"},
    {Role::kK, "attn_k.weight", "self_attn.k_proj.weight"},
    {Role::kV, "attn_v.weight", "self_attn.v_proj.weight"},
    {Role::kQkv, "attn_qkv.weight", "self_attn.qkv_proj.weight"},
    {Role::kO, "attn_output.weight", "self_attn.o_proj.weight"},
    {Role::kQBias, "attn_q.bias", "self_attn.q_proj.bias"},
    {Role::kKBias, "attn_k.bias", "self_attn.k_proj.bias"},
    {Role::kVBias, "attn_v.bias", "self_attn.v_proj.bias"},
    {Role::kQNorm, "attn_q_norm.weight", "self_attn.q_norm.weight"},
    {Role::kKNorm, "attn_k_norm.weight", "self_attn.k_norm.weight"},
    {Role::kPostAttnNorm, "post_attention_norm.weight", ""},
    {Role::kFfnNorm, "ffn_norm.weight", "post_attention_layernorm.weight"},
    {Role::kGate, "ffn_gate.weight", "mlp.gate_proj.weight"},
    {Role::kUp, "ffn_up.weight", "mlp.up_proj.weight"},
    {Role::kGateUp, "", "mlp.gate_up_proj.weight"},
    {Role::kDown, "ffn_down.weight", "mlp.down_proj.weight"},
    {Role::kPostFfnNorm, "post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
};

bool IsMatrix(Role r) {
  switch (r) {
    case Role::kQ: case Role::kK: case Role::kV: case Role::kQkv: case Role::kO:
    case Role::kGate: case Role::kUp: case Role::kGateUp: case Role::kDown:
      return true;
    default:
      return false;
  }
}

struct Expect {
  int64_t rows = 0;
  int64_t cols = 0;  // 0 for vectors
  std::string why;
};

Expect Expected(const ModelConfig& c, Role r) {
  const int64_t q = c.n_heads * c.head_dim, k = c.n_kv_heads * c.head_dim, v = c.n_kv_heads * c.value_dim;
  switch (r) {
    case Role::kQ: return {q, c.dim, "[head_count*key_length, embedding_length]"};
    case Role::kK: return {k, c.dim, "[head_count_kv*key_length, embedding_length]"};
    case Role::kV: return {v, c.dim, "[head_count_kv*value_length, embedding_length]"};
    case Role::kQkv: return {q + k + v, c.dim, "[(head_count+2*head_count_kv)*head size, embedding_length]"};
    case Role::kO: return {c.dim, c.n_heads * c.value_dim, "[embedding_length, head_count*value_length]"};
    case Role::kQBias: return {q, 0, "[head_count*key_length]"};
    case Role::kKBias: return {k, 0, "[head_count_kv*key_length]"};
    case Role::kVBias: return {v, 0, "[head_count_kv*value_length]"};
    case Role::kQNorm: case Role::kKNorm: return {c.head_dim, 0, "[key_length]"};
    case Role::kGate: case Role::kUp: return {c.ffn_dim, c.dim, "[feed_forward_length, embedding_length]"};
    case Role::kGateUp: return {2 * c.ffn_dim, c.dim, "[2*feed_forward_length, embedding_length]"};
    case Role::kDown: return {c.dim, c.ffn_dim, "[embedding_length, feed_forward_length]"};
    default: return {c.dim, 0, "[embedding_length]"};
  }
}

absl::Status TensorError(const WeightSource& s, std::string_view tensor, std::string_view what) {
  return absl::InvalidArgumentError(fmt::format("{}: tensor {}: {}", s.origin(), tensor, what));
}

absl::Status CheckShape(const WeightSource& s, const WeightInfo& t, const Expect& e) {
  Shape want = e.cols ? Shape{static_cast<uint64_t>(e.rows), static_cast<uint64_t>(e.cols)}
                      : Shape{static_cast<uint64_t>(e.rows)};
  if (t.shape != want)
    return TensorError(s, t.name, fmt::format("shape {} contradicts the hyper-parameters: expected {} = {}",
                                              ShapeToString(t.shape), e.why, ShapeToString(want)));
  if (e.cols) {
    RETURN_IF_ERROR(Annotate(CheckWeightMatrix(WeightMatrix{t.dtype, e.rows, e.cols, &t}),
                             fmt::format("{}: tensor {}", s.origin(), t.name)));
  } else if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
    return TensorError(s, t.name, fmt::format("type {} is not supported for a vector (F32, F16, BF16)",
                                              Name(t.dtype)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ReadVector(WeightSource& s, const WeightInfo& t, bool plus_one) {
  std::vector<uint8_t> raw(t.nbytes);
  RETURN_IF_ERROR(s.Read(t, 0, raw));
  std::vector<float> out(t.shape.empty() ? 1 : t.shape[0]);
  Dequantize(t.dtype, raw.data(), out.data(), static_cast<int64_t>(out.size()));
  if (plus_one)
    for (float& v : out) v += 1.0f;
  return out;
}

bool IsNorm(Role r) {
  return r == Role::kAttnNorm || r == Role::kFfnNorm || r == Role::kPostAttnNorm ||
         r == Role::kPostFfnNorm;
}

uint64_t RowBytes(const WeightInfo& t) {
  const auto& info = Info(t.dtype);
  return t.shape.back() / info.block_size * info.type_size;
}

}  // namespace

std::string RoleTensorName(const ModelConfig& cfg, Role role, int64_t l) {
  const bool hf = cfg.naming == WeightNaming::kHf;
  for (const auto& e : kRoleNames) {
    if (e.role != role) continue;
    const char* suffix = hf ? e.hf : e.gguf;
    if (hf && cfg.arch == Arch::kGemma2) {
      // Gemma2 has four norms per layer; its post_attention_layernorm is not the FFN's.
      if (role == Role::kPostAttnNorm) suffix = "post_attention_layernorm.weight";
      if (role == Role::kFfnNorm) suffix = "pre_feedforward_layernorm.weight";
    }
    if (*suffix == '\0') return "";
    return hf ? fmt::format("model.layers.{}.{}", l, suffix) : fmt::format("blk.{}.{}", l, suffix);
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ModelPlan>> BuildPlan(WeightSource* source, ModelConfig& cfg) {
  WeightSource& s = *source;
  auto plan = std::make_unique<ModelPlan>();
  const bool hf = cfg.naming == WeightNaming::kHf;
  const char* embed_name = hf ? "model.embed_tokens.weight" : "token_embd.weight";
  const char* norm_name = hf ? "model.norm.weight" : "output_norm.weight";
  const char* out_name = hf ? "lm_head.weight" : "output.weight";

  plan->embed = s.Find(embed_name);
  if (!plan->embed) return TensorError(s, embed_name, "missing");
  if (plan->embed->shape.size() != 2 || plan->embed->shape[1] != static_cast<uint64_t>(cfg.dim))
    return TensorError(s, embed_name, fmt::format("shape {} contradicts embedding_length {}",
                                                  ShapeToString(plan->embed->shape), cfg.dim));
  plan->vocab = static_cast<int64_t>(plan->embed->shape[0]);
  if (cfg.vocab_size != 0 && cfg.vocab_size != plan->vocab)
    return TensorError(s, embed_name, fmt::format("{} rows contradict vocab_size {}", plan->vocab, cfg.vocab_size));
  cfg.vocab_size = plan->vocab;
  RETURN_IF_ERROR(CheckShape(s, *plan->embed, {plan->vocab, cfg.dim, "[vocab, embedding_length]"}));
  plan->output = s.Find(out_name);
  plan->tied = plan->output == nullptr;
  if (plan->tied) plan->output = plan->embed;
  RETURN_IF_ERROR(CheckShape(s, *plan->output, {plan->vocab, cfg.dim, "[vocab, embedding_length]"}));
  const WeightInfo* onorm = s.Find(norm_name);
  if (!onorm) return TensorError(s, norm_name, "missing");
  RETURN_IF_ERROR(CheckShape(s, *onorm, Expected(cfg, Role::kAttnNorm)));
  if (const WeightInfo* rf = hf ? nullptr : s.Find("rope_freqs.weight")) {
    RETURN_IF_ERROR(CheckShape(s, *rf, {cfg.rope_dim / 2, 0, "[rope.dimension_count/2]"}));
  }

  plan->layers.resize(cfg.n_layers);
  uint64_t max_layer = 0;
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    LayerPlan& lp = plan->layers[l];
    lp.piece.fill(-1);
    for (size_t r = 0; r < kRoleCount; ++r) {
      std::string name = RoleTensorName(cfg, static_cast<Role>(r), l);
      if (!name.empty()) lp.tensor[r] = s.Find(name);
    }
    auto& t = lp.tensor;
    auto at = [&](Role r) -> const WeightInfo*& { return t[static_cast<size_t>(r)]; };
    // llama.cpp stores phi3's fused gate|up as ffn_up with twice the rows.
    if (!hf && cfg.arch == Arch::kPhi3 && !at(Role::kGate) && at(Role::kUp)) {
      at(Role::kGateUp) = at(Role::kUp);
      at(Role::kUp) = nullptr;
    }
    if (at(Role::kQkv)) at(Role::kQ) = at(Role::kK) = at(Role::kV) = nullptr;
    if (at(Role::kGateUp)) at(Role::kGate) = at(Role::kUp) = nullptr;
    std::vector<Role> required = {Role::kAttnNorm, Role::kO, Role::kFfnNorm, Role::kDown};
    if (!at(Role::kQkv)) required.insert(required.end(), {Role::kQ, Role::kK, Role::kV});
    if (!at(Role::kGateUp)) required.insert(required.end(), {Role::kGate, Role::kUp});
    if (cfg.arch == Arch::kQwen3) required.insert(required.end(), {Role::kQNorm, Role::kKNorm});
    if (cfg.arch == Arch::kGemma2) required.insert(required.end(), {Role::kPostAttnNorm, Role::kPostFfnNorm});
    for (Role r : required)
      if (!at(r)) return TensorError(s, RoleTensorName(cfg, r, l), "missing");
    if (at(Role::kQkv) && cfg.value_dim != cfg.head_dim)
      return TensorError(s, at(Role::kQkv)->name, "a fused qkv needs value_length == key_length");

    WeightGroup group;
    group.pin_rank = 1 + static_cast<int>(l);
    for (size_t r = 0; r < kRoleCount; ++r) {
      if (!t[r]) continue;
      Role role = static_cast<Role>(r);
      RETURN_IF_ERROR(CheckShape(s, *t[r], Expected(cfg, role)));
      if (IsMatrix(role)) {
        lp.piece[r] = static_cast<int>(group.pieces.size());
        group.pieces.push_back(WeightPiece{t[r], 0, t[r]->nbytes});
      }
    }
    lp.group = plan->groups.size();
    plan->groups.push_back(std::move(group));
  }
  // Vectors are read only after every shape checked out.
  for (auto& lp : plan->layers)
    for (size_t r = 0; r < kRoleCount; ++r) {
      if (!lp.tensor[r] || IsMatrix(static_cast<Role>(r))) continue;
      ASSIGN_OR_RETURN(lp.vec[r], ReadVector(s, *lp.tensor[r], cfg.norm_plus_one && IsNorm(static_cast<Role>(r))));
      plan->vector_bytes += lp.vec[r].size() * sizeof(float);
    }
  ASSIGN_OR_RETURN(plan->output_norm, ReadVector(s, *onorm, cfg.norm_plus_one));
  if (const WeightInfo* rf = hf ? nullptr : s.Find("rope_freqs.weight")) {
    ASSIGN_OR_RETURN(plan->rope_freqs, ReadVector(s, *rf, false));
  }
  if (cfg.rope_scaling.kind == RopeScaling::Kind::kLongRope) {
    plan->rope_factors_short = cfg.rope_scaling.short_factor;
    plan->rope_factors_long = cfg.rope_scaling.long_factor;
    for (auto [name, dst] : {std::pair{"rope_factors_short.weight", &plan->rope_factors_short},
                             std::pair{"rope_factors_long.weight", &plan->rope_factors_long}}) {
      if (!dst->empty()) continue;
      const WeightInfo* t = hf ? nullptr : s.Find(name);
      if (!t) return TensorError(s, name, "missing (the metadata asks for longrope scaling)");
      RETURN_IF_ERROR(CheckShape(s, *t, {cfg.rope_dim / 2, 0, "[rope.dimension_count/2]"}));
      ASSIGN_OR_RETURN(*dst, ReadVector(s, *t, false));
      for (float x : *dst)
        if (!(x > 0) || !std::isfinite(x)) return TensorError(s, name, "longrope factors must be positive");
    }
  }
  plan->vector_bytes += (plan->output_norm.size() + plan->rope_freqs.size() + plan->rope_factors_short.size() +
                         plan->rope_factors_long.size()) * sizeof(float);

  // The head is split into slices no bigger than a layer, so a budget that
  // holds one layer also holds any slice of the head.
  for (const auto& g : plan->groups) {
    uint64_t b = 0;
    for (const auto& p : g.pieces) b += p.nbytes;
    max_layer = std::max(max_layer, b);
  }
  const uint64_t row_bytes = RowBytes(*plan->output);
  const int64_t slice_rows = std::max<int64_t>(1, static_cast<int64_t>(max_layer / row_bytes));
  for (int64_t r0 = 0; r0 < plan->vocab; r0 += slice_rows) {
    HeadSlice hs{plan->groups.size(), r0, std::min(slice_rows, plan->vocab - r0)};
    WeightGroup g;
    g.pin_rank = 0;
    g.pieces.push_back(WeightPiece{plan->output, static_cast<uint64_t>(r0) * row_bytes,
                                   static_cast<uint64_t>(hs.rows) * row_bytes});
    plan->head.push_back(hs);
    plan->groups.push_back(std::move(g));
  }
  return plan;
}

}  // namespace hart::runtime

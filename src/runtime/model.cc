#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>

#include "core/status.h"
#include "runtime/model_loader.h"

namespace hart::runtime {
namespace {

void RmsNorm(const float* x, const float* w, float* out, int64_t n, double eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

float Silu(float x) { return x / (1.0f + std::exp(-x)); }
float GeluTanh(float x) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(kC * (x + 0.044715f * x * x * x)));
}

// Inverse frequency of each rotated pair, with llama-3 or linear scaling
// folded in (positions are then used as they are); rope_freqs (llama-3's
// GGUF tensor, or longrope's factors) divide the base frequencies.
std::vector<float> InvFreq(const ModelConfig& c, const std::vector<float>& rope_freqs) {
  const int64_t half = c.rope_dim / 2;
  std::vector<float> out(half);
  const auto& s = c.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    double f = std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(c.rope_dim));
    if (!rope_freqs.empty()) {
      f /= rope_freqs[i];
    } else if (s.kind == RopeScaling::Kind::kLinear) {
      f /= s.factor;
    } else if (s.kind == RopeScaling::Kind::kLlama3) {
      const double orig = static_cast<double>(s.original_context);
      const double low_wavelen = orig / s.low_freq_factor, high_wavelen = orig / s.high_freq_factor;
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
    out[i] = static_cast<float>(f);
  }
  return out;
}

}  // namespace

Model::~Model() = default;

const ModelConfig& Model::config() const { return cfg_; }
int64_t Model::vocab_size() const { return plan_->vocab; }

absl::StatusOr<std::unique_ptr<Model>> Model::Load(WeightSource* source, const ModelOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  m->source_ = source;
  m->pool_ = opts.pool ? opts.pool : &ThreadPool::Default();
  ASSIGN_OR_RETURN(m->cfg_, source->Config());
  ASSIGN_OR_RETURN(m->plan_, BuildPlan(source, m->cfg_));
  m->max_context_ = opts.max_context > 0 ? std::min(opts.max_context, m->cfg_.context_length)
                                         : m->cfg_.context_length;
  const RopeScaling& rs = m->cfg_.rope_scaling;
  if (rs.kind == RopeScaling::Kind::kLongRope) {
    // The long factors when this run's context reaches past the original
    // one (as llama.cpp decides, by context size rather than by position,
    // so a sequence never changes frequencies half-way).
    const bool is_long = m->max_context_ > rs.original_context;
    m->inv_freq_ = InvFreq(m->cfg_, is_long ? m->plan_->rope_factors_long : m->plan_->rope_factors_short);
    m->rope_mscale_ = rs.attn_factor;
  } else {
    m->inv_freq_ = InvFreq(m->cfg_, m->plan_->rope_freqs);
  }
  const uint64_t kv_row = static_cast<uint64_t>(m->cfg_.n_kv_heads);
  m->k_cache_.assign(m->cfg_.n_layers * m->max_context_ * kv_row * m->cfg_.head_dim, 0.0f);
  m->v_cache_.assign(m->cfg_.n_layers * m->max_context_ * kv_row * m->cfg_.value_dim, 0.0f);
  m->budgeted_ = opts.stream.budget > 0;
  ASSIGN_OR_RETURN(m->streamer_,
                   WeightStreamer::Create(source, m->plan_->groups, opts.stream, m->plan_->vector_bytes));
  return m;
}

uint64_t Model::weight_bytes_per_pass() const {
  uint64_t n = 0;
  for (const auto& g : plan_->groups)
    for (const auto& p : g.pieces) n += p.nbytes;
  return n;
}

uint64_t Model::min_budget() const { return WeightStreamer::MinBudget(plan_->groups, plan_->vector_bytes); }

uint64_t Model::kv_cache_bytes() const { return (k_cache_.size() + v_cache_.size()) * sizeof(float); }

absl::Status Model::Embed(std::span<const int32_t> tokens, float* x) {
  const WeightInfo& e = *plan_->embed;
  const auto& info = Info(e.dtype);
  const uint64_t row_bytes = cfg_.dim / info.block_size * info.type_size;
  std::vector<uint8_t> row(row_bytes);
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= plan_->vocab)
      return absl::InvalidArgumentError(fmt::format("token id {} is outside the vocabulary [0, {})", id, plan_->vocab));
    const uint8_t* src = nullptr;
    // Without a budget the table is mapped; under one, a pinned tied head
    // serves the rows, else one row per token is read (far cheaper than
    // holding a table of vocab x dim for a few rows).
    if (!budgeted_) {
      ASSIGN_OR_RETURN(auto span, source_->Map(e));
      src = span.data() + id * row_bytes;
    } else if (plan_->tied) {
      for (const auto& hs : plan_->head)
        if (id >= hs.row0 && id < hs.row0 + hs.rows && streamer_->IsPinned(hs.group)) {
          ASSIGN_OR_RETURN(auto ptrs, streamer_->Acquire(hs.group));
          src = ptrs[0] + (id - hs.row0) * row_bytes;
        }
    }
    if (src == nullptr) {
      RETURN_IF_ERROR(streamer_->ReadDirect(e, id * row_bytes, row));
      src = row.data();
    }
    Dequantize(e.dtype, src, x + t * cfg_.dim, cfg_.dim);
    if (cfg_.arch == Arch::kGemma2) {
      const float scale = std::sqrt(static_cast<float>(cfg_.dim));
      for (int64_t i = 0; i < cfg_.dim; ++i) x[t * cfg_.dim + i] *= scale;
    }
  }
  return absl::OkStatus();
}

void Model::Attention(int64_t l, int64_t n) {
  const ModelConfig& c = cfg_;
  const int64_t hd = c.head_dim, vd = c.value_dim, group = c.n_heads / c.n_kv_heads;
  const int64_t kv_k = c.n_kv_heads * hd, kv_v = c.n_kv_heads * vd;
  const float* kc = k_cache_.data() + l * max_context_ * kv_k;
  const float* vc = v_cache_.data() + l * max_context_ * kv_v;
  const float scale = c.query_scale > 0 ? static_cast<float>(c.query_scale) : 1.0f / std::sqrt(static_cast<float>(hd));
  const bool sliding = c.sliding_window > 0 && l % 2 == 0;
  pool_->ParallelFor(static_cast<size_t>(n * c.n_heads), [&](size_t item) {
    const int64_t t = static_cast<int64_t>(item) / c.n_heads, h = static_cast<int64_t>(item) % c.n_heads;
    const int64_t p = pos_ + t, kvh = h / group;
    const int64_t start = sliding ? std::max<int64_t>(0, p - c.sliding_window + 1) : 0;
    thread_local std::vector<float> scores;
    scores.resize(p - start + 1);
    const float* q = q_.data() + t * c.n_heads * hd + h * hd;
    float mx = -INFINITY;
    for (int64_t j = start; j <= p; ++j) {
      const float* k = kc + j * kv_k + kvh * hd;
      float s = 0;
      for (int64_t i = 0; i < hd; ++i) s += q[i] * k[i];
      s *= scale;
      if (c.attn_softcap > 0) s = static_cast<float>(c.attn_softcap * std::tanh(s / c.attn_softcap));
      scores[j - start] = s;
      mx = std::max(mx, s);
    }
    float sum = 0;
    for (float& s : scores) sum += (s = std::exp(s - mx));
    float* out = att_.data() + t * c.n_heads * vd + h * vd;
    std::fill(out, out + vd, 0.0f);
    for (int64_t j = start; j <= p; ++j) {
      const float w = scores[j - start] / sum;
      const float* v = vc + j * kv_v + kvh * vd;
      for (int64_t i = 0; i < vd; ++i) out[i] += w * v[i];
    }
  });
}

absl::Status Model::Layer(int64_t l, int64_t n, float* x) {
  const ModelConfig& c = cfg_;
  LayerPlan& lp = plan_->layers[l];
  auto vec = [&](Role r) -> const std::vector<float>& { return lp.vec[static_cast<size_t>(r)]; };
  ASSIGN_OR_RETURN(auto ptrs, streamer_->Acquire(lp.group));
  auto mat = [&](Role r) {
    const WeightInfo* t = lp.tensor[static_cast<size_t>(r)];
    return WeightMatrix{t->dtype, static_cast<int64_t>(t->shape[0]), static_cast<int64_t>(t->shape[1]),
                        ptrs[lp.piece[static_cast<size_t>(r)]]};
  };
  auto has = [&](Role r) { return lp.tensor[static_cast<size_t>(r)] != nullptr; };
  const int64_t dim = c.dim, hd = c.head_dim, vd = c.value_dim;
  const int64_t nq = c.n_heads * hd, nk = c.n_kv_heads * hd, nv = c.n_kv_heads * vd;

  for (int64_t t = 0; t < n; ++t) RmsNorm(x + t * dim, vec(Role::kAttnNorm).data(), xb_.data() + t * dim, dim, c.norm_eps);
  if (has(Role::kQkv)) {
    const int64_t rows = nq + nk + nv;
    hb_.resize(n * rows);
    MatMul(mat(Role::kQkv), xb_.data(), hb_.data(), n, *pool_);
    for (int64_t t = 0; t < n; ++t) {
      const float* r = hb_.data() + t * rows;
      std::copy(r, r + nq, q_.data() + t * nq);
      std::copy(r + nq, r + nq + nk, k_.data() + t * nk);
      std::copy(r + nq + nk, r + rows, v_.data() + t * nv);
    }
  } else {
    MatMul(mat(Role::kQ), xb_.data(), q_.data(), n, *pool_);
    MatMul(mat(Role::kK), xb_.data(), k_.data(), n, *pool_);
    MatMul(mat(Role::kV), xb_.data(), v_.data(), n, *pool_);
  }
  const std::pair<Role, std::pair<float*, int64_t>> biases[] = {
      {Role::kQBias, {q_.data(), nq}}, {Role::kKBias, {k_.data(), nk}}, {Role::kVBias, {v_.data(), nv}}};
  for (const auto& [role, buf] : biases)
    if (has(role))
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < buf.second; ++i) buf.first[t * buf.second + i] += vec(role)[i];
  if (has(Role::kQNorm))
    for (int64_t h = 0; h < n * c.n_heads; ++h) RmsNorm(q_.data() + h * hd, vec(Role::kQNorm).data(), q_.data() + h * hd, hd, c.norm_eps);
  if (has(Role::kKNorm))
    for (int64_t h = 0; h < n * c.n_kv_heads; ++h) RmsNorm(k_.data() + h * hd, vec(Role::kKNorm).data(), k_.data() + h * hd, hd, c.norm_eps);

  // RoPE: pairs (2i, 2i+1) for GGUF llama (permuted q/k), (i, i + d/2) otherwise.
  const int64_t half = c.rope_dim / 2;
  auto rotate = [&](float* head, int64_t t) {
    const float* cs = cos_.data() + t * half;
    const float* sn = sin_.data() + t * half;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = c.rope_order == RopeOrder::kInterleaved ? 2 * i : i;
      const int64_t b = c.rope_order == RopeOrder::kInterleaved ? 2 * i + 1 : i + half;
      const float x0 = head[a], x1 = head[b];
      head[a] = x0 * cs[i] - x1 * sn[i];
      head[b] = x0 * sn[i] + x1 * cs[i];
    }
  };
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < c.n_heads; ++h) rotate(q_.data() + t * nq + h * hd, t);
    for (int64_t h = 0; h < c.n_kv_heads; ++h) rotate(k_.data() + t * nk + h * hd, t);
  }
  std::copy(k_.begin(), k_.begin() + n * nk, k_cache_.begin() + (l * max_context_ + pos_) * nk);
  std::copy(v_.begin(), v_.begin() + n * nv, v_cache_.begin() + (l * max_context_ + pos_) * nv);
  Attention(l, n);
  MatMul(mat(Role::kO), att_.data(), xb_.data(), n, *pool_);
  if (has(Role::kPostAttnNorm))
    for (int64_t t = 0; t < n; ++t) RmsNorm(xb_.data() + t * dim, vec(Role::kPostAttnNorm).data(), xb_.data() + t * dim, dim, c.norm_eps);
  for (int64_t i = 0; i < n * dim; ++i) x[i] += xb_[i];

  for (int64_t t = 0; t < n; ++t) RmsNorm(x + t * dim, vec(Role::kFfnNorm).data(), xb_.data() + t * dim, dim, c.norm_eps);
  const int64_t ffn = c.ffn_dim;
  hb_.resize(n * ffn);
  hb2_.resize(n * 2 * ffn);
  if (has(Role::kGateUp)) {
    MatMul(mat(Role::kGateUp), xb_.data(), hb2_.data(), n, *pool_);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < ffn; ++i) hb_[t * ffn + i] = hb2_[t * 2 * ffn + i], hb2_[t * ffn + i] = hb2_[t * 2 * ffn + ffn + i];
  } else {
    MatMul(mat(Role::kGate), xb_.data(), hb_.data(), n, *pool_);
    MatMul(mat(Role::kUp), xb_.data(), hb2_.data(), n, *pool_);
  }
  const bool gelu = c.arch == Arch::kGemma2;
  for (int64_t i = 0; i < n * ffn; ++i) hb_[i] = (gelu ? GeluTanh(hb_[i]) : Silu(hb_[i])) * hb2_[i];
  MatMul(mat(Role::kDown), hb_.data(), xb_.data(), n, *pool_);
  streamer_->Release(lp.group);
  if (has(Role::kPostFfnNorm))
    for (int64_t t = 0; t < n; ++t) RmsNorm(xb_.data() + t * dim, vec(Role::kPostFfnNorm).data(), xb_.data() + t * dim, dim, c.norm_eps);
  for (int64_t i = 0; i < n * dim; ++i) x[i] += xb_[i];
  return absl::OkStatus();
}

absl::Status Model::Head(int64_t n_out, const float* x, float* logits) {
  const int64_t dim = cfg_.dim, vocab = plan_->vocab;
  std::vector<float> xn(n_out * dim), part;
  for (int64_t t = 0; t < n_out; ++t) RmsNorm(x + t * dim, plan_->output_norm.data(), xn.data() + t * dim, dim, cfg_.norm_eps);
  for (const auto& hs : plan_->head) {
    ASSIGN_OR_RETURN(auto ptrs, streamer_->Acquire(hs.group));
    part.resize(n_out * hs.rows);
    MatMul(WeightMatrix{plan_->output->dtype, hs.rows, dim, ptrs[0]}, xn.data(), part.data(), n_out, *pool_);
    streamer_->Release(hs.group);
    for (int64_t t = 0; t < n_out; ++t)
      std::copy(part.begin() + t * hs.rows, part.begin() + (t + 1) * hs.rows, logits + t * vocab + hs.row0);
  }
  if (cfg_.final_softcap > 0) {
    const double cap = cfg_.final_softcap;
    for (int64_t i = 0; i < n_out * vocab; ++i) logits[i] = static_cast<float>(cap * std::tanh(logits[i] / cap));
  }
  return absl::OkStatus();
}

absl::Status Model::Forward(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  if (pos_ + n > max_context_)
    return absl::OutOfRangeError(fmt::format("{} tokens at position {} exceed the context of {} tokens",
                                             n, pos_, max_context_));
  const ModelConfig& c = cfg_;
  std::vector<float> x(n * c.dim);
  xb_.resize(n * c.dim);
  q_.resize(n * c.n_heads * c.head_dim);
  k_.resize(n * c.n_kv_heads * c.head_dim);
  v_.resize(n * c.n_kv_heads * c.value_dim);
  att_.resize(n * c.n_heads * c.value_dim);
  const int64_t half = c.rope_dim / 2;
  cos_.resize(n * half);
  sin_.resize(n * half);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos_ + t) * inv_freq_[i];
      cos_[t * half + i] = static_cast<float>(std::cos(a) * rope_mscale_);
      sin_[t * half + i] = static_cast<float>(std::sin(a) * rope_mscale_);
    }
  RETURN_IF_ERROR(Embed(tokens, x.data()));
  for (int64_t l = 0; l < c.n_layers; ++l) RETURN_IF_ERROR(Layer(l, n, x.data()));
  const int64_t n_out = all_logits ? n : 1;
  logits->assign(n_out * plan_->vocab, 0.0f);
  RETURN_IF_ERROR(Head(n_out, x.data() + (n - n_out) * c.dim, logits->data()));
  pos_ += n;
  return absl::OkStatus();
}

}  // namespace hart::runtime

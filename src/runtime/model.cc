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
    m->inv_freq_ = InvFreq(m->cfg_, m->plan_->rope_factors_short);
    m->inv_freq_long_ = InvFreq(m->cfg_, m->plan_->rope_factors_long);
    m->rope_mscale_ = rs.attn_factor;
  } else {
    m->inv_freq_ = InvFreq(m->cfg_, m->plan_->rope_freqs);
  }
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

uint64_t Model::KvCacheBytes(int64_t context) const {
  return static_cast<uint64_t>(cfg_.n_layers) * context * cfg_.n_kv_heads * (cfg_.head_dim + cfg_.value_dim) *
         sizeof(float);
}

bool Model::concurrent_forward() const { return !streamer_->streaming(); }

Session::Session(const Model* model, int64_t max_context, const SamplerOptions& so)
    : model_(model), max_context_(max_context), inv_freq_(&model->inv_freq_), sampler_(so) {
  const ModelConfig& c = model->cfg_;
  // longrope: the long factors when this session reaches past the original context.
  if (!model->inv_freq_long_.empty() && max_context > c.rope_scaling.original_context)
    inv_freq_ = &model->inv_freq_long_;
  const uint64_t rows = static_cast<uint64_t>(c.n_layers) * max_context * c.n_kv_heads;
  k_cache_.assign(rows * c.head_dim, 0.0f);
  v_cache_.assign(rows * c.value_dim, 0.0f);
}

Session::~Session() = default;

std::unique_ptr<Session> Model::NewSession(const SessionOptions& opts) const {
  const int64_t ctx = opts.max_context > 0 ? std::min(opts.max_context, max_context_) : max_context_;
  return std::unique_ptr<Session>(new Session(this, ctx, opts.sampler));
}

Session& Model::default_session() {
  if (!default_session_) default_session_ = NewSession();
  return *default_session_;
}

absl::Status Session::Forward(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits) {
  return model_->Run(*this, tokens, all_logits ? static_cast<int64_t>(tokens.size()) : 1, false, logits);
}

absl::Status Session::ForwardHidden(std::span<const int32_t> tokens, std::vector<float>* hidden) {
  return model_->Run(*this, tokens, static_cast<int64_t>(tokens.size()), true, hidden);
}

absl::Status Model::Embed(std::span<const int32_t> tokens, float* x) const {
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

void Model::Attention(Session& s, int64_t l, int64_t n) const {
  const ModelConfig& c = cfg_;
  const int64_t hd = c.head_dim, vd = c.value_dim, group = c.n_heads / c.n_kv_heads;
  const int64_t kv_k = c.n_kv_heads * hd, kv_v = c.n_kv_heads * vd;
  const int64_t pos = s.position();
  const float* kc = s.k_cache_.data() + l * s.max_context_ * kv_k;
  const float* vc = s.v_cache_.data() + l * s.max_context_ * kv_v;
  const float scale = c.query_scale > 0 ? static_cast<float>(c.query_scale) : 1.0f / std::sqrt(static_cast<float>(hd));
  const bool sliding = c.sliding_window > 0 && l % 2 == 0;
  pool_->ParallelFor(static_cast<size_t>(n * c.n_heads), [&](size_t item) {
    const int64_t t = static_cast<int64_t>(item) / c.n_heads, h = static_cast<int64_t>(item) % c.n_heads;
    const int64_t p = pos + t, kvh = h / group;
    const int64_t start = sliding ? std::max<int64_t>(0, p - c.sliding_window + 1) : 0;
    thread_local std::vector<float> scores;
    scores.resize(p - start + 1);
    const float* q = s.q_.data() + t * c.n_heads * hd + h * hd;
    float mx = -INFINITY;
    for (int64_t j = start; j <= p; ++j) {
      const float* k = kc + j * kv_k + kvh * hd;
      float dot = 0;
      for (int64_t i = 0; i < hd; ++i) dot += q[i] * k[i];
      dot *= scale;
      if (c.attn_softcap > 0) dot = static_cast<float>(c.attn_softcap * std::tanh(dot / c.attn_softcap));
      scores[j - start] = dot;
      mx = std::max(mx, dot);
    }
    float sum = 0;
    for (float& sc : scores) sum += (sc = std::exp(sc - mx));
    float* out = s.att_.data() + t * c.n_heads * vd + h * vd;
    std::fill(out, out + vd, 0.0f);
    for (int64_t j = start; j <= p; ++j) {
      const float w = scores[j - start] / sum;
      const float* v = vc + j * kv_v + kvh * vd;
      for (int64_t i = 0; i < vd; ++i) out[i] += w * v[i];
    }
  });
}

absl::Status Model::Layer(Session& s, int64_t l, int64_t n, float* x) const {
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

  for (int64_t t = 0; t < n; ++t) RmsNorm(x + t * dim, vec(Role::kAttnNorm).data(), s.xb_.data() + t * dim, dim, c.norm_eps);
  if (has(Role::kQkv)) {
    const int64_t rows = nq + nk + nv;
    s.hb_.resize(n * rows);
    MatMul(mat(Role::kQkv), s.xb_.data(), s.hb_.data(), n, *pool_);
    for (int64_t t = 0; t < n; ++t) {
      const float* r = s.hb_.data() + t * rows;
      std::copy(r, r + nq, s.q_.data() + t * nq);
      std::copy(r + nq, r + nq + nk, s.k_.data() + t * nk);
      std::copy(r + nq + nk, r + rows, s.v_.data() + t * nv);
    }
  } else {
    MatMul(mat(Role::kQ), s.xb_.data(), s.q_.data(), n, *pool_);
    MatMul(mat(Role::kK), s.xb_.data(), s.k_.data(), n, *pool_);
    MatMul(mat(Role::kV), s.xb_.data(), s.v_.data(), n, *pool_);
  }
  const std::pair<Role, std::pair<float*, int64_t>> biases[] = {
      {Role::kQBias, {s.q_.data(), nq}}, {Role::kKBias, {s.k_.data(), nk}}, {Role::kVBias, {s.v_.data(), nv}}};
  for (const auto& [role, buf] : biases)
    if (has(role))
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < buf.second; ++i) buf.first[t * buf.second + i] += vec(role)[i];
  if (has(Role::kQNorm))
    for (int64_t h = 0; h < n * c.n_heads; ++h) RmsNorm(s.q_.data() + h * hd, vec(Role::kQNorm).data(), s.q_.data() + h * hd, hd, c.norm_eps);
  if (has(Role::kKNorm))
    for (int64_t h = 0; h < n * c.n_kv_heads; ++h) RmsNorm(s.k_.data() + h * hd, vec(Role::kKNorm).data(), s.k_.data() + h * hd, hd, c.norm_eps);

  // RoPE: pairs (2i, 2i+1) for GGUF llama (permuted q/k), (i, i + d/2) otherwise.
  const int64_t half = c.rope_dim / 2;
  auto rotate = [&](float* head, int64_t t) {
    const float* cs = s.cos_.data() + t * half;
    const float* sn = s.sin_.data() + t * half;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = c.rope_order == RopeOrder::kInterleaved ? 2 * i : i;
      const int64_t b = c.rope_order == RopeOrder::kInterleaved ? 2 * i + 1 : i + half;
      const float x0 = head[a], x1 = head[b];
      head[a] = x0 * cs[i] - x1 * sn[i];
      head[b] = x0 * sn[i] + x1 * cs[i];
    }
  };
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < c.n_heads; ++h) rotate(s.q_.data() + t * nq + h * hd, t);
    for (int64_t h = 0; h < c.n_kv_heads; ++h) rotate(s.k_.data() + t * nk + h * hd, t);
  }
  const int64_t pos = s.position();
  std::copy(s.k_.begin(), s.k_.begin() + n * nk, s.k_cache_.begin() + (l * s.max_context_ + pos) * nk);
  std::copy(s.v_.begin(), s.v_.begin() + n * nv, s.v_cache_.begin() + (l * s.max_context_ + pos) * nv);
  Attention(s, l, n);
  MatMul(mat(Role::kO), s.att_.data(), s.xb_.data(), n, *pool_);
  if (has(Role::kPostAttnNorm))
    for (int64_t t = 0; t < n; ++t) RmsNorm(s.xb_.data() + t * dim, vec(Role::kPostAttnNorm).data(), s.xb_.data() + t * dim, dim, c.norm_eps);
  for (int64_t i = 0; i < n * dim; ++i) x[i] += s.xb_[i];

  for (int64_t t = 0; t < n; ++t) RmsNorm(x + t * dim, vec(Role::kFfnNorm).data(), s.xb_.data() + t * dim, dim, c.norm_eps);
  const int64_t ffn = c.ffn_dim;
  s.hb_.resize(n * ffn);
  s.hb2_.resize(n * 2 * ffn);
  if (has(Role::kGateUp)) {
    MatMul(mat(Role::kGateUp), s.xb_.data(), s.hb2_.data(), n, *pool_);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < ffn; ++i) s.hb_[t * ffn + i] = s.hb2_[t * 2 * ffn + i], s.hb2_[t * ffn + i] = s.hb2_[t * 2 * ffn + ffn + i];
  } else {
    MatMul(mat(Role::kGate), s.xb_.data(), s.hb_.data(), n, *pool_);
    MatMul(mat(Role::kUp), s.xb_.data(), s.hb2_.data(), n, *pool_);
  }
  const bool gelu = c.arch == Arch::kGemma2;
  for (int64_t i = 0; i < n * ffn; ++i) s.hb_[i] = (gelu ? GeluTanh(s.hb_[i]) : Silu(s.hb_[i])) * s.hb2_[i];
  MatMul(mat(Role::kDown), s.hb_.data(), s.xb_.data(), n, *pool_);
  streamer_->Release(lp.group);
  if (has(Role::kPostFfnNorm))
    for (int64_t t = 0; t < n; ++t) RmsNorm(s.xb_.data() + t * dim, vec(Role::kPostFfnNorm).data(), s.xb_.data() + t * dim, dim, c.norm_eps);
  for (int64_t i = 0; i < n * dim; ++i) x[i] += s.xb_[i];
  return absl::OkStatus();
}

absl::Status Model::Head(Session& s, int64_t n_out, const float* x, float* out) const {
  const int64_t dim = cfg_.dim, vocab = plan_->vocab;
  s.xn_.resize(n_out * dim);
  float* xn = s.xn_.data();
  for (int64_t t = 0; t < n_out; ++t) RmsNorm(x + t * dim, plan_->output_norm.data(), xn + t * dim, dim, cfg_.norm_eps);
  for (const auto& hs : plan_->head) {
    ASSIGN_OR_RETURN(auto ptrs, streamer_->Acquire(hs.group));
    s.part_.resize(n_out * hs.rows);
    MatMul(WeightMatrix{plan_->output->dtype, hs.rows, dim, ptrs[0]}, xn, s.part_.data(), n_out, *pool_);
    streamer_->Release(hs.group);
    for (int64_t t = 0; t < n_out; ++t)
      std::copy(s.part_.begin() + t * hs.rows, s.part_.begin() + (t + 1) * hs.rows, out + t * vocab + hs.row0);
  }
  if (cfg_.final_softcap > 0) {
    const double cap = cfg_.final_softcap;
    for (int64_t i = 0; i < n_out * vocab; ++i) out[i] = static_cast<float>(cap * std::tanh(out[i] / cap));
  }
  return absl::OkStatus();
}

absl::Status Model::Run(Session& s, std::span<const int32_t> tokens, int64_t n_out, bool hidden,
                        std::vector<float>* out) const {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  const int64_t pos = s.position();
  if (pos + n > s.max_context_)
    return absl::OutOfRangeError(fmt::format("{} tokens at position {} exceed the context of {} tokens",
                                             n, pos, s.max_context_));
  for (int32_t id : tokens)
    if (id < 0 || id >= plan_->vocab)
      return absl::InvalidArgumentError(fmt::format("token id {} is outside the vocabulary [0, {})", id, plan_->vocab));
  const ModelConfig& c = cfg_;
  s.x_.resize(n * c.dim);
  s.xb_.resize(n * c.dim);
  s.q_.resize(n * c.n_heads * c.head_dim);
  s.k_.resize(n * c.n_kv_heads * c.head_dim);
  s.v_.resize(n * c.n_kv_heads * c.value_dim);
  s.att_.resize(n * c.n_heads * c.value_dim);
  const int64_t half = c.rope_dim / 2;
  s.cos_.resize(n * half);
  s.sin_.resize(n * half);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos + t) * (*s.inv_freq_)[i];
      s.cos_[t * half + i] = static_cast<float>(std::cos(a) * rope_mscale_);
      s.sin_[t * half + i] = static_cast<float>(std::sin(a) * rope_mscale_);
    }
  // Streamed weights are acquired in one cycle per pass: passes of
  // different sessions take turns. Mapped weights need no lock.
  std::unique_lock<std::mutex> turn(stream_mu_, std::defer_lock);
  if (streamer_->streaming()) turn.lock();
  float* x = s.x_.data();
  RETURN_IF_ERROR(Embed(tokens, x));
  for (int64_t l = 0; l < c.n_layers; ++l) RETURN_IF_ERROR(Layer(s, l, n, x));
  const float* last = x + (n - n_out) * c.dim;
  if (hidden) {
    out->resize(n_out * c.dim);
    for (int64_t t = 0; t < n_out; ++t)
      RmsNorm(last + t * c.dim, plan_->output_norm.data(), out->data() + t * c.dim, c.dim, c.norm_eps);
  } else {
    out->assign(n_out * plan_->vocab, 0.0f);
    RETURN_IF_ERROR(Head(s, n_out, last, out->data()));
  }
  turn = {};
  s.tokens_.insert(s.tokens_.end(), tokens.begin(), tokens.end());
  return absl::OkStatus();
}

}  // namespace hart::runtime

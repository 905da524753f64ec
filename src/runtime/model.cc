#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>

#include "core/status.h"
#include "runtime/attention.h"
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
  if (!opts.lora.empty()) {
    m->lora_.resize(static_cast<size_t>(m->cfg_.n_layers));
    for (const LoraTensor& t : opts.lora) {
      bool found = false;
      for (size_t l = 0; l < m->plan_->layers.size() && !found; ++l)
        for (size_t r = 0; r < kRoleCount && !found; ++r) {
          const WeightInfo* w = m->plan_->layers[l].tensor[r];
          if (w == nullptr || w->name != t.tensor || m->plan_->layers[l].piece[r] < 0) continue;
          found = true;
          const int64_t rows = static_cast<int64_t>(w->shape[0]), cols = static_cast<int64_t>(w->shape[1]);
          if (t.rank <= 0 || t.a.size() != static_cast<size_t>(t.rank * cols) ||
              t.b.size() != static_cast<size_t>(rows * t.rank))
            return absl::InvalidArgumentError(fmt::format(
                "LoRA {}: A has {} and B {} floats, but the model's {} is [{}, {}] (A must be [{}, {}], B "
                "[{}, {}]): a LoRA for another base?",
                t.tensor, t.a.size(), t.b.size(), t.tensor, rows, cols, t.rank, cols, rows, t.rank));
          m->lora_[l][r].push_back(t);
        }
      if (!found)
        return absl::InvalidArgumentError(fmt::format(
            "LoRA {}: the model has no such layer matrix: a LoRA for another base?", t.tensor));
    }
  }
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
    bool packed = false;  // the row is in the kernels' packed layout
    // Without a budget the table is mapped; under one, a pinned tied head
    // serves the rows, else one row per token is read (far cheaper than
    // holding a table of vocab x dim for a few rows).
    if (!budgeted_) {
      ASSIGN_OR_RETURN(auto span, source_->Map(e));
      src = span.data() + id * row_bytes;
      packed = source_->MapPacked(e);
    } else if (plan_->tied) {
      for (const auto& hs : plan_->head)
        if (id >= hs.row0 && id < hs.row0 + hs.rows && streamer_->IsPinned(hs.group)) {
          ASSIGN_OR_RETURN(auto ptrs, streamer_->Acquire(hs.group));
          src = ptrs[0] + (id - hs.row0) * row_bytes;
          packed = streamer_->Packed(hs.group, 0);
        }
    }
    if (src == nullptr) {
      RETURN_IF_ERROR(streamer_->ReadDirect(e, id * row_bytes, row));
      src = row.data();
    }
    if (packed) {
      GetRow(WeightMatrix{e.dtype, 1, cfg_.dim, src, true}, 0, x + t * cfg_.dim);
    } else {
      Dequantize(e.dtype, src, x + t * cfg_.dim, cfg_.dim);
    }
    if (cfg_.arch == Arch::kGemma2) {
      const float scale = std::sqrt(static_cast<float>(cfg_.dim));
      for (int64_t i = 0; i < cfg_.dim; ++i) x[t * cfg_.dim + i] *= scale;
    }
  }
  return absl::OkStatus();
}

// One pool item per (row, KV head): the group of query heads sharing a KV
// head runs in one kernel call (attention.h), which reads each cached key and
// value row once for all of them. Items depend only on their own row and
// session, so results do not depend on the batch or the thread count.
void Model::Attention(std::span<Segment> segs, PassScratch& sc, int64_t l, int64_t n) const {
  const ModelConfig& c = cfg_;
  const int64_t hd = c.head_dim, vd = c.value_dim, group = c.n_heads / c.n_kv_heads;
  const int64_t kv_k = c.n_kv_heads * hd, kv_v = c.n_kv_heads * vd;
  const float scale = c.query_scale > 0 ? static_cast<float>(c.query_scale) : 1.0f / std::sqrt(static_cast<float>(hd));
  const bool sliding = c.sliding_window > 0 && l % 2 == 0;
  static const internal::AttendFn attend = internal::SelectAttend(internal::ActiveIsa());
  // Which segment each stacked row belongs to.
  std::vector<uint32_t> seg_of(static_cast<size_t>(n));
  for (size_t g = 0; g < segs.size(); ++g)
    for (size_t t = 0; t < segs[g].tokens.size(); ++t) seg_of[segs[g].row0 + t] = static_cast<uint32_t>(g);
  pool_->ParallelFor(static_cast<size_t>(n * c.n_kv_heads), [&](size_t item) {
    const int64_t row = static_cast<int64_t>(item) / c.n_kv_heads, kvh = static_cast<int64_t>(item) % c.n_kv_heads;
    const Segment& g = segs[seg_of[row]];
    const Session& s = *g.s;
    const float* kc = s.k_cache_.data() + l * s.max_context_ * kv_k;
    const float* vc = s.v_cache_.data() + l * s.max_context_ * kv_v;
    const int64_t p = s.position() + (row - g.row0);
    const int64_t start = sliding ? std::max<int64_t>(0, p - c.sliding_window + 1) : 0;
    internal::AttentionArgs a;
    a.q = sc.q.data() + row * c.n_heads * hd + kvh * group * hd;
    a.k = kc + start * kv_k + kvh * hd;
    a.v = vc + start * kv_v + kvh * vd;
    a.k_stride = kv_k;
    a.v_stride = kv_v;
    a.n = p - start + 1;
    a.group = group;
    a.head_dim = hd;
    a.value_dim = vd;
    a.scale = scale;
    a.softcap = c.attn_softcap;
    a.out = sc.att.data() + row * c.n_heads * vd + kvh * group * vd;
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(internal::AttentionScratchFloats(a)));
    attend(a, scratch.data());
  });
}

void Model::ApplyLora(int64_t l, Role role, const float* in, float* out, int64_t n) const {
  if (lora_.empty()) return;
  const auto& pairs = lora_[static_cast<size_t>(l)][static_cast<size_t>(role)];
  if (pairs.empty()) return;
  const WeightInfo* w = plan_->layers[static_cast<size_t>(l)].tensor[static_cast<size_t>(role)];
  const int64_t rows = static_cast<int64_t>(w->shape[0]), cols = static_cast<int64_t>(w->shape[1]);
  std::vector<float> u;
  for (const LoraTensor& p : pairs) {
    u.assign(static_cast<size_t>(p.rank), 0.0f);
    for (int64_t t = 0; t < n; ++t) {
      const float* xr = in + t * cols;
      for (int64_t k = 0; k < p.rank; ++k) {
        const float* ak = p.a.data() + k * cols;
        float s = 0;
        for (int64_t j = 0; j < cols; ++j) s += ak[j] * xr[j];
        u[k] = p.coef * s;
      }
      float* yr = out + t * rows;
      for (int64_t o = 0; o < rows; ++o) {
        const float* bo = p.b.data() + o * p.rank;
        float s = 0;
        for (int64_t k = 0; k < p.rank; ++k) s += bo[k] * u[k];
        yr[o] += s;
      }
    }
  }
}

absl::Status Model::Layer(std::span<Segment> segs, PassScratch& sc, int64_t l, int64_t n, float* x) const {
  const ModelConfig& c = cfg_;
  LayerPlan& lp = plan_->layers[l];
  auto vec = [&](Role r) -> const std::vector<float>& { return lp.vec[static_cast<size_t>(r)]; };
  ASSIGN_OR_RETURN(auto ptrs, streamer_->Acquire(lp.group));
  auto mat = [&](Role r) {
    const WeightInfo* t = lp.tensor[static_cast<size_t>(r)];
    const size_t piece = lp.piece[static_cast<size_t>(r)];
    return WeightMatrix{t->dtype, static_cast<int64_t>(t->shape[0]), static_cast<int64_t>(t->shape[1]),
                        ptrs[piece], streamer_->Packed(lp.group, piece)};
  };
  auto has = [&](Role r) { return lp.tensor[static_cast<size_t>(r)] != nullptr; };
  const int64_t dim = c.dim, hd = c.head_dim, vd = c.value_dim;
  const int64_t nq = c.n_heads * hd, nk = c.n_kv_heads * hd, nv = c.n_kv_heads * vd;

  for (int64_t t = 0; t < n; ++t) RmsNorm(x + t * dim, vec(Role::kAttnNorm).data(), sc.xb.data() + t * dim, dim, c.norm_eps);
  if (has(Role::kQkv)) {
    const int64_t rows = nq + nk + nv;
    sc.hb.resize(n * rows);
    MatMul(mat(Role::kQkv), sc.xb.data(), sc.hb.data(), n, *pool_);
    ApplyLora(l, Role::kQkv, sc.xb.data(), sc.hb.data(), n);
    for (int64_t t = 0; t < n; ++t) {
      const float* r = sc.hb.data() + t * rows;
      std::copy(r, r + nq, sc.q.data() + t * nq);
      std::copy(r + nq, r + nq + nk, sc.k.data() + t * nk);
      std::copy(r + nq + nk, r + rows, sc.v.data() + t * nv);
    }
  } else {
    MatMul(mat(Role::kQ), sc.xb.data(), sc.q.data(), n, *pool_);
    MatMul(mat(Role::kK), sc.xb.data(), sc.k.data(), n, *pool_);
    MatMul(mat(Role::kV), sc.xb.data(), sc.v.data(), n, *pool_);
    ApplyLora(l, Role::kQ, sc.xb.data(), sc.q.data(), n);
    ApplyLora(l, Role::kK, sc.xb.data(), sc.k.data(), n);
    ApplyLora(l, Role::kV, sc.xb.data(), sc.v.data(), n);
  }
  const std::pair<Role, std::pair<float*, int64_t>> biases[] = {
      {Role::kQBias, {sc.q.data(), nq}}, {Role::kKBias, {sc.k.data(), nk}}, {Role::kVBias, {sc.v.data(), nv}}};
  for (const auto& [role, buf] : biases)
    if (has(role))
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < buf.second; ++i) buf.first[t * buf.second + i] += vec(role)[i];
  if (has(Role::kQNorm))
    for (int64_t h = 0; h < n * c.n_heads; ++h) RmsNorm(sc.q.data() + h * hd, vec(Role::kQNorm).data(), sc.q.data() + h * hd, hd, c.norm_eps);
  if (has(Role::kKNorm))
    for (int64_t h = 0; h < n * c.n_kv_heads; ++h) RmsNorm(sc.k.data() + h * hd, vec(Role::kKNorm).data(), sc.k.data() + h * hd, hd, c.norm_eps);

  // RoPE: pairs (2i, 2i+1) for GGUF llama (permuted q/k), (i, i + d/2) otherwise.
  const int64_t half = c.rope_dim / 2;
  auto rotate = [&](float* head, int64_t t) {
    const float* cs = sc.cos.data() + t * half;
    const float* sn = sc.sin.data() + t * half;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = c.rope_order == RopeOrder::kInterleaved ? 2 * i : i;
      const int64_t b = c.rope_order == RopeOrder::kInterleaved ? 2 * i + 1 : i + half;
      const float x0 = head[a], x1 = head[b];
      head[a] = x0 * cs[i] - x1 * sn[i];
      head[b] = x0 * sn[i] + x1 * cs[i];
    }
  };
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < c.n_heads; ++h) rotate(sc.q.data() + t * nq + h * hd, t);
    for (int64_t h = 0; h < c.n_kv_heads; ++h) rotate(sc.k.data() + t * nk + h * hd, t);
  }
  // Each session's new K/V rows go to its own cache, after its position.
  for (const Segment& g : segs) {
    Session& s = *g.s;
    const int64_t m = static_cast<int64_t>(g.tokens.size()), pos = s.position();
    std::copy(sc.k.begin() + g.row0 * nk, sc.k.begin() + (g.row0 + m) * nk,
              s.k_cache_.begin() + (l * s.max_context_ + pos) * nk);
    std::copy(sc.v.begin() + g.row0 * nv, sc.v.begin() + (g.row0 + m) * nv,
              s.v_cache_.begin() + (l * s.max_context_ + pos) * nv);
  }
  Attention(segs, sc, l, n);
  MatMul(mat(Role::kO), sc.att.data(), sc.xb.data(), n, *pool_);
  ApplyLora(l, Role::kO, sc.att.data(), sc.xb.data(), n);
  if (has(Role::kPostAttnNorm))
    for (int64_t t = 0; t < n; ++t) RmsNorm(sc.xb.data() + t * dim, vec(Role::kPostAttnNorm).data(), sc.xb.data() + t * dim, dim, c.norm_eps);
  for (int64_t i = 0; i < n * dim; ++i) x[i] += sc.xb[i];

  for (int64_t t = 0; t < n; ++t) RmsNorm(x + t * dim, vec(Role::kFfnNorm).data(), sc.xb.data() + t * dim, dim, c.norm_eps);
  const int64_t ffn = c.ffn_dim;
  sc.hb.resize(n * ffn);
  sc.hb2.resize(n * 2 * ffn);
  if (has(Role::kGateUp)) {
    MatMul(mat(Role::kGateUp), sc.xb.data(), sc.hb2.data(), n, *pool_);
    ApplyLora(l, Role::kGateUp, sc.xb.data(), sc.hb2.data(), n);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < ffn; ++i) sc.hb[t * ffn + i] = sc.hb2[t * 2 * ffn + i], sc.hb2[t * ffn + i] = sc.hb2[t * 2 * ffn + ffn + i];
  } else {
    MatMul(mat(Role::kGate), sc.xb.data(), sc.hb.data(), n, *pool_);
    MatMul(mat(Role::kUp), sc.xb.data(), sc.hb2.data(), n, *pool_);
    ApplyLora(l, Role::kGate, sc.xb.data(), sc.hb.data(), n);
    ApplyLora(l, Role::kUp, sc.xb.data(), sc.hb2.data(), n);
  }
  const bool gelu = c.arch == Arch::kGemma2;
  for (int64_t i = 0; i < n * ffn; ++i) sc.hb[i] = (gelu ? GeluTanh(sc.hb[i]) : Silu(sc.hb[i])) * sc.hb2[i];
  MatMul(mat(Role::kDown), sc.hb.data(), sc.xb.data(), n, *pool_);
  ApplyLora(l, Role::kDown, sc.hb.data(), sc.xb.data(), n);
  streamer_->Release(lp.group);
  if (has(Role::kPostFfnNorm))
    for (int64_t t = 0; t < n; ++t) RmsNorm(sc.xb.data() + t * dim, vec(Role::kPostFfnNorm).data(), sc.xb.data() + t * dim, dim, c.norm_eps);
  for (int64_t i = 0; i < n * dim; ++i) x[i] += sc.xb[i];
  return absl::OkStatus();
}

// x: the n_out rows (already output-normed) to project.
absl::Status Model::Head(PassScratch& sc, int64_t n_out, const float* xn, float* out) const {
  const int64_t dim = cfg_.dim, vocab = plan_->vocab;
  for (const auto& hs : plan_->head) {
    ASSIGN_OR_RETURN(auto ptrs, streamer_->Acquire(hs.group));
    sc.part.resize(n_out * hs.rows);
    MatMul(WeightMatrix{plan_->output->dtype, hs.rows, dim, ptrs[0], streamer_->Packed(hs.group, 0)}, xn,
           sc.part.data(), n_out, *pool_);
    streamer_->Release(hs.group);
    for (int64_t t = 0; t < n_out; ++t)
      std::copy(sc.part.begin() + t * hs.rows, sc.part.begin() + (t + 1) * hs.rows, out + t * vocab + hs.row0);
  }
  if (cfg_.final_softcap > 0) {
    const double cap = cfg_.final_softcap;
    for (int64_t i = 0; i < n_out * vocab; ++i) out[i] = static_cast<float>(cap * std::tanh(out[i] / cap));
  }
  return absl::OkStatus();
}

absl::Status Model::CheckSegment(const Segment& g) const {
  const int64_t n = static_cast<int64_t>(g.tokens.size());
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  const int64_t pos = g.s->position();
  if (pos + n > g.s->max_context_)
    return absl::OutOfRangeError(fmt::format("{} tokens at position {} exceed the context of {} tokens",
                                             n, pos, g.s->max_context_));
  for (int32_t id : g.tokens)
    if (id < 0 || id >= plan_->vocab)
      return absl::InvalidArgumentError(fmt::format("token id {} is outside the vocabulary [0, {})", id, plan_->vocab));
  return absl::OkStatus();
}

absl::Status Model::RunSegments(std::span<Segment> segs, bool hidden, PassScratch& sc) const {
  const ModelConfig& c = cfg_;
  int64_t n = 0, n_out = 0;
  for (Segment& g : segs) {
    g.row0 = n;
    n += static_cast<int64_t>(g.tokens.size());
    n_out += g.n_out;
  }
  sc.x.resize(n * c.dim);
  sc.xb.resize(n * c.dim);
  sc.q.resize(n * c.n_heads * c.head_dim);
  sc.k.resize(n * c.n_kv_heads * c.head_dim);
  sc.v.resize(n * c.n_kv_heads * c.value_dim);
  sc.att.resize(n * c.n_heads * c.value_dim);
  const int64_t half = c.rope_dim / 2;
  sc.cos.resize(n * half);
  sc.sin.resize(n * half);
  for (const Segment& g : segs) {
    const int64_t pos = g.s->position();
    const std::vector<float>& inv = *g.s->inv_freq_;
    for (int64_t t = 0; t < static_cast<int64_t>(g.tokens.size()); ++t)
      for (int64_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(pos + t) * inv[i];
        sc.cos[(g.row0 + t) * half + i] = static_cast<float>(std::cos(a) * rope_mscale_);
        sc.sin[(g.row0 + t) * half + i] = static_cast<float>(std::sin(a) * rope_mscale_);
      }
  }
  // Streamed weights are acquired in one cycle per pass: passes take turns
  // (a batch is one pass). Mapped weights need no lock.
  std::unique_lock<std::mutex> turn(stream_mu_, std::defer_lock);
  if (streamer_->streaming()) turn.lock();
  float* x = sc.x.data();
  for (const Segment& g : segs) RETURN_IF_ERROR(Embed(g.tokens, x + g.row0 * c.dim));
  for (int64_t l = 0; l < c.n_layers; ++l) RETURN_IF_ERROR(Layer(segs, sc, l, n, x));
  // The output rows, normed, stacked in segment order.
  sc.xn.resize(n_out * c.dim);
  int64_t r = 0;
  for (const Segment& g : segs) {
    const float* last = x + (g.row0 + static_cast<int64_t>(g.tokens.size()) - g.n_out) * c.dim;
    for (int64_t t = 0; t < g.n_out; ++t, ++r)
      RmsNorm(last + t * c.dim, plan_->output_norm.data(), sc.xn.data() + r * c.dim, c.dim, c.norm_eps);
  }
  std::vector<float> logits;
  if (!hidden && n_out > 0) {
    logits.assign(n_out * plan_->vocab, 0.0f);
    RETURN_IF_ERROR(Head(sc, n_out, sc.xn.data(), logits.data()));
  }
  turn = {};
  const int64_t width = hidden ? c.dim : plan_->vocab;
  const float* src = hidden ? sc.xn.data() : logits.data();
  r = 0;
  for (Segment& g : segs) {
    if (g.out != nullptr) g.out->assign(src + r * width, src + (r + g.n_out) * width);
    r += g.n_out;
    g.s->tokens_.insert(g.s->tokens_.end(), g.tokens.begin(), g.tokens.end());
  }
  return absl::OkStatus();
}

absl::Status Model::Run(Session& s, std::span<const int32_t> tokens, int64_t n_out, bool hidden,
                        std::vector<float>* out) const {
  Segment g{&s, tokens, n_out, out};
  RETURN_IF_ERROR(CheckSegment(g));
  return RunSegments(std::span<Segment>(&g, 1), hidden, s.scratch_);
}

absl::Status Model::ForwardBatch(std::span<BatchItem> items, PassScratch& scratch) const {
  std::vector<Segment> segs;
  segs.reserve(items.size());
  for (BatchItem& it : items) {
    if (it.session == nullptr || &it.session->model() != this) {
      it.status = absl::InvalidArgumentError("batch item without a session of this model");
      continue;
    }
    Segment g{it.session, it.tokens, it.logits ? 1 : 0, it.logits};
    it.status = CheckSegment(g);
    if (it.status.ok()) segs.push_back(g);
  }
  if (segs.empty()) return absl::OkStatus();
  return RunSegments(segs, /*hidden=*/false, scratch);
}

KvPrefix Session::ExportPrefix(int64_t n) const {
  const ModelConfig& c = model_->cfg_;
  n = std::clamp<int64_t>(n, 0, position());
  const int64_t kv_k = c.n_kv_heads * c.head_dim, kv_v = c.n_kv_heads * c.value_dim;
  KvPrefix p;
  p.tokens.assign(tokens_.begin(), tokens_.begin() + n);
  p.k.resize(static_cast<size_t>(c.n_layers * n * kv_k));
  p.v.resize(static_cast<size_t>(c.n_layers * n * kv_v));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    std::copy_n(k_cache_.begin() + l * max_context_ * kv_k, n * kv_k, p.k.begin() + l * n * kv_k);
    std::copy_n(v_cache_.begin() + l * max_context_ * kv_v, n * kv_v, p.v.begin() + l * n * kv_v);
  }
  return p;
}

absl::Status Session::ImportPrefix(const KvPrefix& p, int64_t n) {
  const ModelConfig& c = model_->cfg_;
  const int64_t len = static_cast<int64_t>(p.tokens.size());
  const int64_t kv_k = c.n_kv_heads * c.head_dim, kv_v = c.n_kv_heads * c.value_dim;
  if (n < 0 || n > len || n > max_context_)
    return absl::InvalidArgumentError(fmt::format("prefix of {} tokens: cannot take {} (context {})", len, n, max_context_));
  if (p.k.size() != static_cast<size_t>(c.n_layers * len * kv_k) ||
      p.v.size() != static_cast<size_t>(c.n_layers * len * kv_v))
    return absl::InvalidArgumentError("prefix K/V sizes do not match this model's shape");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    std::copy_n(p.k.begin() + l * len * kv_k, n * kv_k, k_cache_.begin() + l * max_context_ * kv_k);
    std::copy_n(p.v.begin() + l * len * kv_v, n * kv_v, v_cache_.begin() + l * max_context_ * kv_v);
  }
  tokens_.assign(p.tokens.begin(), p.tokens.begin() + n);
  return absl::OkStatus();
}

}  // namespace hart::runtime

#include "runtime/model_config.h"

#include <array>
#include <cmath>
#include <optional>

#include "core/status.h"
#include "fmt/format.h"

namespace hart::runtime {
namespace {

struct ArchEntry {
  Arch arch;
  std::string_view name;
  std::string_view hf_class;
};
constexpr std::array<ArchEntry, 6> kArchs = {{
    {Arch::kLlama, "llama", "LlamaForCausalLM"},
    {Arch::kMistral, "mistral", "MistralForCausalLM"},
    {Arch::kQwen2, "qwen2", "Qwen2ForCausalLM"},
    {Arch::kQwen3, "qwen3", "Qwen3ForCausalLM"},
    {Arch::kGemma2, "gemma2", "Gemma2ForCausalLM"},
    {Arch::kPhi3, "phi3", "Phi3ForCausalLM"},
}};

// Hyper-parameters beyond these are not a model this runtime can hold; the
// bound keeps products like n_heads * head_dim far from overflow.
constexpr int64_t kMaxDim = int64_t{1} << 24;

absl::Status Field(std::string_view origin, std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(fmt::format("{}: metadata: {}: {}", origin, field, what));
}

absl::Status CheckRange(std::string_view origin, std::string_view field, int64_t v, int64_t lo) {
  if (v < lo || v > kMaxDim)
    return Field(origin, field, fmt::format("{} is out of range [{}, {}]", v, lo, kMaxDim));
  return absl::OkStatus();
}

// Checks that hold for every source once the fields are filled in.
// Error messages name the field as the source spells it: GGUF keys under the
// architecture prefix, config.json keys under "config.".
std::string_view HfFieldName(std::string_view gguf_key) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 12> kNames = {{
      {"block_count", "num_hidden_layers"},
      {"embedding_length", "hidden_size"},
      {"feed_forward_length", "intermediate_size"},
      {"attention.head_count", "num_attention_heads"},
      {"attention.head_count_kv", "num_key_value_heads"},
      {"attention.key_length", "head_dim"},
      {"attention.value_length", "head_dim"},
      {"rope.dimension_count", "partial_rotary_factor"},
      {"attention.layer_norm_rms_epsilon", "rms_norm_eps"},
      {"rope.freq_base", "rope_theta"},
      {"vocab_size", "vocab_size"},
      {"rope.scaling", "rope_scaling"},
  }};
  for (const auto& [g, h] : kNames)
    if (g == gguf_key) return h;
  return gguf_key;
}

absl::Status Validate(ModelConfig& c, std::string_view origin, std::string_view prefix) {
  auto f = [&](std::string_view name) {
    return fmt::format("{}{}", prefix, prefix == "config." ? HfFieldName(name) : name);
  };
  RETURN_IF_ERROR(CheckRange(origin, f("block_count"), c.n_layers, 1));
  RETURN_IF_ERROR(CheckRange(origin, f("embedding_length"), c.dim, 1));
  RETURN_IF_ERROR(CheckRange(origin, f("feed_forward_length"), c.ffn_dim, 1));
  RETURN_IF_ERROR(CheckRange(origin, f("attention.head_count"), c.n_heads, 1));
  RETURN_IF_ERROR(CheckRange(origin, f("attention.head_count_kv"), c.n_kv_heads, 1));
  if (c.n_heads % c.n_kv_heads != 0)
    return Field(origin, f("attention.head_count_kv"),
                 fmt::format("{} does not divide head_count {}", c.n_kv_heads, c.n_heads));
  if (c.head_dim == 0) {
    if (c.dim % c.n_heads != 0)
      return Field(origin, f("attention.head_count"),
                   fmt::format("{} does not divide embedding_length {}", c.n_heads, c.dim));
    c.head_dim = c.dim / c.n_heads;
  }
  if (c.value_dim == 0) c.value_dim = c.head_dim;
  RETURN_IF_ERROR(CheckRange(origin, f("attention.key_length"), c.head_dim, 2));
  RETURN_IF_ERROR(CheckRange(origin, f("attention.value_length"), c.value_dim, 1));
  if (c.rope_dim == 0) c.rope_dim = c.head_dim;
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    return Field(origin, f("rope.dimension_count"),
                 fmt::format("{} must be even and at most the head size {}", c.rope_dim, c.head_dim));
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps))
    return Field(origin, f("attention.layer_norm_rms_epsilon"), "must be positive");
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta))
    return Field(origin, f("rope.freq_base"), "must be positive");
  if (c.context_length <= 0) c.context_length = 4096;
  if (c.vocab_size < 0 || c.vocab_size > kMaxDim) return Field(origin, f("vocab_size"), "out of range");
  auto& s = c.rope_scaling;
  if (s.kind != RopeScaling::Kind::kNone &&
      (!(s.factor > 0) || !std::isfinite(s.factor) || s.original_context <= 0 ||
       !(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0)))
    return Field(origin, f("rope.scaling"), "factors out of range");
  if (s.kind == RopeScaling::Kind::kLongRope) {
    if (!(s.attn_factor > 0) || !std::isfinite(s.attn_factor))
      return Field(origin, f("rope.scaling.attn_factor"), "must be positive");
    for (const auto* v : {&s.short_factor, &s.long_factor}) {
      if (!v->empty() && v->size() != static_cast<size_t>(c.rope_dim / 2))
        return Field(origin, f("rope_scaling"),
                     fmt::format("longrope has {} factors for {} rotated pairs", v->size(), c.rope_dim / 2));
      for (float x : *v)
        if (!(x > 0) || !std::isfinite(x)) return Field(origin, f("rope_scaling"), "longrope factors must be positive");
    }
  }
  return absl::OkStatus();
}

std::optional<int64_t> JsonInt(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}
std::optional<double> JsonFloat(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

}  // namespace

std::string_view ArchName(Arch a) {
  for (const auto& e : kArchs)
    if (e.arch == a) return e.name;
  return "?";
}

absl::StatusOr<Arch> ArchFromName(std::string_view name) {
  for (const auto& e : kArchs)
    if (e.name == name || e.hf_class == name) return e.arch;
  return absl::UnimplementedError(fmt::format(
      "unsupported architecture '{}' (supported: llama, mistral, qwen2, qwen3, gemma2, phi3)", name));
}

std::string ModelConfig::ToString() const {
  return fmt::format(
      "{} layers={} dim={} ffn={} heads={} kv_heads={} head_dim={} vocab={} ctx={} rope_theta={} "
      "rope_dim={} rope={}",
      ArchName(arch), n_layers, dim, ffn_dim, n_heads, n_kv_heads, head_dim, vocab_size,
      context_length, rope_theta, rope_dim,
      rope_order == RopeOrder::kInterleaved ? "interleaved" : "half-split");
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const formats::GgufMetadata& md, std::string_view origin) {
  auto arch_name = md.GetString("general.architecture");
  if (!arch_name) return Field(origin, "general.architecture", "missing");
  auto arch = ArchFromName(*arch_name);
  if (!arch.ok()) return Field(origin, "general.architecture", Msg(arch.status()));
  ModelConfig c;
  c.arch = *arch;
  c.naming = WeightNaming::kGguf;
  const std::string p = *arch_name + ".";
  auto key = [&](std::string_view k) { return p + std::string(k); };
  auto req = [&](std::string_view k, int64_t* out) -> absl::Status {
    auto v = md.GetInt(key(k));
    if (!v) {
      if (md.Find(key(k)) != nullptr) return Field(origin, key(k), "not an integer");
      return Field(origin, key(k), "missing");
    }
    *out = *v;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(req("block_count", &c.n_layers));
  RETURN_IF_ERROR(req("embedding_length", &c.dim));
  RETURN_IF_ERROR(req("feed_forward_length", &c.ffn_dim));
  RETURN_IF_ERROR(req("attention.head_count", &c.n_heads));
  c.n_kv_heads = c.n_heads;
  if (md.Find(key("attention.head_count_kv"))) RETURN_IF_ERROR(req("attention.head_count_kv", &c.n_kv_heads));
  if (auto v = md.GetInt(key("attention.key_length"))) c.head_dim = *v;
  if (auto v = md.GetInt(key("attention.value_length"))) c.value_dim = *v;
  if (auto v = md.GetInt(key("vocab_size"))) c.vocab_size = *v;
  if (auto v = md.GetInt(key("context_length"))) c.context_length = *v;
  if (auto v = md.GetFloat(key("attention.layer_norm_rms_epsilon"))) c.norm_eps = *v;
  if (auto v = md.GetFloat(key("rope.freq_base"))) c.rope_theta = *v;
  if (auto v = md.GetInt(key("rope.dimension_count"))) c.rope_dim = *v;
  // llama.cpp computes NeoX-style rotation for these; only llama-style archs were permuted.
  c.rope_order = (c.arch == Arch::kLlama || c.arch == Arch::kMistral) ? RopeOrder::kInterleaved
                                                                     : RopeOrder::kHalfSplit;
  if (auto t = md.GetString(key("rope.scaling.type")); t && *t != "none") {
    if (*t == "linear") {
      c.rope_scaling.kind = RopeScaling::Kind::kLinear;
    } else if (*t == "llama3") {
      c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
    } else {
      return Field(origin, key("rope.scaling.type"), fmt::format("unsupported rope scaling '{}'", *t));
    }
    if (auto v = md.GetFloat(key("rope.scaling.factor"))) c.rope_scaling.factor = *v;
    if (auto v = md.GetInt(key("rope.scaling.original_context_length")))
      c.rope_scaling.original_context = *v;
    if (auto v = md.GetFloat(key("rope.scaling.low_freq_factor"))) c.rope_scaling.low_freq_factor = *v;
    if (auto v = md.GetFloat(key("rope.scaling.high_freq_factor"))) c.rope_scaling.high_freq_factor = *v;
  } else if (auto f = md.GetFloat(key("rope.scale_linear")); f && *f != 1.0) {
    c.rope_scaling.kind = RopeScaling::Kind::kLinear;
    c.rope_scaling.factor = *f;
  } else if (c.arch == Arch::kPhi3) {
    // llama.cpp's converter writes phi3's longrope as these keys plus the
    // rope_factors_{short,long} tensors (the loader reads those).
    auto orig = md.GetInt(key("rope.scaling.original_context_length"));
    auto attn = md.GetFloat(key("rope.scaling.attn_factor"));
    if (orig || attn) {
      c.rope_scaling.kind = RopeScaling::Kind::kLongRope;
      if (orig) c.rope_scaling.original_context = *orig;
      c.rope_scaling.attn_factor = attn.value_or(1.0);
    }
  }
  if (c.arch == Arch::kGemma2) {
    if (auto v = md.GetFloat(key("attn_logit_softcapping"))) c.attn_softcap = *v;
    if (auto v = md.GetFloat(key("final_logit_softcapping"))) c.final_softcap = *v;
    if (auto v = md.GetInt(key("attention.sliding_window"))) c.sliding_window = *v;
  }
  RETURN_IF_ERROR(Validate(c, origin, p));
  return c;
}

absl::StatusOr<ModelConfig> ConfigFromHf(const nlohmann::json& j, std::string_view origin) {
  if (!j.is_object()) return Field(origin, "config", "not a JSON object");
  std::string name;
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) name = it->get<std::string>();
  if (auto it = j.find("architectures"); name.empty() && it != j.end() && it->is_array() &&
                                          !it->empty() && (*it)[0].is_string())
    name = (*it)[0].get<std::string>();
  if (name.empty()) return Field(origin, "config.model_type", "missing");
  auto arch = ArchFromName(name);
  if (!arch.ok()) return Field(origin, "config.model_type", Msg(arch.status()));
  ModelConfig c;
  c.arch = *arch;
  c.naming = WeightNaming::kHf;
  c.rope_order = RopeOrder::kHalfSplit;
  auto req = [&](const char* k, int64_t* out) -> absl::Status {
    auto v = JsonInt(j, k);
    if (!v) return Field(origin, fmt::format("config.{}", k), "missing or not an integer");
    *out = *v;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(req("num_hidden_layers", &c.n_layers));
  RETURN_IF_ERROR(req("hidden_size", &c.dim));
  RETURN_IF_ERROR(req("intermediate_size", &c.ffn_dim));
  RETURN_IF_ERROR(req("num_attention_heads", &c.n_heads));
  c.n_kv_heads = JsonInt(j, "num_key_value_heads").value_or(c.n_heads);
  if (auto v = JsonInt(j, "head_dim")) c.head_dim = *v;
  c.vocab_size = JsonInt(j, "vocab_size").value_or(0);
  c.context_length = JsonInt(j, "max_position_embeddings").value_or(0);
  c.norm_eps = JsonFloat(j, "rms_norm_eps").value_or(1e-6);
  c.rope_theta = JsonFloat(j, "rope_theta").value_or(10000.0);
  if (auto it = j.find("tie_word_embeddings"); it != j.end() && it->is_boolean())
    c.tie_embeddings_hint = it->get<bool>();
  if (auto v = JsonFloat(j, "partial_rotary_factor"); v && c.head_dim > 0)
    c.rope_dim = static_cast<int64_t>(*v * c.head_dim);
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) {
    std::string type;
    for (const char* k : {"rope_type", "type"})
      if (auto t = it->find(k); t != it->end() && t->is_string()) type = t->get<std::string>();
    auto& s = c.rope_scaling;
    if (type == "llama3") {
      s.kind = RopeScaling::Kind::kLlama3;
      s.low_freq_factor = JsonFloat(*it, "low_freq_factor").value_or(1.0);
      s.high_freq_factor = JsonFloat(*it, "high_freq_factor").value_or(4.0);
      s.original_context = JsonInt(*it, "original_max_position_embeddings").value_or(8192);
    } else if (type == "linear") {
      s.kind = RopeScaling::Kind::kLinear;
    } else if (type == "longrope" || type == "su") {
      s.kind = RopeScaling::Kind::kLongRope;
      for (auto [name, dst] : {std::pair{"short_factor", &s.short_factor}, std::pair{"long_factor", &s.long_factor}}) {
        auto v = it->find(name);
        if (v == it->end() || !v->is_array())
          return Field(origin, fmt::format("config.rope_scaling.{}", name), "missing (longrope needs both factor lists)");
        for (const auto& x : *v) {
          if (!x.is_number()) return Field(origin, fmt::format("config.rope_scaling.{}", name), "not a list of numbers");
          dst->push_back(x.get<float>());
        }
      }
      // Phi-3 keeps the pre-extension context at the top level.
      auto orig = JsonInt(*it, "original_max_position_embeddings");
      if (!orig) orig = JsonInt(j, "original_max_position_embeddings");
      if (!orig) return Field(origin, "config.original_max_position_embeddings", "missing (needed by longrope)");
      s.original_context = *orig;
      if (auto a = JsonFloat(*it, "attention_factor")) {
        s.attn_factor = *a;
      } else {
        const double scale = static_cast<double>(c.context_length) / static_cast<double>(*orig);
        s.attn_factor = scale <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(scale) / std::log(static_cast<double>(*orig)));
      }
    } else if (type != "default" && !type.empty()) {
      return Field(origin, "config.rope_scaling.rope_type", fmt::format("unsupported rope scaling '{}'", type));
    }
    s.factor = JsonFloat(*it, "factor").value_or(1.0);
  }
  if (c.arch == Arch::kGemma2) {
    c.attn_softcap = JsonFloat(j, "attn_logit_softcapping").value_or(0);
    c.final_softcap = JsonFloat(j, "final_logit_softcapping").value_or(0);
    c.sliding_window = JsonInt(j, "sliding_window").value_or(0);
    if (auto v = JsonFloat(j, "query_pre_attn_scalar")) c.query_scale = 1.0 / std::sqrt(*v);
    c.norm_plus_one = true;
  }
  RETURN_IF_ERROR(Validate(c, origin, "config."));
  return c;
}

absl::StatusOr<ModelConfig> ConfigFromLlama2c(const nlohmann::json& md, std::string_view origin) {
  auto it = md.is_object() ? md.find("llama2c") : md.end();
  if (!md.is_object() || it == md.end() || !it->is_object()) return Field(origin, "llama2c", "missing");
  const nlohmann::json& h = *it;
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.naming = WeightNaming::kGguf;
  // run.c rotates adjacent pairs (i, i+1) of each head: the order GGUF
  // llama weights have after llama.cpp's permutation.
  c.rope_order = RopeOrder::kInterleaved;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  for (auto [key, out] : {std::pair{"n_layers", &c.n_layers}, std::pair{"dim", &c.dim},
                          std::pair{"hidden_dim", &c.ffn_dim}, std::pair{"n_heads", &c.n_heads},
                          std::pair{"n_kv_heads", &c.n_kv_heads}, std::pair{"vocab_size", &c.vocab_size},
                          std::pair{"max_seq_len", &c.context_length}}) {
    auto v = JsonInt(h, key);
    if (!v) return Field(origin, fmt::format("llama2c.{}", key), "missing or not an integer");
    *out = *v;
  }
  RETURN_IF_ERROR(Validate(c, origin, "llama2c."));
  return c;
}

}  // namespace hart::runtime

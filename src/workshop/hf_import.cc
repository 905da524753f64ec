// BuildConvertHf: an HF checkpoint version as a GGUF-layout derivation.
#include "workshop/hf_import.h"

#include <cmath>
#include <cstring>
#include <map>
#include <numbers>

#include "core/status.h"
#include "fmt/format.h"
#include "runtime/model_config.h"
#include "runtime/pretokenize.h"

namespace hart::workshop {
namespace {

using formats::GgufType;
using formats::GgufValue;
using nlohmann::json;

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581

constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

GgufValue F32(double v) { return GgufValue{GgufType::kFloat32, v}; }
GgufValue Bool(bool v) { return GgufValue{GgufType::kBool, v}; }
GgufValue StrArray(const std::vector<std::string>& v) {
  formats::GgufArray a{GgufType::kString, {}};
  a.items.reserve(v.size());
  for (const std::string& s : v) a.items.push_back(Str(s));
  return GgufValue{GgufType::kArray, std::move(a)};
}
GgufValue NumArray(GgufType t, const std::vector<double>& v) {
  formats::GgufArray a{t, {}};
  a.items.reserve(v.size());
  a.items.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    a.items[i].type = t;
    if (t == GgufType::kFloat32) a.items[i].value = v[i];
    else a.items[i].value = static_cast<int64_t>(v[i]);
  }
  return GgufValue{GgufType::kArray, std::move(a)};
}

absl::StatusOr<std::string> ReadVersionFile(store::Store& store, int64_t id, const std::vector<store::FileRow>& files,
                                            std::string_view name) {
  for (const auto& f : files)
    if (f.name == name) {
      std::string data(f.size, '\0');
      RETURN_IF_ERROR(store.ReadFileRange(
          id, f.index, 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(data.data()), data.size())));
      return data;
    }
  return absl::NotFoundError(std::string(name));
}

void Flatten(const json& j, std::vector<const json*>* out) {
  if (!j.is_object()) return;
  if (j.value("type", "") == "Sequence") {
    for (const char* key : {"pretokenizers", "normalizers", "decoders"})
      if (auto it = j.find(key); it != j.end() && it->is_array())
        for (const json& e : *it) Flatten(e, out);
    return;
  }
  out->push_back(&j);
}
std::vector<const json*> Components(const json& root, const char* key) {
  std::vector<const json*> out;
  if (auto it = root.find(key); it != root.end()) Flatten(*it, &out);
  return out;
}

std::optional<std::string> TokenText(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return std::nullopt;
}

bool IsHexByte(const std::string& t) {
  return t.size() == 6 && t.starts_with("<0x") && t.back() == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

}  // namespace

namespace {
absl::Status TokenizerGgufMetadataImpl(const std::string& tok_text, const std::string& cfg_text,
                                       std::string_view origin, formats::GgufMetadata* md);
}  // namespace

// tokenizer.json (+ tokenizer_config.json) -> tokenizer.ggml.* keys. The
// files are the user's: a field of an unexpected JSON type (which
// nlohmann's accessors answer with an exception) is an error, not a crash.
absl::Status TokenizerGgufMetadata(const std::string& tok_text, const std::string& cfg_text, std::string_view origin,
                                   formats::GgufMetadata* md) {
  formats::GgufMetadata out = *md;
  try {
    RETURN_IF_ERROR(TokenizerGgufMetadataImpl(tok_text, cfg_text, origin, &out));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: tokenizer.json / tokenizer_config.json: {}", origin, e.what()));
  }
  *md = std::move(out);
  return absl::OkStatus();
}

namespace {
absl::Status TokenizerGgufMetadataImpl(const std::string& tok_text, const std::string& cfg_text,
                                       std::string_view origin, formats::GgufMetadata* md) {
  const std::string file = fmt::format("{}: tokenizer.json", origin);
  auto bad = [&](std::string_view field, std::string what) {
    return absl::UnimplementedError(fmt::format("{}: {}: {}", file, field, what));
  };
  json root = json::parse(tok_text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) return absl::InvalidArgumentError(file + ": not a JSON object");
  json cfg = cfg_text.empty() ? json::object() : json::parse(cfg_text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) cfg = json::object();
  const json model = root.value("model", json::object());
  std::string type = model.value("type", "");
  if (type.empty() && model.contains("merges")) type = "BPE";
  if (type != "BPE") return bad("model.type", fmt::format("'{}' cannot be converted (BPE can)", type));
  if (!model.contains("vocab") || !model["vocab"].is_object()) return bad("model.vocab", "missing");
  int64_t max_id = -1;
  for (const auto& [t, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      return absl::InvalidArgumentError(fmt::format("{}: model.vocab: '{}' has no valid id", file, t));
    max_id = std::max(max_id, id.get<int64_t>());
  }
  const json added = root.value("added_tokens", json::array());
  if (!added.is_array()) return absl::InvalidArgumentError(file + ": added_tokens: not an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const json& a = added[i];
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        !a.contains("content") || !a["content"].is_string())
      return absl::InvalidArgumentError(fmt::format("{}: added_tokens[{}]: needs an id and a content", file, i));
    max_id = std::max(max_id, a["id"].get<int64_t>());
  }
  if (max_id < 0 || max_id >= (int64_t{1} << 24)) return bad("model.vocab", "empty or too large");
  const size_t n = static_cast<size_t>(max_id + 1);
  std::vector<std::string> tokens(n);
  std::vector<double> types(n, 0);
  for (size_t i = 0; i < n; ++i) tokens[i] = fmt::format("[PAD{}]", i);  // holes, as llama.cpp's converter
  for (const auto& [t, id] : model["vocab"].items()) {
    tokens[id.get<size_t>()] = t;
    types[id.get<size_t>()] = 1;
  }
  for (const json& a : added) {
    const size_t id = a["id"].get<size_t>();
    tokens[id] = a["content"].get<std::string>();
    types[id] = a.value("special", false) ? 3 : 4;
  }
  for (size_t i = 0; i < n; ++i)
    if (types[i] == 0) types[i] = 5;  // unused hole
  std::vector<std::string> merges;
  if (auto m = model.find("merges"); m != model.end() && m->is_array())
    for (const json& e : *m) {
      if (e.is_string()) merges.push_back(e.get<std::string>());
      else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string())
        merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
      else return bad("model.merges", "an entry is neither \"a b\" nor [a, b]");
    }

  const auto pre = Components(root, "pre_tokenizer");
  const auto norm = Components(root, "normalizer");
  const auto dec = Components(root, "decoder");
  bool metaspace = false, prepend = false, replace_space = false, byte_level = false;
  for (const json* c : pre) {
    const std::string t = c->value("type", "");
    if (t == "Metaspace") {
      metaspace = true;
      prepend = c->value("prepend_scheme", "always") != "never" && c->value("add_prefix_space", true);
    }
    if (t == "ByteLevel") byte_level = true;
  }
  for (const json* c : dec)
    if (c->value("type", "") == "ByteLevel") byte_level = true;
  for (const json* c : norm) {
    const std::string t = c->value("type", "");
    if (t == "Prepend" && c->value("prepend", "") == kSpace) prepend = true;
    if (t == "Replace" && c->value("content", "") == kSpace) replace_space = true;
  }
  const bool byte_fallback = model.value("byte_fallback", false);
  const bool spm = byte_fallback || metaspace || replace_space;
  std::optional<std::string> unk;
  if (model.contains("unk_token")) unk = TokenText(model["unk_token"]);
  auto find = [&](const std::string& t) -> int64_t {
    for (size_t i = 0; i < n; ++i)
      if (tokens[i] == t) return static_cast<int64_t>(i);
    return -1;
  };
  std::vector<GgufValue> dummy;
  if (spm) {
    SetMetadata(md, "tokenizer.ggml.model", Str("llama"));
    // Score: minus the rank of the first merge producing the piece; pieces
    // no merge produces below every merge (as the runtime reads tokenizer.json).
    std::map<std::string, size_t> rank;
    for (size_t r = 0; r < merges.size(); ++r) {
      const size_t sp = merges[r].find(' ', 1);
      if (sp == std::string::npos) continue;
      rank.emplace(merges[r].substr(0, sp) + merges[r].substr(sp + 1), r);
    }
    std::vector<double> scores(n, -static_cast<double>(merges.size()) - 1.0);
    for (size_t i = 0; i < n; ++i)
      if (auto it = rank.find(tokens[i]); it != rank.end() && types[i] == 1)
        scores[i] = -static_cast<double>(it->second);
    if (byte_fallback)
      for (size_t i = 0; i < n; ++i)
        if (types[i] == 1 && IsHexByte(tokens[i])) types[i] = 6;
    if (unk)
      if (int64_t id = find(*unk); id >= 0) types[id] = 2;
    SetMetadata(md, "tokenizer.ggml.tokens", StrArray(tokens));
    SetMetadata(md, "tokenizer.ggml.scores", NumArray(GgufType::kFloat32, scores));
    SetMetadata(md, "tokenizer.ggml.token_type", NumArray(GgufType::kInt32, types));
    SetMetadata(md, "tokenizer.ggml.add_space_prefix", Bool(prepend));
  } else if (byte_level) {
    for (const json* c : norm)
      if (c->value("type", "") != "NFC") return bad("normalizer.type", fmt::format("'{}' cannot be converted", c->value("type", "")));
    std::vector<std::string> patterns;
    for (const json* c : pre) {
      const std::string t = c->value("type", "");
      if (t == "Split") {
        const json p = c->value("pattern", json::object());
        if (!p.contains("Regex") || !p["Regex"].is_string()) return bad("pre_tokenizer.pattern", "not a Regex");
        patterns.push_back(p["Regex"].get<std::string>());
      } else if (t == "ByteLevel") {
        if (c->value("use_regex", true)) patterns.push_back(runtime::PreTokenizer::PatternsForName("gpt-2")->front());
      } else if (t == "Digits") {
        patterns.push_back(c->value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
      } else {
        return bad("pre_tokenizer.type", fmt::format("'{}' cannot be converted", t));
      }
    }
    const std::string name = runtime::PreTokenizer::NameForPatterns(patterns);
    if (name.empty())
      return bad("pre_tokenizer", "its expressions are not those of a pre-tokenizer family GGUF names");
    SetMetadata(md, "tokenizer.ggml.model", Str("gpt2"));
    SetMetadata(md, "tokenizer.ggml.pre", Str(name));
    SetMetadata(md, "tokenizer.ggml.tokens", StrArray(tokens));
    SetMetadata(md, "tokenizer.ggml.token_type", NumArray(GgufType::kInt32, types));
    SetMetadata(md, "tokenizer.ggml.merges", StrArray(merges));
  } else {
    return bad("pre_tokenizer", "neither byte-level BPE nor SentencePiece-style BPE");
  }
  std::optional<int64_t> bos = spm ? std::optional<int64_t>(find("<s>")) : std::nullopt;
  std::optional<int64_t> eos = spm ? std::optional<int64_t>(find("</s>")) : std::nullopt;
  for (auto [key, out] : {std::pair{"bos_token", &bos}, std::pair{"eos_token", &eos}}) {
    if (!cfg.contains(key) || cfg[key].is_null()) continue;
    auto text = TokenText(cfg[key]);
    if (!text) continue;
    const int64_t id = find(*text);
    if (id < 0)
      return absl::InvalidArgumentError(fmt::format("{}: tokenizer_config.json: {}: '{}' is not in the vocabulary",
                                                    origin, key, *text));
    *out = id;
  }
  if (bos && *bos >= 0) SetMetadata(md, "tokenizer.ggml.bos_token_id", U32(static_cast<uint32_t>(*bos)));
  if (eos && *eos >= 0) SetMetadata(md, "tokenizer.ggml.eos_token_id", U32(static_cast<uint32_t>(*eos)));
  if (unk)
    if (int64_t id = find(*unk); id >= 0) SetMetadata(md, "tokenizer.ggml.unknown_token_id", U32(static_cast<uint32_t>(id)));
  // BOS in front: add_bos_token when the config says, else a post-processor
  // template starting with a special token (Llama 3), else SentencePiece's
  // default - as the runtime reads tokenizer.json.
  std::optional<bool> add_bos_opt;
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) add_bos_opt = cfg["add_bos_token"].get<bool>();
  std::vector<const json*> post;
  if (auto it = root.find("post_processor"); it != root.end() && it->is_object()) {
    if (it->value("type", "") == "Sequence" && it->contains("processors") && (*it)["processors"].is_array())
      for (const json& e : (*it)["processors"]) post.push_back(&e);
    else
      post.push_back(&*it);
  }
  for (const json* c : post) {
    if (!c->is_object() || c->value("type", "") != "TemplateProcessing") continue;
    const json single = c->value("single", json::array());
    if (!single.is_array() || single.empty() || !single[0].contains("SpecialToken")) continue;
    const int64_t id = find(single[0]["SpecialToken"].value("id", ""));
    if (id < 0) continue;
    if (!bos || *bos < 0) {
      bos = id;
      SetMetadata(md, "tokenizer.ggml.bos_token_id", U32(static_cast<uint32_t>(id)));
    }
    if (!add_bos_opt) add_bos_opt = id == *bos;
  }
  const bool add_bos = add_bos_opt.value_or(spm);
  SetMetadata(md, "tokenizer.ggml.add_bos_token", Bool(add_bos));
  if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
    SetMetadata(md, "tokenizer.chat_template", Str(cfg["chat_template"].get<std::string>()));
  return absl::OkStatus();
}
}  // namespace

std::string GgufTensorName(std::string_view n) {
  if (n == "model.embed_tokens.weight") return "token_embd.weight";
  if (n == "model.norm.weight") return "output_norm.weight";
  if (n == "lm_head.weight") return "output.weight";
  constexpr std::string_view kPrefix = "model.layers.";
  if (!n.starts_with(kPrefix)) return "";
  std::string_view rest = n.substr(kPrefix.size());
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return "";
  std::string_view layer = rest.substr(0, dot), suffix = rest.substr(dot + 1);
  for (char c : layer)
    if (c < '0' || c > '9') return "";
  for (const auto& [h, g] : kLayerNames)
    if (suffix == h) return fmt::format("blk.{}.{}", layer, g);
  return "";
}

absl::StatusOr<Derivation> BuildConvertHf(store::Store& store, int64_t version_id) {
  ASSIGN_OR_RETURN(std::vector<store::VersionRow> all, store.ListVersions());
  const store::VersionRow* v = nullptr;
  for (const auto& r : all)
    if (r.id == version_id) v = &r;
  if (!v) return absl::NotFoundError(fmt::format("version id {} is not in the store", version_id));
  const std::string ref = v->ref();
  if (v->format == formats::Format::kGguf)
    return absl::FailedPreconditionError(fmt::format("{} is already a GGUF version: nothing to convert", ref));
  ASSIGN_OR_RETURN(std::vector<store::FileRow> files, store.ListFiles(version_id));
  auto config_text = ReadVersionFile(store, version_id, files, "config.json");
  if (!config_text.ok())
    return absl::FailedPreconditionError(fmt::format(
        "{} has no config.json: only a Hugging Face checkpoint directory (safetensors + config.json) converts", ref));
  json config = json::parse(*config_text, nullptr, false);
  ASSIGN_OR_RETURN(runtime::ModelConfig cfg, runtime::ConfigFromHf(config, ref + ": config.json"));
  const std::string arch(runtime::ArchName(cfg.arch));
  const bool permuted = cfg.arch == runtime::Arch::kLlama || cfg.arch == runtime::Arch::kMistral;
  if (!permuted && cfg.arch != runtime::Arch::kQwen2 && cfg.arch != runtime::Arch::kQwen3)
    return absl::UnimplementedError(fmt::format(
        "{}: config.json: model_type '{}' does not convert here (llama, mistral, qwen2, qwen3 do)", ref, arch));
  if (cfg.rope_dim != cfg.head_dim)
    return absl::UnimplementedError(fmt::format("{}: config.json: partial_rotary_factor is not converted", ref));

  Derivation d;
  d.method = "convert-hf";
  d.inputs = {version_id};
  d.parameters = json::object();
  d.reader = std::make_shared<TensorReader>(store);
  formats::GgufMetadata& md = d.metadata;
  auto key = [&](std::string_view k) { return fmt::format("{}.{}", arch, k); };
  SetMetadata(&md, "general.architecture", Str(arch));
  SetMetadata(&md, "general.name", Str(v->model));
  SetMetadata(&md, key("block_count"), U32(static_cast<uint32_t>(cfg.n_layers)));
  SetMetadata(&md, key("context_length"), U32(static_cast<uint32_t>(cfg.context_length)));
  SetMetadata(&md, key("embedding_length"), U32(static_cast<uint32_t>(cfg.dim)));
  SetMetadata(&md, key("feed_forward_length"), U32(static_cast<uint32_t>(cfg.ffn_dim)));
  SetMetadata(&md, key("attention.head_count"), U32(static_cast<uint32_t>(cfg.n_heads)));
  SetMetadata(&md, key("attention.head_count_kv"), U32(static_cast<uint32_t>(cfg.n_kv_heads)));
  SetMetadata(&md, key("rope.freq_base"), F32(cfg.rope_theta));
  SetMetadata(&md, key("attention.layer_norm_rms_epsilon"), F32(cfg.norm_eps));
  if (cfg.head_dim * cfg.n_heads != cfg.dim) {
    SetMetadata(&md, key("attention.key_length"), U32(static_cast<uint32_t>(cfg.head_dim)));
    SetMetadata(&md, key("attention.value_length"), U32(static_cast<uint32_t>(cfg.value_dim)));
  }
  SetMetadata(&md, key("rope.dimension_count"), U32(static_cast<uint32_t>(cfg.rope_dim)));
  using Kind = runtime::RopeScaling::Kind;
  if (cfg.rope_scaling.kind == Kind::kLinear) {
    SetMetadata(&md, key("rope.scaling.type"), Str("linear"));
    SetMetadata(&md, key("rope.scaling.factor"), F32(cfg.rope_scaling.factor));
  } else if (cfg.rope_scaling.kind != Kind::kNone && cfg.rope_scaling.kind != Kind::kLlama3) {
    return absl::UnimplementedError(fmt::format("{}: config.json: rope_scaling of this kind is not converted", ref));
  }
  auto tok = ReadVersionFile(store, version_id, files, "tokenizer.json");
  if (!tok.ok())
    return absl::FailedPreconditionError(
        fmt::format("{} has no tokenizer.json: a GGUF carries its tokenizer, so there is nothing to convert it from",
                    ref));
  std::string tok_cfg = ReadVersionFile(store, version_id, files, "tokenizer_config.json").value_or("");
  RETURN_IF_ERROR(TokenizerGgufMetadata(*tok, tok_cfg, ref, &md));

  ASSIGN_OR_RETURN(std::vector<store::TensorRow> rows, store.ListTensors(version_id));
  std::shared_ptr<TensorReader> reader = d.reader;
  for (const store::TensorRow& t : rows) {
    if (t.name.ends_with(".rotary_emb.inv_freq")) continue;  // old checkpoints' buffer, recomputed from rope_theta
    const std::string g = GgufTensorName(t.name);
    if (g.empty())
      return absl::UnimplementedError(fmt::format("{}: tensor '{}' has no GGUF name in a {} model", ref, t.name, arch));
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16)
      return absl::UnimplementedError(fmt::format("{}: tensor '{}' is {} (F32, F16, BF16 convert)", ref, t.name,
                                                  Name(t.dtype)));
    OutputTensor o;
    o.name = g;
    o.dtype = t.dtype;
    o.shape = t.shape;
    const bool q = g.ends_with(".attn_q.weight") || g.ends_with(".attn_q.bias");
    const bool k = g.ends_with(".attn_k.weight") || g.ends_with(".attn_k.bias");
    if (permuted && (q || k)) {
      const uint64_t hd = static_cast<uint64_t>(cfg.head_dim);
      const uint64_t heads = static_cast<uint64_t>(q ? cfg.n_heads : cfg.n_kv_heads);
      if (t.shape.empty() || t.shape[0] != heads * hd)
        return absl::InvalidArgumentError(fmt::format("{}: tensor '{}' has {} rows; {} heads of {} give {}", ref,
                                                      t.name, t.shape.empty() ? 0 : t.shape[0], heads, hd, heads * hd));
      const uint64_t row_bytes = t.nbytes / t.shape[0];
      const int64_t vid = version_id;
      const std::string src = t.name;
      // HF row h*hd + s*hd/2 + i becomes GGUF row h*hd + 2i + s, moved as bytes.
      o.pieces = [reader, vid, src, hd, heads, row_bytes](const PieceSink& emit) -> absl::Status {
        ASSIGN_OR_RETURN(std::vector<store::Extent> extents, reader->Locate(vid, src));
        std::vector<uint8_t> in(hd * row_bytes), out(hd * row_bytes);
        const uint64_t half = hd / 2;
        for (uint64_t h = 0; h < heads; ++h) {
          RETURN_IF_ERROR(reader->ReadRange(extents, h * hd * row_bytes, in));
          for (uint64_t i = 0; i < half; ++i)
            for (uint64_t s = 0; s < 2; ++s)
              std::memcpy(&out[(2 * i + s) * row_bytes], &in[(s * half + i) * row_bytes], row_bytes);
          RETURN_IF_ERROR(emit(out));
        }
        return absl::OkStatus();
      };
    } else {
      o.taken = TensorOrigin{version_id, t.name};
    }
    d.tensors.push_back(std::move(o));
  }
  if (cfg.rope_scaling.kind == Kind::kLlama3) {
    // As llama.cpp's converter: the per-pair frequency divisors as a tensor.
    const auto s = cfg.rope_scaling;
    const double theta = cfg.rope_theta;
    const int64_t rd = cfg.rope_dim;
    OutputTensor o;
    o.name = "rope_freqs.weight";
    o.dtype = DType::kF32;
    o.shape = {static_cast<uint64_t>(rd / 2)};
    o.compute = [s, theta, rd](std::span<uint8_t> out) -> absl::Status {
      const double low_wl = s.original_context / s.low_freq_factor, high_wl = s.original_context / s.high_freq_factor;
      for (int64_t i = 0; i < rd / 2; ++i) {
        const double inv = 1.0 / std::pow(theta, 2.0 * static_cast<double>(i) / static_cast<double>(rd));
        const double wl = 2 * std::numbers::pi / inv;
        double div = 1.0;
        if (wl > low_wl) {
          div = s.factor;
        } else if (wl >= high_wl) {
          const double smooth = (s.original_context / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          div = 1.0 / ((1 - smooth) / s.factor + smooth);
        }
        const float f = static_cast<float>(div);
        std::memcpy(&out[4 * i], &f, 4);
      }
      return absl::OkStatus();
    };
    d.tensors.push_back(std::move(o));
  }
  if (d.tensors.empty()) return absl::InvalidArgumentError(fmt::format("{} has no tensors", ref));
  // A vocabulary the embedding cannot hold would fail at run time; fewer
  // tokens than rows (padding, as Qwen2 has) is fine.
  for (const store::TensorRow& t : rows)
    if (t.name == "model.embed_tokens.weight" && !t.shape.empty())
      if (auto tokens = md.GetArray("tokenizer.ggml.tokens"); tokens && tokens->items.size() > t.shape[0])
        return absl::InvalidArgumentError(fmt::format(
            "{}: tokenizer.json has {} tokens, more than the {} rows of model.embed_tokens.weight", ref,
            tokens->items.size(), t.shape[0]));
  return d;
}

}  // namespace hart::workshop

// ExportHf: a GGUF-layout version as a Hugging Face model directory.
#include "workshop/hf_export.h"

#include <cmath>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <numbers>
#include <set>

#include "core/decode.h"
#include "core/status.h"
#include "fmt/format.h"
#include "runtime/kernels.h"
#include "runtime/model_config.h"
#include "runtime/pretokenize.h"
#include "workshop/derive.h"
#include "workshop/merge_math.h"

namespace hart::workshop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct ArchEntry {
  const char* gguf;      // general.architecture
  const char* hf_class;  // config.json architectures[0]
  bool permuted;         // llama.cpp's converter permuted Q/K rows for rotary order
};
constexpr ArchEntry kArchs[] = {
    {"llama", "LlamaForCausalLM", true},
    {"mistral", "MistralForCausalLM", true},
    {"qwen2", "Qwen2ForCausalLM", false},
    {"qwen3", "Qwen3ForCausalLM", false},
};

// GGUF suffix after "blk.N." -> HF suffix after "model.layers.N.".
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

// One tensor of the output.
struct Planned {
  const store::TensorRow* src = nullptr;
  std::string hf_name;
  uint64_t rows = 0, cols = 0;  // source elements as rows x cols
  uint64_t head_rows = 0;       // > 0: un-permute each group of this many rows
  uint64_t out_bytes = 0;
  uint64_t offset = 0;          // in the data section
};

std::string SafetensorsDType(DType t) {
  switch (t) {
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    default: return "F32";
  }
}
std::string TorchDType(DType t) {
  switch (t) {
    case DType::kBF16: return "bfloat16";
    case DType::kF16: return "float16";
    default: return "float32";
  }
}

// Removes what an export wrote unless it finished.
struct Cleanup {
  std::vector<std::string> files;
  std::string created_dir;
  bool done = false;
  ~Cleanup() {
    if (done) return;
    std::error_code ec;
    for (const std::string& f : files) fs::remove(f, ec);
    if (!created_dir.empty()) fs::remove(created_dir, ec);
  }
};

class OutFile {
 public:
  ~OutFile() {
    if (f_) std::fclose(f_);
  }
  absl::Status Open(const std::string& path) {
    path_ = path;
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_) return absl::InternalError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
    return absl::OkStatus();
  }
  absl::Status Write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      return absl::InternalError(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
    return absl::OkStatus();
  }
  absl::Status Close() {
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0 || std::fclose(f) != 0)
      return absl::InternalError(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
    return absl::OkStatus();
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

absl::Status WriteText(const std::string& path, std::string_view text, Cleanup* cleanup) {
  OutFile f;
  RETURN_IF_ERROR(f.Open(path));
  cleanup->files.push_back(path);
  RETURN_IF_ERROR(f.Write(text.data(), text.size()));
  return f.Close();
}

// Llama 3's rope scaling as llama.cpp stores it: rope_freqs.weight holds, per
// rotated pair, the divisor of its frequency, with no keys saying how it was
// made. HF computes the divisors from (factor, low_freq_factor,
// high_freq_factor, original_max_position_embeddings): 1 for short
// wavelengths, `factor` for long ones, and between them 1 / ((1 - s) /
// factor + s) with s = (orig / wavelen - low) / (high - low), a line in
// 1 / wavelen. The published Llama 3.1/3.2 values (1, 4, 8192) are tried
// first; else the line through the stored divisors between the two bounds
// gives orig / (high - low) and low / (high - low), written with
// low_freq_factor 1 (every choice on the line gives the same divisors).
// Parameters are written only when they reproduce every stored divisor;
// anything else is refused rather than guessed.
struct Llama3Params {
  double factor, low, high, orig;
};
double Llama3Divisor(const Llama3Params& p, double inv) {
  const double wavelen = 2 * std::numbers::pi / inv;
  if (wavelen < p.orig / p.high) return 1.0;
  if (wavelen > p.orig / p.low) return p.factor;
  const double smooth = (p.orig / wavelen - p.low) / (p.high - p.low);
  return 1.0 / ((1 - smooth) / p.factor + smooth);
}

absl::StatusOr<json> Llama3ScalingFromFreqs(const std::vector<float>& freqs, double theta, int64_t rope_dim) {
  if (freqs.size() != static_cast<size_t>(rope_dim / 2))
    return absl::InvalidArgumentError(fmt::format("rope_freqs.weight has {} values for {} rotated pairs",
                                                  freqs.size(), rope_dim / 2));
  std::vector<double> inv(freqs.size());
  for (size_t i = 0; i < freqs.size(); ++i)
    inv[i] = 1.0 / std::pow(theta, 2.0 * static_cast<double>(i) / static_cast<double>(rope_dim));
  double factor = 0;
  for (float f : freqs) factor = std::max<double>(factor, f);
  if (!(factor > 1.0) || !std::isfinite(factor))
    return absl::UnimplementedError(fmt::format("rope_freqs.weight: largest divisor {} is not a scaling", factor));
  std::vector<Llama3Params> candidates = {{factor, 1.0, 4.0, 8192.0}};
  std::vector<std::pair<double, double>> line;  // (1 / wavelen, s)
  for (size_t i = 0; i < freqs.size(); ++i) {
    const double d = freqs[i];
    if (d > 1.0 + 1e-4 && d < factor * (1 - 1e-4))
      line.push_back({inv[i] / (2 * std::numbers::pi), (1.0 / d - 1.0 / factor) / (1.0 - 1.0 / factor)});
  }
  if (line.size() >= 2) {
    const auto [x1, s1] = line.front();
    const auto [x2, s2] = line.back();
    const double a = (s2 - s1) / (x2 - x1), b = s1 - a * x1;  // s = a / wavelen + b
    if (a > 0 && b < 0) {
      const double span = std::round(-1.0 / b * 1e4) / 1e4;  // high - low, with low = 1
      candidates.push_back({factor, 1.0, 1.0 + span, std::round(a * span)});
    }
  }
  std::string why;
  for (const Llama3Params& p : candidates) {
    bool ok = true;
    for (size_t i = 0; i < freqs.size() && ok; ++i) {
      const double want = Llama3Divisor(p, inv[i]);
      if (std::abs(want - freqs[i]) > 1e-4 * std::max(1.0, want)) {
        ok = false;
        if (why.empty())
          why = fmt::format("rope_freqs.weight[{}] = {}, but Llama 3 scaling with factor {}, low_freq_factor {}, "
                            "high_freq_factor {}, original_max_position_embeddings {} gives {}",
                            i, freqs[i], p.factor, p.low, p.high, p.orig, want);
      }
    }
    if (ok)
      return json{{"rope_type", "llama3"},
                  {"factor", p.factor},
                  {"low_freq_factor", p.low},
                  {"high_freq_factor", p.high},
                  {"original_max_position_embeddings", static_cast<int64_t>(p.orig)}};
  }
  return absl::UnimplementedError(
      fmt::format("{}; config.json cannot say what these rope frequencies are", why));
}

// The largest token id a tokenizer.json names (model.vocab, added_tokens).
absl::StatusOr<int64_t> MaxTokenId(store::Store& store, int64_t version_id, const store::FileRow& f) {
  std::string data(f.size, '\0');
  RETURN_IF_ERROR(store.ReadFileRange(version_id, f.index, 0,
                                      std::span<uint8_t>(reinterpret_cast<uint8_t*>(data.data()), data.size())));
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("tokenizer.json is not a JSON object");
  int64_t max_id = -1;
  if (auto m = j.find("model"); m != j.end() && m->is_object())
    if (auto v = m->find("vocab"); v != m->end() && v->is_object())
      for (const auto& [text, id] : v->items())
        if (id.is_number_integer()) max_id = std::max(max_id, id.get<int64_t>());
  if (auto a = j.find("added_tokens"); a != j.end() && a->is_array())
    for (const auto& t : *a)
      if (t.is_object() && t.contains("id") && t["id"].is_number_integer())
        max_id = std::max(max_id, t["id"].get<int64_t>());
  return max_id;
}

// The first version the lineage reaches (itself, derivation inputs, then
// parents, breadth first) with a tokenizer.json among its files whose ids
// fit the exported vocabulary (`vocab` embedding rows); one that does not
// fit is passed over and named in *skipped.
absl::StatusOr<std::optional<store::VersionRow>> FindTokenizerVersion(store::Store& store, int64_t start,
                                                                      int64_t vocab, std::string* skipped) {
  ASSIGN_OR_RETURN(std::vector<store::VersionRow> all, store.ListVersions());
  std::map<int64_t, const store::VersionRow*> by_id;
  std::map<std::string, int64_t> by_ref;
  for (const auto& v : all) {
    by_id[v.id] = &v;
    by_ref[v.ref()] = v.id;
  }
  std::deque<int64_t> queue{start};
  std::set<int64_t> seen{start};
  while (!queue.empty()) {
    const int64_t id = queue.front();
    queue.pop_front();
    auto it = by_id.find(id);
    if (it == by_id.end()) continue;
    ASSIGN_OR_RETURN(std::vector<store::FileRow> files, store.ListFiles(id));
    for (const auto& f : files) {
      if (f.name != "tokenizer.json") continue;
      auto max_id = MaxTokenId(store, id, f);
      if (max_id.ok() && *max_id >= 0 && *max_id < vocab) return std::optional<store::VersionRow>(*it->second);
      *skipped += fmt::format("{}{}'s tokenizer.json {}", skipped->empty() ? "" : "; ", it->second->ref(),
                              max_id.ok() ? fmt::format("names token id {}, past the {} rows of the embedding",
                                                        *max_id, vocab)
                                          : std::string(Msg(max_id.status())));
    }
    ASSIGN_OR_RETURN(std::optional<store::DerivationRecord> d, store.GetDerivation(id));
    std::vector<int64_t> next;
    if (d)
      for (const auto& in : d->inputs)
        if (in.contains("version_id") && in["version_id"].is_number_integer())
          next.push_back(in["version_id"].get<int64_t>());
    if (it->second->parent)
      if (auto p = by_ref.find(*it->second->parent); p != by_ref.end()) next.push_back(p->second);
    for (int64_t n : next)
      if (seen.insert(n).second) queue.push_back(n);
  }
  return std::optional<store::VersionRow>();
}

// Copies the named original files of a version into dir.
absl::Status CopyFiles(store::Store& store, int64_t version_id, const std::vector<store::FileRow>& files,
                       const std::string& dir, Cleanup* cleanup, std::vector<std::string>* written) {
  static const std::set<std::string> kWanted = {"tokenizer.json", "tokenizer_config.json",
                                                "special_tokens_map.json"};
  for (const auto& f : files) {
    if (!kWanted.count(f.name)) continue;
    std::string data(f.size, '\0');
    RETURN_IF_ERROR(store.ReadFileRange(version_id, f.index, 0,
                                        std::span<uint8_t>(reinterpret_cast<uint8_t*>(data.data()), data.size())));
    RETURN_IF_ERROR(WriteText(dir + "/" + f.name, data, cleanup));
    written->push_back(f.name);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizerFiles> TokenizerFilesFromGguf(const formats::GgufMetadata& md, int64_t context_length) {
  const std::string model = md.GetString("tokenizer.ggml.model").value_or("");
  if (model != "gpt2")
    return absl::UnimplementedError(fmt::format(
        "tokenizer.ggml.model is '{}', not a byte-level BPE ('gpt2') vocabulary",
        model.empty() ? "(missing)" : model));
  std::string pre = md.GetString("tokenizer.ggml.pre").value_or("default");
  const std::vector<std::string>* patterns = runtime::PreTokenizer::PatternsForName(pre);
  if (!patterns)
    return absl::UnimplementedError(fmt::format("tokenizer.ggml.pre '{}' is not a pre-tokenizer known here", pre));
  ASSIGN_OR_RETURN(runtime::PreTokenizer family, runtime::PreTokenizer::ForName(pre));
  auto tokens = md.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty()) return absl::InvalidArgumentError("tokenizer.ggml.tokens: missing or empty");
  auto merges = md.GetStringArray("tokenizer.ggml.merges");
  if (!merges) return absl::InvalidArgumentError("tokenizer.ggml.merges: missing (a BPE vocabulary has merges)");
  std::vector<int64_t> types = md.GetIntArray("tokenizer.ggml.token_type").value_or(std::vector<int64_t>{});
  if (!types.empty() && types.size() != tokens->size())
    return absl::InvalidArgumentError(fmt::format("tokenizer.ggml.token_type has {} entries for {} tokens",
                                                  types.size(), tokens->size()));
  json vocab = json::object();
  json added = json::array();
  for (size_t id = 0; id < tokens->size(); ++id) {
    const int64_t type = types.empty() ? 1 : types[id];
    const std::string& text = (*tokens)[id];
    if (type == 3 || type == 4) {  // control, user defined: HF's added tokens (special or not)
      added.push_back({{"id", id},
                       {"content", text},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", type == 4},
                       {"special", type == 3}});
      continue;
    }
    if (vocab.contains(text))
      return absl::UnimplementedError(fmt::format("token text '{}' appears twice (ids {} and {}); tokenizer.json "
                                                  "maps text to one id",
                                                  text, vocab[text].get<int64_t>(), id));
    vocab[text] = id;
  }
  json splits = json::array();
  for (const std::string& p : *patterns)
    splits.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}, {"invert", false}});
  splits.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  auto token_text = [&](const char* key) -> std::optional<std::string> {
    auto id = md.GetInt(key);
    if (!id || *id < 0 || static_cast<size_t>(*id) >= tokens->size()) return std::nullopt;
    return (*tokens)[*id];
  };
  const std::optional<std::string> bos = token_text("tokenizer.ggml.bos_token_id");
  const std::optional<std::string> eos = token_text("tokenizer.ggml.eos_token_id");
  const bool add_bos = md.GetBool("tokenizer.ggml.add_bos_token").value_or(false) && bos.has_value();
  json post = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  if (add_bos)
    post = {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", *bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {{{"SpecialToken", {{"id", *bos}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              {{"SpecialToken", {{"id", *bos}, {"type_id", 1}}}},
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens",
             {{*bos, {{"id", *bos}, {"ids", {*md.GetInt("tokenizer.ggml.bos_token_id")}}, {"tokens", {*bos}}}}}}};
  json tok = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", splits}}},
              {"post_processor", post},
              {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", family.ignore_merges()},
                {"vocab", vocab},
                {"merges", *merges}}}};
  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
              {"add_bos_token", add_bos},
              {"add_eos_token", false},
              {"clean_up_tokenization_spaces", false},
              {"model_max_length", context_length}};
  if (bos) cfg["bos_token"] = *bos;
  if (eos) cfg["eos_token"] = *eos;
  if (auto t = token_text("tokenizer.ggml.padding_token_id")) cfg["pad_token"] = *t;
  if (auto ct = md.GetString("tokenizer.chat_template")) cfg["chat_template"] = *ct;
  return TokenizerFiles{tok.dump(), cfg.dump(2) + "\n"};
}

absl::StatusOr<DType> HfExportDType(std::string_view name) {
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "f16" || name == "float16") return DType::kF16;
  if (name == "f32" || name == "float32") return DType::kF32;
  return absl::InvalidArgumentError(fmt::format("dtype '{}': expected bf16, f16 or f32", name));
}

std::string HfTensorName(std::string_view n) {
  if (n == "token_embd.weight") return "model.embed_tokens.weight";
  if (n == "output_norm.weight") return "model.norm.weight";
  if (n == "output.weight") return "lm_head.weight";
  if (!n.starts_with("blk.")) return "";
  std::string_view rest = n.substr(4);
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return "";
  std::string_view layer = rest.substr(0, dot), suffix = rest.substr(dot + 1);
  for (char c : layer)
    if (c < '0' || c > '9') return "";
  for (const auto& [g, h] : kLayerNames)
    if (suffix == g) return fmt::format("model.layers.{}.{}", layer, h);
  return "";
}

absl::StatusOr<HfExportResult> ExportHf(store::Store& store, int64_t version_id, const std::string& dir,
                                        const HfExportOptions& opts) {
  if (opts.dtype != DType::kBF16 && opts.dtype != DType::kF16 && opts.dtype != DType::kF32)
    return absl::InvalidArgumentError(fmt::format("dtype {}: expected BF16, F16 or F32", Name(opts.dtype)));
  if (dir.empty()) return absl::InvalidArgumentError("export: no output directory");
  {
    ASSIGN_OR_RETURN(std::vector<store::VersionRow> all, store.ListVersions());
    for (const store::VersionRow& v : all)
      if (v.id == version_id && v.format != formats::Format::kGguf)
        return absl::FailedPreconditionError(fmt::format(
            "export {} as a Hugging Face model: it is a {} version, not a GGUF one; its original files are "
            "what it is (export them with --format original)",
            v.ref(), formats::FormatName(v.format)));
  }
  ASSIGN_OR_RETURN(SourceModel m, OpenSourceById(store, version_id));
  const std::string ref = m.version.ref();
  auto bad = [&](std::string what) {
    return absl::InvalidArgumentError(fmt::format("export {} as a Hugging Face model: {}", ref, what));
  };
  const formats::GgufMetadata& md = m.header.metadata;

  // ---- What the model is ----
  const std::string arch = md.GetString("general.architecture").value_or("");
  const ArchEntry* entry = nullptr;
  for (const auto& e : kArchs)
    if (arch == e.gguf) entry = &e;
  if (!entry)
    return absl::UnimplementedError(fmt::format(
        "export {} as a Hugging Face model: architecture '{}' has no Hugging Face layout here (supported: "
        "llama, mistral, qwen2, qwen3); nothing was written",
        ref, arch.empty() ? "(general.architecture missing)" : arch));
  ASSIGN_OR_RETURN(runtime::ModelConfig cfg, runtime::ConfigFromGguf(md, ref));
  if (cfg.rope_dim != cfg.head_dim)
    return bad(fmt::format("{}.rope.dimension_count {} is not the head size {}: partial rotary is not "
                           "expressible in a {} config.json",
                           arch, cfg.rope_dim, cfg.head_dim, entry->hf_class));
  if (cfg.value_dim != cfg.head_dim)
    return bad(fmt::format("{}.attention.value_length {} differs from key_length {}", arch, cfg.value_dim,
                           cfg.head_dim));

  // ---- The tensors, checked before anything is written ----
  HfExportResult res;
  res.dir = dir;
  res.arch = arch;
  std::vector<Planned> plan;
  const store::TensorRow* rope_freqs = nullptr;
  bool has_output = false;
  std::set<std::string> hf_names;
  for (const store::TensorRow& t : m.tensors) {
    if (t.name == "rope_freqs.weight") {
      rope_freqs = &t;
      res.dropped.push_back(t.name);
      continue;
    }
    Planned p;
    p.src = &t;
    p.hf_name = HfTensorName(t.name);
    if (p.hf_name.empty())
      return bad(fmt::format("tensor '{}' has no Hugging Face name in a {} model", t.name, entry->hf_class));
    if (t.name.starts_with("blk.")) {
      const int64_t layer = std::stoll(t.name.substr(4));
      if (layer >= cfg.n_layers)
        return bad(fmt::format("tensor '{}' is past {}.block_count {}", t.name, arch, cfg.n_layers));
    }
    if (!hf_names.insert(p.hf_name).second) return bad(fmt::format("tensor '{}' is named twice", p.hf_name));
    if (!CanDecode(t.dtype))
      return bad(fmt::format("tensor '{}' is {}, which the export cannot dequantize (it decodes F32, F16, "
                             "BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K)",
                             t.name, Name(t.dtype)));
    ASSIGN_OR_RETURN(uint64_t n, NumElements(t.shape));
    p.rows = t.shape.size() >= 2 ? t.shape[0] : 1;
    const bool q = t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_q.bias");
    const bool k = t.name.ends_with(".attn_k.weight") || t.name.ends_with(".attn_k.bias");
    if (entry->permuted && (q || k)) {
      const uint64_t heads = static_cast<uint64_t>(q ? cfg.n_heads : cfg.n_kv_heads);
      const uint64_t want = heads * static_cast<uint64_t>(cfg.head_dim);
      if (t.shape.empty() || t.shape[0] != want)
        return bad(fmt::format("tensor '{}' has {} rows; {} heads of {} give {}", t.name,
                               t.shape.empty() ? 0 : t.shape[0], heads, cfg.head_dim, want));
      if (cfg.head_dim % 2 != 0) return bad(fmt::format("head size {} is odd", cfg.head_dim));
      p.rows = t.shape[0];  // a bias: rows of one element
      p.head_rows = static_cast<uint64_t>(cfg.head_dim);
    }
    p.cols = p.rows ? n / p.rows : 0;
    if (p.cols % Info(t.dtype).block_size != 0)
      return bad(fmt::format("tensor '{}': rows of {} are not whole {} blocks", t.name, p.cols, Name(t.dtype)));
    ASSIGN_OR_RETURN(p.out_bytes, ByteSize(opts.dtype, n));
    if (t.name == "output.weight") has_output = true;
    plan.push_back(std::move(p));
  }
  if (!hf_names.count("model.embed_tokens.weight")) return bad("no token_embd.weight");
  const store::TensorRow* embd = m.Find("token_embd.weight");
  if (embd->shape.size() != 2) return bad("token_embd.weight is not a matrix");
  const int64_t vocab = static_cast<int64_t>(embd->shape[0]);

  // ---- config.json ----
  json rope_scaling = nullptr;
  std::shared_ptr<TensorReader> reader = std::make_shared<TensorReader>(store);
  using Kind = runtime::RopeScaling::Kind;
  const auto& rs = cfg.rope_scaling;
  if (rs.kind == Kind::kLinear) {
    rope_scaling = {{"rope_type", "linear"}, {"factor", rs.factor}};
  } else if (rs.kind == Kind::kLlama3) {
    rope_scaling = {{"rope_type", "llama3"},
                    {"factor", rs.factor},
                    {"low_freq_factor", rs.low_freq_factor},
                    {"high_freq_factor", rs.high_freq_factor},
                    {"original_max_position_embeddings", rs.original_context}};
  } else if (rs.kind != Kind::kNone) {
    return bad("its rope scaling has no config.json form here");
  } else if (rope_freqs) {
    std::vector<float> freqs;
    RETURN_IF_ERROR(reader->ReadF32(version_id, *rope_freqs, &freqs));
    auto s = Llama3ScalingFromFreqs(freqs, cfg.rope_theta, cfg.rope_dim);
    if (!s.ok()) return bad(std::string(s.status().message()));
    rope_scaling = std::move(*s);
  }
  json config = {
      {"architectures", {entry->hf_class}},
      {"model_type", arch},
      {"hidden_size", cfg.dim},
      {"intermediate_size", cfg.ffn_dim},
      {"num_hidden_layers", cfg.n_layers},
      {"num_attention_heads", cfg.n_heads},
      {"num_key_value_heads", cfg.n_kv_heads},
      {"head_dim", cfg.head_dim},
      {"hidden_act", "silu"},
      {"rms_norm_eps", cfg.norm_eps},
      {"rope_theta", cfg.rope_theta},
      {"rope_scaling", rope_scaling},
      {"max_position_embeddings", cfg.context_length},
      {"vocab_size", vocab},
      {"tie_word_embeddings", !has_output},
      {"torch_dtype", TorchDType(opts.dtype)},
      {"use_cache", true},
  };
  // norm_eps is a float32 in GGUF: print the float, not its double widening.
  config["rms_norm_eps"] = std::stod(fmt::format("{}", static_cast<float>(cfg.norm_eps)));
  if (arch == "llama") {
    config["attention_bias"] = m.Find("blk.0.attn_q.bias") != nullptr;
    config["mlp_bias"] = false;
  }
  if (arch == "qwen2" || arch == "qwen3") config["use_sliding_window"] = false;
  if (arch == "mistral") config["sliding_window"] = md.GetInt("mistral.attention.sliding_window")
                                                        ? json(*md.GetInt("mistral.attention.sliding_window"))
                                                        : json(nullptr);
  json gen = {{"_from_model_config", true}};
  for (auto [key, field] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                            std::pair{"tokenizer.ggml.eos_token_id", "eos_token_id"},
                            std::pair{"tokenizer.ggml.padding_token_id", "pad_token_id"}}) {
    auto v = md.GetInt(key);
    if (!v || *v < 0 || *v >= vocab) continue;  // absent, or llama.cpp's uint32 -1 for "none"
    if (std::string_view(field) != "pad_token_id") config[field] = *v;
    gen[field] = *v;
  }
  res.config = config;
  // Decided before anything is written, like everything else.
  std::string skipped;
  ASSIGN_OR_RETURN(std::optional<store::VersionRow> tv, FindTokenizerVersion(store, version_id, vocab, &skipped));
  absl::StatusOr<TokenizerFiles> tokenizer_files = absl::NotFoundError("");
  if (!tv) tokenizer_files = TokenizerFilesFromGguf(md, cfg.context_length);

  // ---- The output directory ----
  Cleanup cleanup;
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      return bad(fmt::format("-o {} exists and is not a directory", dir));
    if (!fs::is_empty(dir, ec))
      return bad(fmt::format("-o {} exists and is not empty; give a new or empty directory", dir));
  } else {
    if (!fs::create_directories(dir, ec))
      return absl::InternalError(fmt::format("{}: cannot create: {}", dir, ec.message()));
    cleanup.created_dir = dir;
  }

  // ---- model.safetensors, streamed ----
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (Planned& p : plan) {
    p.offset = offset;
    header[p.hf_name] = {{"dtype", SafetensorsDType(opts.dtype)},
                         {"shape", p.src->shape},
                         {"data_offsets", {offset, offset + p.out_bytes}}};
    offset += p.out_bytes;
  }
  std::string hj = header.dump();
  hj.append((8 - hj.size() % 8) % 8, ' ');
  const std::string st_path = dir + "/model.safetensors";
  OutFile out;
  RETURN_IF_ERROR(out.Open(st_path));
  cleanup.files.push_back(st_path);
  const uint64_t hlen = hj.size();
  RETURN_IF_ERROR(out.Write(&hlen, 8));
  RETURN_IF_ERROR(out.Write(hj.data(), hj.size()));
  std::unique_ptr<Progress> bar;
  if (opts.progress || opts.progress_sink)
    bar = std::make_unique<Progress>(fmt::format("export {} as Hugging Face {}", ref, Name(opts.dtype)), offset,
                                     "B", opts.progress_sink);
  std::vector<uint8_t> in;
  std::vector<float> f32, perm;
  std::vector<uint8_t> conv;
  const uint64_t out_size = Info(opts.dtype).type_size;
  for (const Planned& p : plan) {
    RETURN_IF_ERROR(CheckCancel(opts.cancel, "export"));
    const store::TensorRow& t = *p.src;
    ASSIGN_OR_RETURN(std::vector<store::Extent> extents, reader->Locate(version_id, t.name));
    ASSIGN_OR_RETURN(uint64_t row_in, ByteSize(t.dtype, p.cols));
    const uint64_t unit = p.head_rows ? p.head_rows : 1;
    const uint64_t row_floats = std::max<uint64_t>(1, p.cols) * sizeof(float);
    const uint64_t rows_per_piece = std::max<uint64_t>(unit, PieceBytes() / row_floats / unit * unit);
    for (uint64_t r0 = 0; r0 < p.rows; r0 += rows_per_piece) {
      RETURN_IF_ERROR(CheckCancel(opts.cancel, "export"));
      const uint64_t nr = std::min(rows_per_piece, p.rows - r0);
      const uint64_t n = nr * p.cols;
      in.resize(nr * row_in);
      RETURN_IF_ERROR(Annotate(reader->ReadRange(extents, r0 * row_in, in), fmt::format("tensor '{}'", t.name)));
      f32.resize(n);
      RETURN_IF_ERROR(Annotate(DecodeToF32(t.dtype, in, f32), fmt::format("tensor '{}'", t.name)));
      const float* src = f32.data();
      if (p.head_rows) {
        // GGUF row h*hd + 2i + s is HF row h*hd + s*hd/2 + i.
        perm.resize(n);
        const uint64_t hd = p.head_rows, half = hd / 2;
        for (uint64_t h = 0; h < nr / hd; ++h)
          for (uint64_t i = 0; i < half; ++i)
            for (uint64_t s = 0; s < 2; ++s)
              std::memcpy(&perm[(h * hd + s * half + i) * p.cols], &f32[(h * hd + 2 * i + s) * p.cols],
                          p.cols * sizeof(float));
        src = perm.data();
      }
      conv.resize(n * out_size);
      if (opts.dtype == DType::kF32) {
        std::memcpy(conv.data(), src, n * 4);
      } else {
        auto* o = reinterpret_cast<uint16_t*>(conv.data());
        if (opts.dtype == DType::kBF16)
          for (uint64_t i = 0; i < n; ++i) o[i] = F32ToBF16(src[i]);
        else
          for (uint64_t i = 0; i < n; ++i) o[i] = runtime::F32ToF16(src[i]);
      }
      RETURN_IF_ERROR(out.Write(conv.data(), conv.size()));
      if (bar) bar->Add(conv.size());
      res.max_buffer_bytes = std::max<uint64_t>(res.max_buffer_bytes, n * sizeof(float));
    }
    ++res.tensors;
    res.tensor_bytes += p.out_bytes;
  }
  RETURN_IF_ERROR(out.Close());
  if (bar) bar->Finish();
  res.files.push_back("model.safetensors");
  res.input_bytes = reader->bytes_read();

  // ---- config, generation config, tokenizer ----
  RETURN_IF_ERROR(WriteText(dir + "/config.json", config.dump(2) + "\n", &cleanup));
  res.files.push_back("config.json");
  RETURN_IF_ERROR(WriteText(dir + "/generation_config.json", gen.dump(2) + "\n", &cleanup));
  res.files.push_back("generation_config.json");
  if (tv) {
    ASSIGN_OR_RETURN(std::vector<store::FileRow> files, store.ListFiles(tv->id));
    RETURN_IF_ERROR(CopyFiles(store, tv->id, files, dir, &cleanup, &res.files));
    res.tokenizer_from = tv->ref();
  } else if (tokenizer_files.ok()) {
    RETURN_IF_ERROR(WriteText(dir + "/tokenizer.json", tokenizer_files->tokenizer_json, &cleanup));
    RETURN_IF_ERROR(WriteText(dir + "/tokenizer_config.json", tokenizer_files->tokenizer_config_json, &cleanup));
    res.files.push_back("tokenizer.json");
    res.files.push_back("tokenizer_config.json");
    res.tokenizer_from = "gguf";
  } else {
    res.tokenizer_note = fmt::format(
        "no tokenizer written: no version in {}'s lineage was ingested with a tokenizer.json, and its GGUF "
        "vocabulary has no exact tokenizer.json form here ({}); copy the original model's tokenizer files into {}",
        ref, Msg(tokenizer_files.status()), dir);
    if (!skipped.empty()) res.tokenizer_note += fmt::format(" (passed over: {})", skipped);
  }
  cleanup.done = true;
  return res;
}

}  // namespace hart::workshop

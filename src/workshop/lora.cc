// ImportLora / MergeLora (see lora.h).
#include "workshop/lora.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "core/decode.h"
#include "core/quote.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/gguf.h"
#include "formats/model_source.h"
#include "formats/safetensors.h"
#include "runtime/kernels.h"
#include "workshop/merge_math.h"

namespace hart::workshop {
namespace {

namespace fs = std::filesystem;

std::string ShapeText(const Shape& s) { return nlohmann::json(s).dump(); }

// Hugging Face module path -> GGUF tensor stem.
constexpr std::pair<std::string_view, std::string_view> kModules[] = {
    {"self_attn.q_proj", "attn_q"},  {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},  {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_proj", "ffn_gate"},   {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" ->
// ("blk.3.attn_q.weight", 'A').
absl::StatusOr<std::pair<std::string, char>> PeftName(std::string_view n, std::string_view file) {
  std::string_view s = n;
  for (std::string_view p : {"base_model.model.", "model."})
    if (s.starts_with(p)) s.remove_prefix(p.size());
  char which = 0;
  for (auto [suffix, w] : {std::pair<std::string_view, char>{".lora_A.weight", 'A'},
                           std::pair<std::string_view, char>{".lora_B.weight", 'B'}})
    if (s.ends_with(suffix)) {
      which = w;
      s.remove_suffix(suffix.size());
    }
  if (!which || !s.starts_with("layers."))
    return absl::InvalidArgumentError(fmt::format(
        "{}: tensor {}: not a LoRA A/B matrix of a decoder layer (only layers.N attention and MLP "
        "projections are supported)",
        file, Quote(n)));
  s.remove_prefix(7);
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos || dot == 0)
    return absl::InvalidArgumentError(fmt::format("{}: tensor {}: no layer number", file, Quote(n)));
  int64_t layer = 0;
  for (size_t i = 0; i < dot; ++i) {
    if (s[i] < '0' || s[i] > '9' || layer > 100000)
      return absl::InvalidArgumentError(fmt::format("{}: tensor {}: bad layer number", file, Quote(n)));
    layer = layer * 10 + (s[i] - '0');
  }
  const std::string_view module = s.substr(dot + 1);
  for (auto [hf, gguf] : kModules)
    if (module == hf) return std::make_pair(fmt::format("blk.{}.{}.weight", layer, gguf), which);
  return absl::InvalidArgumentError(fmt::format(
      "{}: tensor {}: module {} is not supported (q/k/v/o_proj, gate/up/down_proj)", file, Quote(n),
      Quote(module)));
}

// Row i of the GGUF (permuted) q/k matrix is row Perm(i) of the Hugging Face
// one: llama.cpp's converter groups each head's two rotary halves
// interleaved.
int64_t PermRow(int64_t i, int64_t rows, int64_t n_head) {
  const int64_t per = rows / n_head, half = per / 2;
  const int64_t h = i / per, r = i % per;
  const int64_t j = r / 2, s = r % 2;
  return h * per + s * half + j;
}

struct Pair {
  std::string target;  // base tensor
  Shape a_shape, b_shape;
  // Where the floats come from: a file's bytes (PEFT / GGUF file).
  DType a_type = DType::kF32, b_type = DType::kF32;
  std::span<const uint8_t> a_bytes, b_bytes;
  int64_t permute_heads = 0;  // > 0: permute B's rows with this head count
};

absl::StatusOr<std::vector<float>> ToF32(DType t, std::span<const uint8_t> bytes, const Shape& shape) {
  ASSIGN_OR_RETURN(uint64_t n, NumElements(shape));
  std::vector<float> out(n);
  RETURN_IF_ERROR(DecodeToF32(t, bytes, std::span<float>(out.data(), n)));
  return out;
}

void PutF32(std::span<uint8_t> out, const std::vector<float>& v) {
  std::memcpy(out.data(), v.data(), v.size() * 4);
}

// Checks a pair's shapes against the base and the rank.
absl::Status CheckPair(const SourceModel& base, const Pair& p, int64_t* rank, std::string_view where) {
  const store::TensorRow* t = base.Find(p.target);
  if (!t)
    return absl::InvalidArgumentError(fmt::format(
        "{}: targets {}, which base {} does not have: a LoRA for another base?", where, p.target,
        base.version.ref()));
  if (t->shape.size() != 2 || p.a_shape.size() != 2 || p.b_shape.size() != 2)
    return absl::InvalidArgumentError(fmt::format("{}: {}: A, B and the base tensor must be matrices",
                                                  where, p.target));
  const int64_t r = p.a_shape[0];
  if (static_cast<int64_t>(p.b_shape[1]) != r || p.a_shape[1] != t->shape[1] || p.b_shape[0] != t->shape[0])
    return absl::InvalidArgumentError(fmt::format(
        "{}: {}: A is {} and B is {} but base {} has it as {} (A must be [r, {}], B [{}, r]): a "
        "LoRA for another base?",
        where, p.target, ShapeText(p.a_shape), ShapeText(p.b_shape), base.version.ref(),
        ShapeText(t->shape), t->shape[1], t->shape[0]));
  if (*rank == 0) *rank = r;
  if (r != *rank)
    return absl::InvalidArgumentError(
        fmt::format("{}: {}: rank {} differs from the adapter's rank {}", where, p.target, r, *rank));
  return absl::OkStatus();
}

std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), {});
  return s;
}

}  // namespace

absl::StatusOr<LoraResult> ImportLora(store::Store& store, const std::string& path,
                                      std::string_view base_ref, const DeriveOptions& opts) {
  ASSIGN_OR_RETURN(SourceModel base, OpenSource(store, base_ref));
  const std::string arch = base.header.metadata.GetString("general.architecture").value_or("");
  const int64_t n_head = base.header.metadata.GetInt(arch + ".attention.head_count").value_or(0);
  const int64_t n_head_kv =
      base.header.metadata.GetInt(arch + ".attention.head_count_kv").value_or(n_head);
  const bool permute = arch == "llama" || arch == "mistral";

  LoraResult res;
  res.base_ref = base.version.ref();
  formats::ModelSource src;
  std::vector<Pair> pairs;
  nlohmann::json params = nlohmann::json::object();
  std::error_code ec;
  const bool is_gguf = path.ends_with(".gguf");
  if (is_gguf) {
    res.source = "gguf";
    ASSIGN_OR_RETURN(src, formats::OpenModel(path));
    const nlohmann::json& md = src.metadata;
    if (md.value("general.type", "") != "adapter" || md.value("adapter.type", "") != "lora")
      return absl::InvalidArgumentError(fmt::format(
          "{}: general.type: not a LoRA adapter (want general.type = adapter, adapter.type = lora)",
          path));
    if (!md.contains("adapter.lora.alpha") || !md["adapter.lora.alpha"].is_number())
      return absl::InvalidArgumentError(fmt::format("{}: adapter.lora.alpha: missing", path));
    res.alpha = md["adapter.lora.alpha"].get<double>();
    const std::string a_arch = md.value("general.architecture", "");
    if (a_arch != arch)
      return absl::InvalidArgumentError(fmt::format(
          "{}: general.architecture: the adapter is for '{}' but base {} is '{}'", path, a_arch,
          res.base_ref, arch));
    std::map<std::string, Pair> by;
    for (size_t i = 0; i < src.tensors.size(); ++i) {
      const formats::TensorDesc& t = src.tensors[i];
      const bool a = t.name.ends_with(".lora_a"), b = t.name.ends_with(".lora_b");
      if (!a && !b)
        return absl::InvalidArgumentError(
            fmt::format("{}: tensor {}: not a .lora_a / .lora_b tensor", path, Quote(t.name)));
      Pair& p = by[t.name.substr(0, t.name.size() - 7)];
      p.target = t.name.substr(0, t.name.size() - 7);
      (a ? p.a_shape : p.b_shape) = t.shape;
      (a ? p.a_type : p.b_type) = t.dtype;
      (a ? p.a_bytes : p.b_bytes) = src.TensorBytes(i);
    }
    for (auto& [name, p] : by) {
      if (p.a_bytes.empty() || p.b_bytes.empty())
        return absl::InvalidArgumentError(fmt::format("{}: {}: lora_a or lora_b missing", path, name));
      pairs.push_back(std::move(p));
    }
  } else {
    res.source = "peft";
    const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
    const std::string st = fs::is_directory(path, ec) ? (dir / "adapter_model.safetensors").string() : path;
    const std::string cfg_path = (dir / "adapter_config.json").string();
    if (!fs::exists(cfg_path, ec))
      return absl::NotFoundError(fmt::format("{}: missing (a PEFT adapter needs it beside {})",
                                             cfg_path, st));
    nlohmann::json cfg = nlohmann::json::parse(ReadText(cfg_path), nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object())
      return absl::InvalidArgumentError(fmt::format("{}: not a JSON object", cfg_path));
    auto field_error = [&](std::string_view f, std::string_view what) {
      return absl::InvalidArgumentError(fmt::format("{}: {}: {}", cfg_path, f, what));
    };
    if (!cfg.contains("r") || !cfg["r"].is_number_integer() || cfg["r"].get<int64_t>() <= 0)
      return field_error("r", "missing or not a positive integer");
    if (!cfg.contains("lora_alpha") || !cfg["lora_alpha"].is_number())
      return field_error("lora_alpha", "missing or not a number");
    if (cfg.value("use_rslora", false)) return field_error("use_rslora", "rank-stabilized LoRA is not supported");
    if (cfg.value("use_dora", false)) return field_error("use_dora", "DoRA is not supported");
    if (cfg.value("fan_in_fan_out", false)) return field_error("fan_in_fan_out", "not supported");
    if (cfg.contains("bias") && cfg["bias"] != "none") return field_error("bias", "only \"none\" is supported");
    const int64_t r = cfg["r"].get<int64_t>();
    res.alpha = cfg["lora_alpha"].get<double>();
    params["r"] = r;
    params["lora_alpha"] = res.alpha;
    if (cfg.contains("target_modules")) params["target_modules"] = cfg["target_modules"];
    if (cfg.contains("base_model_name_or_path"))
      params["base_model_name_or_path"] = cfg["base_model_name_or_path"];
    ASSIGN_OR_RETURN(src, formats::OpenModel(st));
    std::map<std::string, Pair> by;
    for (size_t i = 0; i < src.tensors.size(); ++i) {
      const formats::TensorDesc& t = src.tensors[i];
      ASSIGN_OR_RETURN(auto nm, PeftName(t.name, st));
      if (!CanDecode(t.dtype))
        return absl::InvalidArgumentError(
            fmt::format("{}: tensor {}: type {} is not a float type", st, Quote(t.name), Name(t.dtype)));
      Pair& p = by[nm.first];
      p.target = nm.first;
      const bool a = nm.second == 'A';
      (a ? p.a_shape : p.b_shape) = t.shape;
      (a ? p.a_type : p.b_type) = t.dtype;
      (a ? p.a_bytes : p.b_bytes) = src.TensorBytes(i);
      if (permute && (p.target.find(".attn_q.") != std::string::npos ||
                      p.target.find(".attn_k.") != std::string::npos))
        p.permute_heads = p.target.find(".attn_q.") != std::string::npos ? n_head : n_head_kv;
    }
    for (auto& [name, p] : by) {
      if (p.a_bytes.empty() || p.b_bytes.empty())
        return absl::InvalidArgumentError(
            fmt::format("{}: {}: lora_A or lora_B missing", st, Quote(name)));
      if (p.a_shape.size() == 2 && static_cast<int64_t>(p.a_shape[0]) != r)
        return absl::InvalidArgumentError(fmt::format(
            "{}: {}: lora_A has rank {} but adapter_config.json r is {}", st, name, p.a_shape[0], r));
      pairs.push_back(std::move(p));
    }
  }
  if (pairs.empty()) return absl::InvalidArgumentError(fmt::format("{}: no LoRA tensors", path));
  for (const Pair& p : pairs) {
    RETURN_IF_ERROR(CheckPair(base, p, &res.rank, path));
    if (p.permute_heads > 0 && (p.b_shape[0] % (2 * p.permute_heads)) != 0)
      return absl::InvalidArgumentError(fmt::format(
          "{}: {}: {} rows do not split into {} heads", path, p.target, p.b_shape[0], p.permute_heads));
  }
  res.pairs = pairs.size();

  Derivation d;
  SetMetadata(&d.metadata, "general.architecture", Str(arch));
  SetMetadata(&d.metadata, "general.type", Str("adapter"));
  SetMetadata(&d.metadata, "general.name", Str(fs::path(path).filename().string()));
  SetMetadata(&d.metadata, "adapter.type", Str("lora"));
  SetMetadata(&d.metadata, "adapter.lora.alpha",
              formats::GgufValue{formats::GgufType::kFloat32, res.alpha});
  // src's mapped files stay alive through the callbacks.
  auto keep = std::make_shared<formats::ModelSource>(std::move(src));
  for (const Pair& p : pairs) {
    OutputTensor a;
    a.name = p.target + ".lora_a";
    a.dtype = DType::kF32;
    a.shape = p.a_shape;
    a.compute = [keep, p](std::span<uint8_t> out) -> absl::Status {
      ASSIGN_OR_RETURN(std::vector<float> v, ToF32(p.a_type, p.a_bytes, p.a_shape));
      PutF32(out, v);
      return absl::OkStatus();
    };
    OutputTensor b;
    b.name = p.target + ".lora_b";
    b.dtype = DType::kF32;
    b.shape = p.b_shape;
    b.compute = [keep, p](std::span<uint8_t> out) -> absl::Status {
      ASSIGN_OR_RETURN(std::vector<float> v, ToF32(p.b_type, p.b_bytes, p.b_shape));
      if (p.permute_heads > 0) {
        const int64_t rows = p.b_shape[0], cols = p.b_shape[1];
        std::vector<float> perm(v.size());
        for (int64_t i = 0; i < rows; ++i)
          std::memcpy(perm.data() + i * cols, v.data() + PermRow(i, rows, p.permute_heads) * cols,
                      cols * 4);
        v.swap(perm);
      }
      PutF32(out, v);
      return absl::OkStatus();
    };
    d.tensors.push_back(std::move(a));
    d.tensors.push_back(std::move(b));
  }
  d.method = "lora-import";
  params["source"] = res.source;
  params["path"] = fs::path(path).filename().string();
  params["alpha"] = res.alpha;
  params["rank"] = res.rank;
  d.parameters = params;
  d.inputs = {base.version.id};
  DeriveOptions o = opts;
  if (o.model.empty()) o.model = base.version.model + "-lora";
  if (!o.parent) o.parent = store::VersionRef{base.version.model, base.version.number};
  ASSIGN_OR_RETURN(res.derive, Derive(store, d, o));
  return res;
}

namespace {

// An adapter version opened against a base: both versions, the adapter's
// alpha and rank, and its A / B rows by target (every pair shape-checked
// against the base).
struct OpenedAdapter {
  SourceModel base, ad;
  LoraResult res;
  std::map<std::string, std::pair<const store::TensorRow*, const store::TensorRow*>> by;
};

absl::StatusOr<std::unique_ptr<OpenedAdapter>> OpenAdapter(store::Store& store, std::string_view base_ref,
                                                           std::string_view adapter_ref, double scale) {
  auto o = std::make_unique<OpenedAdapter>();
  ASSIGN_OR_RETURN(o->base, OpenSource(store, base_ref));
  ASSIGN_OR_RETURN(o->ad, OpenSource(store, adapter_ref));
  const SourceModel& base = o->base;
  const SourceModel& ad = o->ad;
  LoraResult& res = o->res;
  auto& by = o->by;
  res.base_ref = base.version.ref();
  res.source = "store";
  const auto& md = ad.header.metadata;
  if (md.GetString("general.type").value_or("") != "adapter" ||
      md.GetString("adapter.type").value_or("") != "lora")
    return absl::InvalidArgumentError(fmt::format(
        "ADAPTER {}: not a LoRA adapter (import one with `hart lora PATH --base REF`)",
        ad.version.ref()));
  auto alpha = md.GetFloat("adapter.lora.alpha");
  if (!alpha)
    return absl::InvalidArgumentError(
        fmt::format("ADAPTER {}: adapter.lora.alpha: missing", ad.version.ref()));
  res.alpha = *alpha;
  const std::string arch = base.header.metadata.GetString("general.architecture").value_or("");
  if (md.GetString("general.architecture").value_or("") != arch)
    return absl::InvalidArgumentError(fmt::format(
        "ADAPTER {}: general.architecture: '{}' but base {} is '{}': a LoRA for another base",
        ad.version.ref(), md.GetString("general.architecture").value_or(""), res.base_ref, arch));
  if (!std::isfinite(scale)) return absl::InvalidArgumentError("SCALE: not a finite number");

  for (const store::TensorRow& t : ad.tensors) {
    const bool a = t.name.ends_with(".lora_a"), b = t.name.ends_with(".lora_b");
    if (!a && !b) continue;
    auto& e = by[t.name.substr(0, t.name.size() - 7)];
    (a ? e.first : e.second) = &t;
  }
  for (const auto& [target, ab] : by) {
    if (!ab.first || !ab.second)
      return absl::InvalidArgumentError(
          fmt::format("ADAPTER {}: {}: lora_a or lora_b missing", ad.version.ref(), target));
    Pair p;
    p.target = target;
    p.a_shape = ab.first->shape;
    p.b_shape = ab.second->shape;
    RETURN_IF_ERROR(CheckPair(base, p, &res.rank, fmt::format("ADAPTER {}", ad.version.ref())));
  }
  if (by.empty())
    return absl::InvalidArgumentError(fmt::format("ADAPTER {}: no LoRA tensors", ad.version.ref()));
  res.pairs = by.size();
  return o;
}

}  // namespace

absl::StatusOr<std::vector<runtime::LoraTensor>> ReadLoraForRun(store::Store& store, std::string_view base_ref,
                                                                 std::string_view adapter_ref, double scale) {
  ASSIGN_OR_RETURN(auto o, OpenAdapter(store, base_ref, adapter_ref, scale));
  const double coef = scale * o->res.alpha / static_cast<double>(o->res.rank);
  TensorReader reader(store);
  std::vector<runtime::LoraTensor> out;
  for (const auto& [target, ab] : o->by) {
    runtime::LoraTensor t;
    t.tensor = target;
    t.rank = o->res.rank;
    t.coef = static_cast<float>(coef);
    RETURN_IF_ERROR(reader.ReadF32(o->ad.version.id, *ab.first, &t.a));
    RETURN_IF_ERROR(reader.ReadF32(o->ad.version.id, *ab.second, &t.b));
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<LoraMergePlan> PlanMergeLora(store::Store& store, std::string_view base_ref,
                                            std::string_view adapter_ref, double scale) {
  ASSIGN_OR_RETURN(auto opened, OpenAdapter(store, base_ref, adapter_ref, scale));
  const SourceModel& base = opened->base;
  const SourceModel& ad = opened->ad;
  LoraResult res = opened->res;
  const auto& by = opened->by;
  for (const auto& [target, ab] : by) {
    const store::TensorRow* w = base.Find(target);
    if (w->dtype != DType::kF32 && w->dtype != DType::kF16 && w->dtype != DType::kBF16)
      return absl::InvalidArgumentError(fmt::format(
          "BASE {}: {} is {}: merge-lora writes float tensors (F32, F16, BF16) only",
          res.base_ref, target, Name(w->dtype)));
  }
  const double coef = scale * res.alpha / static_cast<double>(res.rank);

  Derivation d;
  d.metadata = base.header.metadata;
  d.alignment = base.header.alignment;
  auto reader = std::make_shared<TensorReader>(store);
  const int64_t bid = base.version.id, aid = ad.version.id;
  for (const store::TensorRow& t : base.tensors) {
    OutputTensor o;
    o.name = t.name;
    o.dtype = t.dtype;
    o.shape = t.shape;
    auto it = by.find(t.name);
    if (it == by.end()) {
      o.taken = TensorOrigin{bid, t.name};
    } else {
      const store::TensorRow wr = t, ar = *it->second.first, br = *it->second.second;
      o.pieces = [reader, bid, aid, wr, ar, br, coef](const PieceSink& emit) -> absl::Status {
        // A and B (rank r) whole; W a piece of rows at a time (about
        // PieceBytes() of float32), each handed to the scratch file as it
        // is made.
        std::vector<float> w, a, b;
        RETURN_IF_ERROR(reader->ReadF32(aid, ar, &a));
        RETURN_IF_ERROR(reader->ReadF32(aid, br, &b));
        ASSIGN_OR_RETURN(std::vector<store::Extent> extents, reader->Locate(bid, wr.name));
        const int64_t rows = wr.shape[0], cols = wr.shape[1], r = ar.shape[0];
        ASSIGN_OR_RETURN(uint64_t in_row_bytes, ByteSize(wr.dtype, static_cast<uint64_t>(cols)));
        const int64_t piece_rows = std::max<int64_t>(
            1, static_cast<int64_t>(PieceBytes() / (4 * std::max<int64_t>(1, cols))));
        const float c = static_cast<float>(coef);
        std::vector<uint8_t> raw, out;
        for (int64_t p0 = 0; p0 < rows; p0 += piece_rows) {
          const int64_t np = std::min(piece_rows, rows - p0);
          raw.resize(np * in_row_bytes);
          RETURN_IF_ERROR(reader->ReadRange(extents, p0 * in_row_bytes, raw));
          w.resize(np * cols);
          RETURN_IF_ERROR(DecodeToF32(wr.dtype, raw, std::span<float>(w.data(), w.size())));
          for (int64_t o = 0; o < np; ++o) {
            float* row = w.data() + o * cols;
            for (int64_t k = 0; k < r; ++k) {
              const float f = c * b[(p0 + o) * r + k];
              const float* ak = a.data() + k * cols;
              for (int64_t j = 0; j < cols; ++j) row[j] += f * ak[j];
            }
          }
          if (wr.dtype == DType::kF32) {
            out.resize(w.size() * 4);
            std::memcpy(out.data(), w.data(), w.size() * 4);
          } else {
            out.resize(w.size() * 2);
            for (size_t i = 0; i < w.size(); ++i) {
              const uint16_t h = wr.dtype == DType::kF16 ? runtime::F32ToF16(w[i]) : F32ToBF16(w[i]);
              std::memcpy(out.data() + 2 * i, &h, 2);
            }
          }
          RETURN_IF_ERROR(emit(out));
        }
        return absl::OkStatus();
      };
    }
    d.tensors.push_back(std::move(o));
  }
  d.method = "merge-lora";
  d.parameters = {{"scale", scale}, {"alpha", res.alpha}, {"rank", res.rank}};
  d.inputs = {bid, aid};
  LoraMergePlan plan;
  plan.derivation = std::move(d);
  plan.result = std::move(res);
  plan.base = store::VersionRef{base.version.model, base.version.number};
  return plan;
}

absl::StatusOr<LoraResult> MergeLora(store::Store& store, std::string_view base_ref,
                                     std::string_view adapter_ref, double scale,
                                     const DeriveOptions& opts) {
  ASSIGN_OR_RETURN(LoraMergePlan plan, PlanMergeLora(store, base_ref, adapter_ref, scale));
  DeriveOptions o = opts;
  if (o.model.empty()) o.model = plan.base.model + "-merged";
  if (!o.parent) o.parent = plan.base;
  LoraResult res = std::move(plan.result);
  ASSIGN_OR_RETURN(res.derive, Derive(store, plan.derivation, o));
  return res;
}

}  // namespace hart::workshop

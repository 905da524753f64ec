// The quantize recipe: which tensors get which type, and the computation.
#include "workshop/quantize.h"

#include <fnmatch.h>

#include <memory>

#include "core/decode.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "fmt/format.h"
#include "runtime/kernels.h"
#include "workshop/quantize_rows.h"

namespace hart::workshop {
namespace {

// llama.cpp's llama_ftype values written to general.file_type.
struct TypeSpec {
  const char* name;
  DType base;     // every quantized matrix (before preset and fallbacks)
  bool preset;    // the _m presets choose per tensor
  uint32_t ftype;
};
constexpr TypeSpec kTypes[] = {
    {"q4_0", DType::kQ4_0, false, 2},  {"q4_1", DType::kQ4_1, false, 3},
    {"q8_0", DType::kQ8_0, false, 7},  {"q5_0", DType::kQ5_0, false, 8},
    {"q5_1", DType::kQ5_1, false, 9},
    // llama-quantize's "Q4_K" and "Q5_K" are aliases of Q4_K_M and Q5_K_M,
    // so --pure with them records those file types.
    {"q4_k", DType::kQ4_K, false, 15}, {"q5_k", DType::kQ5_K, false, 17},
    {"q6_k", DType::kQ6_K, false, 18}, {"q4_k_m", DType::kQ4_K, true, 15},
    {"q5_k_m", DType::kQ5_K, true, 17},
};

const TypeSpec* FindType(std::string_view name) {
  for (const TypeSpec& t : kTypes)
    if (name == t.name) return &t;
  return nullptr;
}

bool EndsWith(std::string_view s, std::string_view suffix) { return s.ends_with(suffix); }
bool Contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// llama.cpp quantizes tensors named *weight with two or more dimensions,
// except norms, MoE routers, position and token-type embeddings and the
// recurrent-state tensors.
bool IsQuantizable(const store::TensorRow& t) {
  if (!EndsWith(t.name, "weight") || t.shape.size() < 2) return false;
  for (std::string_view skip : {"_norm.weight", "ffn_gate_inp.weight", "pos_embd", "token_types",
                                "ssm_conv1d", "time_mix_", "attn_rel_b", "altup", "laurel"})
    if (Contains(t.name, skip)) return false;
  return true;
}

bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// Fallbacks for rows that a type's block does not divide (llama.cpp's
// incompatible-tensor conversion).
DType Fallback(DType t, uint64_t row, std::string* why) {
  DType out = t;
  if ((t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K) && row % 256 != 0) {
    out = t == DType::kQ4_K ? DType::kQ5_0 : t == DType::kQ5_K ? DType::kQ5_1 : DType::kQ8_0;
    *why = fmt::format("fallback: row {} is not a multiple of 256", row);
  }
  if (row % Info(out).block_size != 0) {
    out = DType::kF16;
    *why = fmt::format("fallback: row {} fits no {} block", row, Name(t));
  }
  return out;
}

bool KeepMatch(const std::vector<std::string>& keep, const std::string& name) {
  for (const std::string& p : keep)
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

}  // namespace

std::vector<std::string> QuantizeTypeNames() {
  std::vector<std::string> out;
  for (const TypeSpec& t : kTypes) out.push_back(t.name);
  return out;
}

absl::StatusOr<std::vector<QuantizePlanRow>> PlanQuantize(const SourceModel& src,
                                                         const QuantizeParams& p) {
  const TypeSpec* spec = FindType(p.type);
  if (!spec)
    return absl::InvalidArgumentError(fmt::format("type: unknown quantization type '{}' (one of {})",
                                                  p.type, fmt::join(QuantizeTypeNames(), ", ")));
  const bool has_output = src.Find("output.weight") != nullptr;
  int n_attn_v = 0, n_ffn_down = 0;
  for (const store::TensorRow& t : src.tensors) {
    if (Contains(t.name, "attn_v.weight")) ++n_attn_v;
    if (Contains(t.name, "ffn_down")) ++n_ffn_down;
  }
  int i_attn_v = 0, i_ffn_down = 0;
  std::vector<QuantizePlanRow> plan;
  for (const store::TensorRow& t : src.tensors) {
    QuantizePlanRow r{t.name, t.dtype, t.dtype, ""};
    if (KeepMatch(p.keep, t.name)) {
      r.why = "keep";
    } else if (!IsQuantizable(t)) {
      r.why = "not a weight matrix";
    } else if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
      return absl::InvalidArgumentError(fmt::format(
          "tensor '{}' is {}: quantize starts from F32, F16 or BF16 (keep it with --keep)", t.name,
          Name(t.dtype)));
    } else {
      DType to = spec->base;
      r.why = spec->preset ? "preset" : "type";
      if (spec->preset) {
        const bool is_output = t.name == "output.weight" || (!has_output && t.name == "token_embd.weight");
        if (is_output) {
          to = t.shape.back() % 256 != 0 ? DType::kQ8_0 : DType::kQ6_K;
          r.why = "preset: output";
        } else if (Contains(t.name, "attn_v.weight")) {
          if (UseMoreBits(i_attn_v, n_attn_v)) {
            to = DType::kQ6_K;
            r.why = "preset: more bits for attn_v";
          }
        } else if (Contains(t.name, "ffn_down")) {
          if (UseMoreBits(i_ffn_down, n_ffn_down)) {
            to = DType::kQ6_K;
            r.why = "preset: more bits for ffn_down";
          }
        } else if (Contains(t.name, "attn_qkv.weight")) {
          to = spec->base == DType::kQ4_K ? DType::kQ5_K : DType::kQ6_K;
          r.why = "preset: attn_qkv";
        }
      }
      r.to = Fallback(to, t.shape.back(), &r.why);
    }
    if (Contains(t.name, "attn_v.weight")) ++i_attn_v;
    if (Contains(t.name, "ffn_down")) ++i_ffn_down;
    plan.push_back(std::move(r));
  }
  return plan;
}

absl::StatusOr<Derivation> BuildQuantize(store::Store& store, const SourceModel& src,
                                         const QuantizeParams& p) {
  ASSIGN_OR_RETURN(std::vector<QuantizePlanRow> plan, PlanQuantize(src, p));
  const TypeSpec* spec = FindType(p.type);
  Derivation d;
  d.method = "quantize";
  d.parameters = {{"type", p.type}, {"keep", p.keep}};
  d.inputs = {src.version.id};
  d.metadata = src.header.metadata;
  d.alignment = src.header.alignment;
  std::erase_if(d.metadata.entries,
                [](const formats::GgufKV& kv) { return kv.key == "general.alignment"; });
  SetMetadata(&d.metadata, "general.quantization_version", U32(2));
  SetMetadata(&d.metadata, "general.file_type", U32(spec->ftype));

  auto reader = std::make_shared<TensorReader>(store);
  d.reader = reader;
  const int64_t vid = src.version.id;
  for (size_t i = 0; i < plan.size(); ++i) {
    const store::TensorRow& t = src.tensors[i];
    OutputTensor o;
    o.name = t.name;
    o.dtype = plan[i].to;
    o.shape = t.shape;
    if (plan[i].to == t.dtype) {
      o.taken = TensorOrigin{vid, t.name};
    } else {
      const DType to = plan[i].to;
      const store::TensorRow row = t;
      o.pieces = [reader, vid, row, to](const PieceSink& emit) -> absl::Status {
        // A piece of whole rows at a time (about PieceBytes() of input):
        // read, decoded to float32 and quantized in parallel sub-pieces,
        // handed to the scratch file; a tensor is never held whole.
        ASSIGN_OR_RETURN(std::vector<store::Extent> extents, reader->Locate(vid, row.name));
        ASSIGN_OR_RETURN(uint64_t elems, NumElements(row.shape));
        const uint64_t n_per_row = row.shape.back();
        const uint64_t rows = n_per_row ? elems / n_per_row : 0;
        ASSIGN_OR_RETURN(uint64_t in_row_bytes, ByteSize(row.dtype, n_per_row));
        ASSIGN_OR_RETURN(uint64_t row_bytes, ByteSize(to, n_per_row));
        const uint64_t piece_rows =
            std::max<uint64_t>(1, PieceBytes() / std::max<uint64_t>(1, in_row_bytes));
        std::vector<uint8_t> raw, out;
        for (uint64_t p0 = 0; p0 < rows; p0 += piece_rows) {
          const uint64_t np = std::min(piece_rows, rows - p0);
          raw.resize(np * in_row_bytes);
          RETURN_IF_ERROR(reader->ReadRange(extents, p0 * in_row_bytes, raw));
          out.resize(np * row_bytes);
          const uint64_t subs = std::min<uint64_t>(np, 16);
          std::vector<absl::Status> st(subs);
          ThreadPool::Default().ParallelFor(subs, [&](size_t k) {
            const uint64_t r0 = np * k / subs, r1 = np * (k + 1) / subs;
            std::vector<float> x((r1 - r0) * n_per_row);
            st[k] = DecodeToF32(row.dtype, std::span<const uint8_t>(raw).subspan(r0 * in_row_bytes, (r1 - r0) * in_row_bytes), x);
            if (!st[k].ok()) return;
            if (to == DType::kF16) {
              auto* h = reinterpret_cast<uint16_t*>(out.data()) + r0 * n_per_row;
              for (size_t e = 0; e < x.size(); ++e) h[e] = runtime::F32ToF16(x[e]);
              return;
            }
            st[k] = QuantizeRows(to, x, std::span<uint8_t>(out).subspan(r0 * row_bytes, (r1 - r0) * row_bytes),
                                 (p0 + r0) * n_per_row);
          });
          for (const absl::Status& s : st) RETURN_IF_ERROR(s);
          RETURN_IF_ERROR(emit(out));
        }
        return absl::OkStatus();
      };
    }
    d.tensors.push_back(std::move(o));
  }
  return d;
}

}  // namespace hart::workshop

// `hart quantize`: a version quantized from F32, F16 or BF16 weights, with
// llama.cpp's choices of which tensors are quantized and to what.
//
//  - A single type (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)
//    quantizes every matrix to that type, as `llama-quantize --pure` does.
//  - The presets q4_k_m and q5_k_m choose per tensor as llama.cpp's
//    llama_tensor_get_type does for those file types: output.weight (or
//    the tied token_embd) Q6_K; attn_v and ffn_down of the first and last
//    eighth of the layers and every third one between Q6_K; attn_qkv one
//    step up.
//  - A K-quant whose rows are not a multiple of 256 falls back as llama.cpp
//    does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), and a row that fits
//    no block at all is written as F16.
//  - Vectors (norms, biases) and tensors matching a --keep pattern stay as
//    they are (taken unchanged: no new bytes).
#pragma once

#include <string>
#include <vector>

#include "workshop/derive.h"

namespace hart::workshop {

struct QuantizeParams {
  std::string type;                // "q8_0", ..., "q4_k_m", "q5_k_m"
  std::vector<std::string> keep;   // glob patterns (fnmatch) of tensor names left as they are
};

// The per-tensor plan, for --dry-run style listings and tests.
struct QuantizePlanRow {
  std::string name;
  DType from = DType::kF32;
  DType to = DType::kF32;  // == from when taken unchanged
  std::string why;         // "preset", "fallback: row 300 not a multiple of 256", "vector", "keep"
};

// The plan alone (no bytes read): InvalidArgument for an unknown type, a
// tensor quantize cannot start from (already quantized).
absl::StatusOr<std::vector<QuantizePlanRow>> PlanQuantize(const SourceModel& src,
                                                         const QuantizeParams& p);

// The derivation (method "quantize", parameters {"type", "keep"}, inputs
// [the source]); computing a tensor reads it as float32 and quantizes its
// rows in parallel.
absl::StatusOr<Derivation> BuildQuantize(store::Store& store, const SourceModel& src,
                                         const QuantizeParams& p);

// The names `hart quantize --type` accepts.
std::vector<std::string> QuantizeTypeNames();

}  // namespace hart::workshop

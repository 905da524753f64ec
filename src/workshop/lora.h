// LoRA adapters as versions of the store, attached to their base, and their
// materialization (`hart lora`, `hart merge-lora`).
//
// ImportLora reads a PEFT adapter (a directory or its
// adapter_model.safetensors, with adapter_config.json beside it: r,
// lora_alpha, target_modules, base_model_name_or_path) or a llama.cpp GGUF
// LoRA adapter (general.type = adapter, adapter.lora.alpha), checks every
// pair against the base (the targeted tensor exists; A is [r, in], B is
// [out, r] for the base's [out, in]), and stores it as a GGUF LoRA adapter
// derived from the base (parent = base, lineage method "lora-import"):
// tensors blk.N.<tensor>.weight.lora_a / .lora_b in F32, PEFT's Hugging Face
// module names mapped to GGUF's and B's rows permuted for attn_q / attn_k of
// llama and mistral as llama.cpp's converter permutes the base, so the
// stored adapter applies to the stored base as is.
//
// MergeLora writes base + scale * (alpha / r) * B @ A for every targeted
// tensor (others taken unchanged, their chunks shared) as a new version.
// Float bases only (F32, F16, BF16): the merged tensor keeps its type.
#pragma once

#include <string>
#include <string_view>

#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model.h"
#include "store/store.h"
#include "workshop/derive.h"

namespace hart::workshop {

struct LoraResult {
  DeriveResult derive;
  std::string base_ref;
  int64_t rank = 0;
  double alpha = 0;
  uint64_t pairs = 0;  // targeted tensors
  std::string source;  // "peft" or "gguf"
};

absl::StatusOr<LoraResult> ImportLora(store::Store& store, const std::string& path,
                                      std::string_view base_ref, const DeriveOptions& opts);

// MergeLora's checks and derivation, without deriving (`hart rebuild` of a
// merge-lora version re-plans it from the record's inputs and scale).
struct LoraMergePlan {
  Derivation derivation;
  LoraResult result;  // derive unset
  store::VersionRef base;
};
absl::StatusOr<LoraMergePlan> PlanMergeLora(store::Store& store, std::string_view base_ref,
                                            std::string_view adapter_ref, double scale);

absl::StatusOr<LoraResult> MergeLora(store::Store& store, std::string_view base_ref,
                                     std::string_view adapter_ref, double scale,
                                     const DeriveOptions& opts);

// The adapter's pairs as float32 for `hart run BASE --lora ADAPTER[:SCALE]`
// (applied in the forward pass, not materialized): the same checks as
// merge-lora (a LoRA adapter of base's architecture, every pair's shapes
// against base's tensor, naming it otherwise), any base tensor type;
// coef = scale * alpha / rank. B is stored in the base's row order already.
absl::StatusOr<std::vector<runtime::LoraTensor>> ReadLoraForRun(store::Store& store, std::string_view base_ref,
                                                                 std::string_view adapter_ref, double scale);

}  // namespace hart::workshop

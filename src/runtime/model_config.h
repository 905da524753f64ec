// ModelConfig: the hyper-parameters of a decoder-only transformer, read from
// GGUF metadata (ARCH.block_count, ARCH.attention.head_count, ...) or from a
// Hugging Face config.json. One struct for every architecture the runtime
// runs; fields an architecture lacks keep their neutral defaults (no
// soft-capping, no sliding window, ...).
#pragma once

#include <cstdint>
#include <vector>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "formats/gguf.h"
#include "nlohmann/json.hpp"

namespace hart::runtime {

enum class Arch : uint8_t { kLlama, kMistral, kQwen2, kQwen3, kGemma2, kPhi3 };
std::string_view ArchName(Arch a);
// "llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3"; HF names
// ("LlamaForCausalLM", ...) are mapped by ConfigFromHf.
absl::StatusOr<Arch> ArchFromName(std::string_view name);

// Where the weights come from decides the naming and, for llama/mistral, the
// RoPE ordering: llama.cpp's converter permutes the q/k rows of llama-style
// checkpoints so rotated pairs are adjacent (interleaved), whereas HF
// checkpoints keep the half-split (NeoX) layout.
enum class WeightNaming : uint8_t { kGguf, kHf };
enum class RopeOrder : uint8_t { kInterleaved, kHalfSplit };

struct RopeScaling {
  // kLongRope (phi3's 128k checkpoints, "longrope" or "su" in config.json):
  // per-pair frequency divisors, one set for contexts up to
  // original_context and one beyond, and cos/sin scaled by attn_factor.
  enum class Kind : uint8_t { kNone, kLinear, kLlama3, kLongRope };
  Kind kind = Kind::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_context = 8192;
  double attn_factor = 1.0;
  // From config.json; GGUF files carry them as the tensors
  // rope_factors_short.weight / rope_factors_long.weight instead.
  std::vector<float> short_factor, long_factor;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  WeightNaming naming = WeightNaming::kGguf;
  int64_t n_layers = 0;
  int64_t dim = 0;         // embedding length
  int64_t ffn_dim = 0;     // feed-forward hidden length
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // < n_heads: grouped-query attention
  int64_t head_dim = 0;    // key length per head (qwen3/gemma2 may differ from dim/n_heads)
  int64_t value_dim = 0;   // value length per head
  int64_t vocab_size = 0;  // 0 when the metadata does not say; the loader takes the embedding rows
  int64_t context_length = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t rope_dim = 0;  // rotated dimensions per head (<= head_dim)
  RopeOrder rope_order = RopeOrder::kInterleaved;
  RopeScaling rope_scaling;
  // gemma2
  double attn_softcap = 0;   // 0 = none
  double final_softcap = 0;  // 0 = none
  int64_t sliding_window = 0;  // on even layers (gemma2); 0 = none
  double query_scale = 0;      // 0 = 1/sqrt(head_dim)
  bool norm_plus_one = false;  // HF gemma norms are (1 + w); GGUF ones had the 1 added by the converter
  bool tie_embeddings_hint = false;  // HF tie_word_embeddings

  std::string ToString() const;
};

// `origin` names the file or version in errors: "model.gguf: metadata:
// llama.block_count: missing".
absl::StatusOr<ModelConfig> ConfigFromGguf(const formats::GgufMetadata& md, std::string_view origin);
absl::StatusOr<ModelConfig> ConfigFromHf(const nlohmann::json& config, std::string_view origin);
// A llama2.c checkpoint's metadata as formats::ReadLlama2c records it
// ({"llama2c": {dim, hidden_dim, n_layers, ...}}): llama with run.c's
// constants (rms_norm_eps 1e-5, rope theta 10000, interleaved pairs).
absl::StatusOr<ModelConfig> ConfigFromLlama2c(const nlohmann::json& metadata, std::string_view origin);

}  // namespace hart::runtime

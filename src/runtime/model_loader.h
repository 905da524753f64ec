// ModelPlan: which tensor of the source plays which role in which layer,
// checked against the hyper-parameters, and how the weights are grouped for
// the streamer. GGUF names (blk.N.attn_q.weight) and Hugging Face names
// (model.layers.N.self_attn.q_proj.weight) map to the same Role.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model.h"

namespace hart::runtime {

struct LayerPlan {
  std::array<const WeightInfo*, kRoleCount> tensor{};  // nullptr when absent
  std::array<int, kRoleCount> piece{};                 // index in the layer's group, -1 for vectors
  std::array<std::vector<float>, kRoleCount> vec;      // norms and biases, as float
  size_t group = 0;
};

// Rows [row0, row0 + rows) of the output head, one streamer group.
struct HeadSlice {
  size_t group = 0;
  int64_t row0 = 0;
  int64_t rows = 0;
};

struct ModelPlan {
  std::vector<LayerPlan> layers;
  const WeightInfo* embed = nullptr;
  const WeightInfo* output = nullptr;  // == embed when the embeddings are tied
  bool tied = false;
  std::vector<float> output_norm;
  std::vector<float> rope_freqs;  // llama-3 frequency divisors (GGUF rope_freqs.weight), or empty
  // longrope divisors for contexts up to / beyond the original context
  // (GGUF rope_factors_{short,long}.weight, or config.json's lists).
  std::vector<float> rope_factors_short, rope_factors_long;
  std::vector<HeadSlice> head;
  std::vector<WeightGroup> groups;
  int64_t vocab = 0;
  uint64_t vector_bytes = 0;  // float copies of the vectors, pinned outside the streamer
};

// Names the role's tensor of layer `l` ("blk.3.attn_q.weight"); "" when the
// naming has no such tensor.
std::string RoleTensorName(const ModelConfig& cfg, Role role, int64_t l);

// Resolves and validates every tensor; fills cfg.vocab_size. Errors name the
// tensor or the field, before any weight byte is used for compute.
absl::StatusOr<std::unique_ptr<ModelPlan>> BuildPlan(WeightSource* source, ModelConfig& cfg);

}  // namespace hart::runtime

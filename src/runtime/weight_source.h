// WeightSource: the one narrow interface through which the runtime reads
// weights, so a model runs from NinaDB (StoreWeightSource) or straight from a
// file (FileWeightSource: a .gguf, or a safetensors checkpoint with its
// config.json) alike. A tensor is a name -> {dtype, shape, bytes}.
//
// Two ways to get bytes: Map() gives a zero-copy span valid as long as the
// source lives (everything-mapped mode); Read() copies a byte range into the
// caller's buffer (the streamer's owned buffers under a budget). Prefetch()
// and Release() are hints about ranges soon needed / no longer needed;
// Release(drop_cache = true) also evicts the range from the page cache so the
// next read goes to storage (benchmarks of the storage bound).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "formats/gguf.h"
#include "nlohmann/json.hpp"
#include "runtime/model_config.h"

namespace hart::store { class Store; }

namespace hart::runtime {

struct WeightInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;  // outermost first
  uint64_t nbytes = 0;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  // "model.gguf" or "llama@3": the prefix of error messages.
  virtual const std::string& origin() const = 0;
  virtual const std::vector<WeightInfo>& tensors() const = 0;
  const WeightInfo* Find(std::string_view name) const;

  // Hyper-parameters from the GGUF metadata or the HF config.json.
  virtual absl::StatusOr<ModelConfig> Config() const = 0;
  // The GGUF metadata (tokenizer, chat template) when the weights are GGUF.
  virtual const formats::GgufMetadata* gguf_metadata() const { return nullptr; }
  // The format the weights were read from (a stored version's original
  // one) and the metadata its reader recorded (ModelSource::metadata, the
  // version's metadata): llama2.c checkpoints keep their header and
  // tokenizer file name there. nullopt / null JSON when unknown.
  virtual std::optional<formats::Format> format() const { return std::nullopt; }
  virtual const nlohmann::json& metadata() const;
  // A companion file of an HF checkpoint ("tokenizer.json",
  // "tokenizer_config.json"); NotFound when absent.
  virtual absl::StatusOr<std::string> ReadCompanionFile(const std::string& name) const = 0;

  // `t` is always an element of tensors() (from Find or the list itself).
  virtual absl::StatusOr<std::span<const uint8_t>> Map(const WeightInfo& t) = 0;
  virtual absl::Status Read(const WeightInfo& t, uint64_t offset, std::span<uint8_t> out) = 0;
  virtual void Prefetch(const WeightInfo& t, uint64_t offset, uint64_t n) {}
  virtual void Release(const WeightInfo& t, uint64_t offset, uint64_t n, bool drop_cache) {}
  // Evicts every tensor's bytes from the page cache (before a cold run).
  virtual void DropPageCache() {}

 protected:
  void Index();  // fills by_name_ from tensors(); implementations call it once
 private:
  std::map<std::string, size_t, std::less<>> by_name_;
};

// A .gguf file (or the first part of a split one), a .safetensors file, a
// sharded checkpoint's index, a directory holding one with config.json, or a
// llama2.c checkpoint with its tokenizer file (`tokenizer`, or "" to find
// it beside the checkpoint).
absl::StatusOr<std::unique_ptr<WeightSource>> OpenFileWeights(const std::string& path,
                                                              const std::string& tokenizer = "");

// A version of a model in NinaDB ("llama" or "llama@3").
absl::StatusOr<std::unique_ptr<WeightSource>> OpenStoreWeights(std::shared_ptr<store::Store> store,
                                                               const std::string& ref);

}  // namespace hart::runtime

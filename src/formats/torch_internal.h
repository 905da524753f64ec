// Shared by torch.cc (containers: zip and legacy) and torch_tensors.cc
// (from the pickled tree to named tensors). Not a public header.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/torch.h"

namespace hart::formats::torch_internal {

// Where one stored storage's bytes are.
struct StorageBytes {
  std::span<const uint8_t> bytes;  // the whole storage as stored
  bool in_file = false;            // bytes is a span of the checkpoint itself
  uint64_t file_offset = 0;        // absolute offset of bytes[0] when in_file
  std::shared_ptr<const std::vector<uint8_t>> owner;  // inflated copy otherwise
};

// A storage as the pickle declares it (every persistent id naming the key
// must agree) and, once located, its bytes.
struct StorageInfo {
  std::string type_name;  // "torch.FloatStorage"
  DType dtype = DType::kU8;
  bool dtype_ok = false;
  uint64_t numel = 0;  // elements of dtype
  uint64_t first_offset = 0;  // where the pickle first names it
  StorageBytes data;
  bool located = false;
};

struct NamedTensor {
  std::string name;
  const PickleValue* tensor;
};

// Tensors in walk order, storages by key, and the non-tensor content.
struct Collected {
  std::vector<NamedTensor> tensors;
  std::map<std::string, StorageInfo> storages;
  nlohmann::json values = nlohmann::json::object();
  nlohmann::json module_metadata;  // the first OrderedDict _metadata found
  uint64_t values_omitted = 0;
};

// Walks the pickled root (bounded depth, cycles and shared-reference blowup
// refused). Names tensors by their dotted path.
absl::StatusOr<Collected> CollectTensors(const PickleResult& pickle, std::string_view file);

// Meter for bytes copied out of the file.
class OwnedBudget {
 public:
  OwnedBudget(std::string_view file, uint64_t limit) : file_(file), limit_(limit) {}
  absl::Status Take(uint64_t bytes, std::string_view what);
  uint64_t limit() const { return limit_; }

 private:
  std::string_view file_;
  uint64_t used_ = 0;
  uint64_t limit_;
};

// Turns every collected tensor into a TensorDesc over the located storages
// (file index 0): zero-copy when contiguous in the file, owned otherwise.
absl::StatusOr<std::vector<TensorDesc>> MaterializeTensors(const Collected& c, std::string_view file,
                                                           OwnedBudget& budget);

// A bounded JSON rendering of a non-tensor value for metadata.
nlohmann::json ValueToJson(const PickleValue* v);

}  // namespace hart::formats::torch_internal

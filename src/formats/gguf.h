// GGUF reader and writer, versions 2 and 3 (ggml's single-file format).
// Shapes in TensorDesc are outermost first: GGUF's ne[] reversed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "formats/model_source.h"

namespace hart::formats {

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5,
  kFloat32 = 6, kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11,
  kFloat64 = 12,
};
// "uint8", "int32", "float32", "string", "array", ...; "unknown" otherwise.
std::string_view GgufTypeName(GgufType t);

struct GgufValue;
struct GgufArray {
  GgufType element_type = GgufType::kUint8;
  std::vector<GgufValue> items;
};
struct GgufValue {
  GgufType type = GgufType::kUint8;
  // Integers of every width and bool in int64/uint64, floats in double.
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

// The key/value metadata in file order, with typed accessors. Integer
// accessors accept any integer type; float accessors any float type.
class GgufMetadata {
 public:
  std::vector<GgufKV> entries;

  const GgufValue* Find(std::string_view key) const;
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<int64_t> GetInt(std::string_view key) const;
  std::optional<double> GetFloat(std::string_view key) const;
  std::optional<bool> GetBool(std::string_view key) const;
  std::optional<std::vector<std::string>> GetStringArray(std::string_view key) const;
  std::optional<std::vector<double>> GetFloatArray(std::string_view key) const;
  std::optional<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  // The array itself, without copying (tokenizers read 150k-item arrays).
  const GgufArray* GetArray(std::string_view key) const;
  // JSON form; arrays over kMaxJsonArray items summarized (see model_source.h).
  nlohmann::json ToJson() const;
};

struct GgufTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;          // outermost first
  uint64_t offset = 0;  // relative to the start of the data section
  uint64_t nbytes = 0;
};

struct GgufHeader {
  uint32_t version = 3;
  GgufMetadata metadata;
  std::vector<GgufTensorInfo> tensors;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // absolute offset of the data section
};

// Parses header, metadata and tensor infos from the start of a file.
// `bytes` may be only a prefix of the file (metadata-only readers); tensor
// bounds are checked against file_size. Errors name `name`, offset, field.
absl::StatusOr<GgufHeader> ParseGgufHeader(std::span<const uint8_t> bytes, uint64_t file_size,
                                           std::string_view name);

// Reads one .gguf file, or a split model given its first part
// (NAME-00001-of-0000N.gguf); all parts become one ModelSource.
absl::StatusOr<ModelSource> ReadGguf(const std::string& path);

// Reads only the metadata of a GGUF file (tokenizer loading, inspection).
absl::StatusOr<GgufMetadata> ReadGgufMetadata(const std::string& path);

// Writes a GGUF v3 file: metadata, then tensors aligned to `alignment`
// (general.alignment is written when not 32). Used for sub-models.
absl::Status WriteGguf(const std::string& path, const GgufMetadata& metadata,
                       const std::vector<TensorDesc>& tensors, const TensorBytesFn& bytes,
                       uint64_t alignment = 32);

}  // namespace hart::formats

// safetensors reader and writer (https://github.com/huggingface/safetensors):
// 8-byte little-endian header length, a JSON header, then the data.
#pragma once

#include <map>
#include <span>
#include <string>

#include "formats/model_source.h"

namespace hart::formats {

// Parses and validates a header (the 8-byte length + JSON) from the start of
// a file of file_size bytes; returns the tensors (offsets absolute in the
// file), the __metadata__ map and the data section's start.
struct SafetensorsHeader {
  std::vector<TensorDesc> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;
};
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> bytes,
                                                         uint64_t file_size,
                                                         std::string_view name);

// Reads one .safetensors file, or a sharded checkpoint through its
// *.safetensors.index.json (all shards become one ModelSource; the index file
// itself is one more file with a single raw segment).
absl::StatusOr<ModelSource> ReadSafetensors(const std::string& path);

// Writes one .safetensors file with the tensors in the given order.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorDesc>& tensors,
                              const std::map<std::string, std::string>& metadata,
                              const TensorBytesFn& bytes);

}  // namespace hart::formats

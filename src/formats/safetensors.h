// safetensors reader and writer (https://github.com/huggingface/safetensors):
// 8-byte little-endian header length, a JSON header, then the data.
//
// ModelSource of a safetensors model: metadata is __metadata__ (merged over
// the shards of a checkpoint) plus "config" (config.json) and "index" (the
// index file's own "metadata") when present. Files: the .safetensors file,
// or the index file then the shards in sorted order; then the sidecar files
// of kSafetensorsSidecars found beside them (always for an index, for a
// single file only when a directory was opened). Every file has a layout
// that reproduces it byte for byte.
#pragma once

#include <map>
#include <span>
#include <string>

#include "formats/model_source.h"
#include "formats/limits.h"

namespace hart::formats {

// Parses and validates a header (the 8-byte length + JSON) from the start of
// a file of file_size bytes; returns the tensors (offsets absolute in the
// file), the __metadata__ map and the data section's start.
// Tensors come back sorted by data offset (file order).
struct SafetensorsHeader {
  std::vector<TensorDesc> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;
};
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> bytes,
                                                         uint64_t file_size,
                                                         std::string_view name);

// kMaxSafetensorsHeader (formats/limits.h): longer headers are refused
// before anything is allocated.

// Segments covering a file of file_size bytes: the header (length, JSON and
// its padding) as other bytes, each tensor in offset order (segment.tensor =
// first_tensor + its index in h.tensors), and any bytes no tensor claims.
std::vector<Segment> SafetensorsLayout(const SafetensorsHeader& h, uint64_t file_size,
                                       int64_t first_tensor);

// Files kept beside the weights of a Hugging Face checkpoint directory.
inline constexpr std::string_view kSafetensorsSidecars[] = {
    "config.json",          "generation_config.json",  "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.json",           "merges.txt",
};

// Reads one .safetensors file, or a sharded checkpoint through its
// *.safetensors.index.json (all shards become one ModelSource; the index file
// itself is one more file with a single raw segment).
absl::StatusOr<ModelSource> ReadSafetensors(const std::string& path);

// Reads a checkpoint directory whose weights are `file` (a .safetensors file
// or a *.safetensors.index.json, a name inside `dir`), with its sidecar files.
// name_hint is the directory's name.
absl::StatusOr<ModelSource> ReadSafetensorsDir(const std::string& dir, const std::string& file);

// Writes one .safetensors file with the tensors in the given order: data
// contiguous in that order, __metadata__ first when not empty, the header
// padded with spaces to a multiple of 8 bytes. Writes a temporary beside
// `path`, fsyncs and renames it, so `path` is either absent, the old file or
// complete. Tensors' name, dtype, shape and nbytes are used; bytes(i) gives
// tensor i's data.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorDesc>& tensors,
                              const std::map<std::string, std::string>& metadata,
                              const TensorBytesFn& bytes);

}  // namespace hart::formats

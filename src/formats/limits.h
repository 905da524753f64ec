// Resource limits on untrusted model files, all in one place (documented in
// docs/LIMITS.md). Each parser refuses a file that passes one of them as
// early as it can tell, before allocating for it, with a DataLoss error that
// names the limit ("... exceeds the limit of N (kMaxTensors)"). The values
// sit far above every real model seen (the largest MoE checkpoints hold
// ~100,000 tensors; names are under 300 bytes) and far below what would
// exhaust memory or time.
#pragma once

#include <cstdint>

namespace hart::formats {

// Tensors in one model, over all its files.
inline constexpr uint64_t kMaxTensors = uint64_t{1} << 20;
// One name: a tensor's, a metadata key, a zip entry's, a shard's.
inline constexpr uint64_t kMaxNameBytes = 16 << 10;
// One metadata string value (a GGUF chat template or a safetensors
// __metadata__ value, say).
inline constexpr uint64_t kMaxStringBytes = 64 << 20;
// GGUF key/values in one file.
inline constexpr uint64_t kMaxMetadataKeys = uint64_t{1} << 20;
// GGUF array items over all metadata: each item costs ~48 bytes of
// GgufValue, so a file of 1-byte items could otherwise demand 48x its size.
// Real vocabularies hold well under 2M items.
inline constexpr uint64_t kMaxMetadataItems = uint64_t{1} << 24;
// GGUF arrays of arrays of ...
inline constexpr int kMaxArrayDepth = 8;
// Tensor dimensions in GGUF (ggml uses 4; other writers a few more).
inline constexpr uint32_t kMaxDims = 8;
// A safetensors JSON header: the reference implementation's bound.
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;
// A *.index.json of a sharded checkpoint.
inline constexpr uint64_t kMaxIndexBytes = 100'000'000;
// JSON nesting and values of one document (safetensors headers, indexes,
// config.json); a member costs ~100 bytes in nlohmann's map.
inline constexpr int kMaxJsonDepth = 64;
inline constexpr uint64_t kMaxJsonValues = 2'000'000;
// ONNX subgraphs inside subgraphs (an If in a Loop body); protobuf's own
// limit is 100.
inline constexpr int kMaxSubgraphDepth = 32;
// Nesting of containers in a PyTorch checkpoint's pickle.
inline constexpr int kMaxPickleNesting = 100;
// Inflated size of one DEFLATEd pickle in a PyTorch zip.
inline constexpr uint64_t kMaxInflatedPickle = uint64_t{1} << 30;
// Entries in one zip archive (a PyTorch checkpoint: one per storage).
inline constexpr uint64_t kMaxZipEntries = 4 * kMaxTensors;
// Pickles scanned back to back in one plain (non-zip) file.
inline constexpr int kMaxScannedPickles = 64;

}  // namespace hart::formats

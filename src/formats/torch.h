// PyTorch checkpoints (torch.save): the zip format (`<archive>/data.pkl`
// plus one entry per storage, `<archive>/data/<key>`) and the legacy format
// (_use_new_zipfile_serialization=False: five pickles, then each storage as
// int64 numel + raw bytes). The pickles go through the restricted machine
// of pickle.h, so nothing is ever imported or executed.
//
// Tensors are named by their path in the pickled containers, joined with
// dots ({"model": {"fc.weight": t}} -> "model.fc.weight"; list items by
// index). A tensor whose bytes are one contiguous span of a STORED entry (or
// of the legacy file) points into the checkpoint (zero copy); strided views
// and slices of DEFLATE entries get `owned` bytes made contiguous. Two
// tensors viewing one storage get the same bytes, which the store dedups by
// content. Complex and quantized tensors are refused.
//
// `layout` is left empty: the store lays the file out from the tensors that
// lie in it (raw segments for the rest), so `hart export` still rebuilds the
// checkpoint byte for byte; `hart export --format safetensors` writes the
// tensors as torch.load gives them (WriteSafetensors) instead.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/model_source.h"
#include "formats/pickle.h"
#include "nlohmann/json.hpp"

namespace hart::formats {

struct TorchReadOptions {
  // Bytes that may be copied out of the file (strided views made contiguous,
  // DEFLATE entries inflated); 0 means 2 x the file size + 256 MiB. Bounds
  // the memory a small file with stride-0 views could make us allocate.
  uint64_t max_owned_bytes = 0;
  // Check the CRC-32 of every zip entry read (one pass over the data).
  bool verify_crc = true;
};

// What a checkpoint holds: tensors with file index 0 (the checkpoint itself)
// and metadata: {"torch_format": "zip"|"legacy", "archive_name",
// "serialization_version", "byteorder", "state_dict_keys": tensor count,
// "storages", "_metadata" (a state_dict's per-module versions, summarized),
// "values" (non-tensor leaves by dotted name: epoch, lr, ...)}.
struct TorchCheckpoint {
  std::vector<TensorDesc> tensors;
  nlohmann::json metadata = nlohmann::json::object();
};

// True when `head` (the first bytes of a file) starts like a zip archive or
// a binary pickle, the two ways a torch checkpoint begins.
bool LooksLikeTorch(std::span<const uint8_t> head);

// Parses a whole checkpoint held in memory; `name` is used in messages.
absl::StatusOr<TorchCheckpoint> ParseTorch(std::span<const uint8_t> file, std::string_view name,
                                           const TorchReadOptions& options = {});

// Maps and parses a .pt / .pth / .bin checkpoint into a validated ModelSource
// (format kTorch, one file, no layout).
absl::StatusOr<ModelSource> ReadTorch(const std::string& path, const TorchReadOptions& options = {});

// A Hugging Face sharded checkpoint, pytorch_model.bin.index.json: the
// index (one raw file), then each shard in sorted order, then the sidecars
// of kSafetensorsSidecars beside it. The index must agree with the shards
// exactly (every tensor listed, under the shard that holds it), else a
// DataError names the index and its weight_map entry.
absl::StatusOr<ModelSource> ReadTorchIndex(const std::string& index_path,
                                           const TorchReadOptions& options = {});

// A checkpoint directory whose weights are `file` (pytorch_model.bin or a
// *.bin.index.json, a name inside `dir`), with its sidecar files (config.json
// parsed into metadata["config"]). name_hint is the directory's name.
absl::StatusOr<ModelSource> ReadTorchDir(const std::string& dir, const std::string& file,
                                         const TorchReadOptions& options = {});

// `hart scan`: every import and call the file's pickles would perform,
// found without executing anything.
struct PickleScan {
  std::string where;  // "archive/data.pkl", "pickle 4 of 5 (legacy main)", ...
  uint64_t base = 0;  // absolute offset of the pickle's first byte (0 if inflated)
  std::vector<PickleFinding> findings;
  absl::Status error;  // ok when the pickle was read to its STOP
};
struct TorchScanReport {
  std::string format;  // "zip", "legacy", "pickle"
  std::vector<PickleScan> pickles;
  bool safe = false;
  // "safe: only tensor rebuild globals" or "UNSAFE: would call os.system at offset 123"
  std::string verdict;
};
absl::StatusOr<TorchScanReport> ScanTorch(std::span<const uint8_t> file, std::string_view name);
absl::StatusOr<TorchScanReport> ScanTorchFile(const std::string& path);

}  // namespace hart::formats

// What the Hugging Face checkpoint layouts share across weight formats
// (safetensors and PyTorch .bin): the sharded index (`weight_map`: tensor ->
// shard file), checked strictly against the shards, the sidecar files kept
// beside the weights (config.json, tokenizer files), and the fields derived
// from them. Not a public header; used by safetensors.cc and torch_dir.cc.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "core/mapped_file.h"
#include "formats/model_source.h"
#include "formats/safetensors_json.h"
#include "formats/limits.h"

namespace hart::formats::hf_internal {

// kMaxIndexBytes: formats/limits.h.

// A parsed *.index.json: every shard path checked before any file is opened.
struct WeightMap {
  std::shared_ptr<MappedFile> map;  // the index file
  safetensors_internal::JsonDoc doc;
  std::unordered_map<std::string, std::string> shard_of;  // tensor -> shard
  std::set<std::string> shards;                           // sorted
  nlohmann::json metadata;  // the index's own "metadata" object, or null
};
absl::StatusOr<WeightMap> ReadWeightMap(const std::string& index_path);

// A shard holds exactly the tensors the index assigns to it: a tensor the
// index does not list, or lists under another shard, is refused naming the
// index and its weight_map entry.
absl::Status CheckShardTensors(const WeightMap& wm, const std::string& index_path,
                               const std::string& shard, const std::vector<TensorDesc>& tensors,
                               size_t first);
// Every tensor the index lists was found in its shard.
absl::Status CheckAllListed(const WeightMap& wm, const std::string& index_path,
                            const std::vector<TensorDesc>& tensors);

// A shard path must name a file inside the checkpoint directory.
bool ShardPathIsSafe(const std::string& p);

// Appends a file whose bytes are one raw segment; returns its index.
size_t AddRawFile(ModelSource& src, std::string name, std::shared_ptr<MappedFile> map);

// Adds the sidecars (kSafetensorsSidecars) present in `dir` that are not yet
// files of src; config.json is also parsed into metadata["config"].
absl::Status AddSidecars(ModelSource& src, const std::string& dir);

// Fills architecture (config.json model_type, else metadata) and license.
void DeriveFields(ModelSource& src);

std::string Join(const std::string& dir, const std::string& name);
std::string BaseName(const std::string& path);
std::string StripSuffix(std::string s, std::string_view suffix);

// The name a checkpoint directory gives its model ("dir/" and "." resolved).
std::string DirModelName(const std::string& dir);

}  // namespace hart::formats::hf_internal

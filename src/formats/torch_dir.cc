// PyTorch checkpoints as Hugging Face lays them out: a directory holding
// pytorch_model.bin (or a sharded pytorch_model.bin.index.json with its
// pytorch_model-0000K-of-0000N.bin shards) beside config.json and tokenizer
// files. All of it becomes one ModelSource, so one version.
#include <filesystem>

#include "core/status.h"
#include "formats/hf_checkpoint.h"
#include "formats/torch.h"

namespace hart::formats {
namespace {

using namespace hf_internal;
using safetensors_internal::Quote;

// Parses one checkpoint file and appends it (no layout: the store lays the
// file out from its in-file tensors) and its tensors to src.
absl::StatusOr<nlohmann::json> AddCheckpoint(ModelSource& src, const std::string& path,
                                             const std::string& name, const TorchReadOptions& opt) {
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  ASSIGN_OR_RETURN(TorchCheckpoint ck, ParseTorch(map->bytes(), name, opt));
  const uint32_t file_index = static_cast<uint32_t>(src.files.size());
  src.files.push_back({name, std::move(map), {}});
  for (TensorDesc& t : ck.tensors) {
    t.file = file_index;
    src.tensors.push_back(std::move(t));
  }
  return std::move(ck.metadata);
}

absl::StatusOr<ModelSource> ReadIndex(const std::string& index_path, const std::string& dir,
                                      const TorchReadOptions& opt) {
  ModelSource src;
  src.format = Format::kTorch;
  src.path = index_path;
  src.name_hint = StripSuffix(BaseName(index_path), ".index.json");
  for (std::string_view ext : {".bin", ".pt", ".pth"}) src.name_hint = StripSuffix(src.name_hint, ext);

  ASSIGN_OR_RETURN(WeightMap wm, ReadWeightMap(index_path));
  if (wm.shards.empty())
    return DataError(index_path, wm.doc.KeyOffset("weight_map"), "weight_map", "lists no tensors");
  nlohmann::json shards = nlohmann::json::array();
  AddRawFile(src, BaseName(index_path), wm.map);
  for (const std::string& shard : wm.shards) {
    size_t first = src.tensors.size();
    auto meta = AddCheckpoint(src, Join(dir, shard), shard, opt);
    if (!meta.ok()) return Annotate(meta.status(), fmt::format("{}: shard {}", index_path, Quote(shard)));
    RETURN_IF_ERROR(CheckShardTensors(wm, index_path, shard, src.tensors, first));
    (*meta)["file"] = shard;
    shards.push_back(std::move(*meta));
  }
  RETURN_IF_ERROR(CheckAllListed(wm, index_path, src.tensors));
  // The first shard's container facts stand for all; each shard's own are
  // kept under "shards".
  for (const char* key : {"torch_format", "archive_name", "serialization_version", "byteorder"})
    if (shards[0].contains(key)) src.metadata[key] = shards[0][key];
  src.metadata["state_dict_keys"] = src.tensors.size();
  src.metadata["shards"] = std::move(shards);
  if (!wm.metadata.is_null()) src.metadata["index"] = wm.metadata;
  RETURN_IF_ERROR(AddSidecars(src, dir));
  DeriveFields(src);
  RETURN_IF_ERROR(ValidateSource(src));
  return src;
}

}  // namespace

absl::StatusOr<ModelSource> ReadTorchIndex(const std::string& index_path, const TorchReadOptions& options) {
  return ReadIndex(index_path, std::filesystem::path(index_path).parent_path().string(), options);
}

absl::StatusOr<ModelSource> ReadTorchDir(const std::string& dir, const std::string& file,
                                         const TorchReadOptions& options) {
  std::string path = Join(dir, file);
  absl::StatusOr<ModelSource> src;
  if (file.ends_with(".json")) {
    src = ReadIndex(path, dir, options);
  } else {
    ModelSource s;
    s.format = Format::kTorch;
    auto meta = AddCheckpoint(s, path, file, options);
    if (!meta.ok()) return meta.status();
    s.metadata = std::move(*meta);
    RETURN_IF_ERROR(AddSidecars(s, dir));
    DeriveFields(s);
    RETURN_IF_ERROR(ValidateSource(s));
    src = std::move(s);
  }
  if (!src.ok()) return src;
  src->path = dir;
  std::string name = DirModelName(dir);
  if (!name.empty()) src->name_hint = name;
  return src;
}

}  // namespace hart::formats

// Reading safetensors models: one file, a sharded checkpoint through its
// index, or a checkpoint directory with its sidecar files.
#include "formats/safetensors.h"

#include <filesystem>

#include "core/status.h"
#include "formats/hf_checkpoint.h"
#include "formats/safetensors_json.h"

namespace hart::formats {
namespace {

namespace fs = std::filesystem;
using namespace hf_internal;
using safetensors_internal::Quote;

constexpr std::string_view kIndexSuffix = ".safetensors.index.json";

std::string DirOf(const std::string& path) {
  return fs::path(path).parent_path().string();
}

// Appends a parsed .safetensors file and its tensors.
void AddWeightsFile(ModelSource& src, std::string name, std::shared_ptr<MappedFile> map,
                    SafetensorsHeader&& h) {
  SourceFile f;
  f.name = std::move(name);
  f.layout = SafetensorsLayout(h, map->size(), static_cast<int64_t>(src.tensors.size()));
  f.map = std::move(map);
  const uint32_t file_index = static_cast<uint32_t>(src.files.size());
  src.files.push_back(std::move(f));
  for (TensorDesc& t : h.tensors) {
    t.file = file_index;
    src.tensors.push_back(std::move(t));
  }
}

absl::StatusOr<std::pair<std::shared_ptr<MappedFile>, SafetensorsHeader>> OpenWeights(
    const std::string& path) {
  ASSIGN_OR_RETURN(auto map, MappedFile::Open(path));
  ASSIGN_OR_RETURN(auto h, ParseSafetensorsHeader(map->bytes(), map->size(), path));
  return std::make_pair(std::move(map), std::move(h));
}

void MergeMetadata(ModelSource& src, const std::map<std::string, std::string>& m) {
  for (const auto& [k, v] : m)
    if (!src.metadata.contains(k)) src.metadata[k] = v;
}

absl::StatusOr<ModelSource> ReadSingle(const std::string& path, const std::string& dir,
                                       bool with_sidecars) {
  ModelSource src;
  src.format = Format::kSafetensors;
  src.path = path;
  src.name_hint = StripSuffix(BaseName(path), ".safetensors");
  ASSIGN_OR_RETURN(auto opened, OpenWeights(path));
  MergeMetadata(src, opened.second.metadata);
  AddWeightsFile(src, BaseName(path), std::move(opened.first), std::move(opened.second));
  if (with_sidecars) RETURN_IF_ERROR(AddSidecars(src, dir));
  DeriveFields(src);
  RETURN_IF_ERROR(ValidateSource(src));
  return src;
}

absl::StatusOr<ModelSource> ReadSharded(const std::string& index_path, const std::string& dir) {
  ModelSource src;
  src.format = Format::kSafetensors;
  src.path = index_path;
  src.name_hint = StripSuffix(StripSuffix(BaseName(index_path), kIndexSuffix), ".json");

  // weight_map: tensor -> shard; every path is checked before any file opens.
  ASSIGN_OR_RETURN(WeightMap wm, ReadWeightMap(index_path));
  if (!wm.metadata.is_null()) src.metadata["index"] = wm.metadata;

  AddRawFile(src, BaseName(index_path), wm.map);
  std::map<std::string, std::string> merged;
  for (const std::string& shard : wm.shards) {
    std::string path = Join(dir, shard);
    auto opened = OpenWeights(path);
    if (!opened.ok())
      return Annotate(opened.status(), fmt::format("{}: shard {}", index_path, Quote(shard)));
    // The index and the shards must agree exactly: a tensor the index does
    // not list, or lists under another shard, is a lie one way or the other.
    RETURN_IF_ERROR(CheckShardTensors(wm, index_path, shard, opened->second.tensors, 0));
    for (const auto& [k, v] : opened->second.metadata) merged.emplace(k, v);
    AddWeightsFile(src, shard, std::move(opened->first), std::move(opened->second));
  }
  RETURN_IF_ERROR(CheckAllListed(wm, index_path, src.tensors));
  MergeMetadata(src, merged);
  RETURN_IF_ERROR(AddSidecars(src, dir));
  DeriveFields(src);
  RETURN_IF_ERROR(ValidateSource(src));
  return src;
}

bool IsIndexName(const std::string& path) { return path.ends_with(".json"); }

}  // namespace

absl::StatusOr<ModelSource> ReadSafetensors(const std::string& path) {
  if (IsIndexName(path)) return ReadSharded(path, DirOf(path));
  return ReadSingle(path, DirOf(path), /*with_sidecars=*/false);
}

absl::StatusOr<ModelSource> ReadSafetensorsDir(const std::string& dir, const std::string& file) {
  std::string path = Join(dir, file);
  auto src = IsIndexName(file) ? ReadSharded(path, dir) : ReadSingle(path, dir, true);
  if (!src.ok()) return src;
  src->path = dir;
  std::string dir_name = DirModelName(dir);
  if (!dir_name.empty()) src->name_hint = dir_name;
  return src;
}

}  // namespace hart::formats

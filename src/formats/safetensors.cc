// Reading safetensors models: one file, a sharded checkpoint through its
// index, or a checkpoint directory with its sidecar files.
#include "formats/safetensors.h"

#include <filesystem>
#include <set>
#include <unordered_map>

#include "core/status.h"
#include "formats/safetensors_json.h"

namespace hart::formats {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using safetensors_internal::JsonDoc;
using safetensors_internal::JsonTypeName;
using safetensors_internal::Quote;

constexpr std::string_view kIndexSuffix = ".safetensors.index.json";
constexpr uint64_t kMaxIndexBytes = 100'000'000;

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : (fs::path(dir) / name).string();
}

std::string DirOf(const std::string& path) {
  return fs::path(path).parent_path().string();
}

std::string BaseName(const std::string& path) { return fs::path(path).filename().string(); }

std::string StripSuffix(std::string s, std::string_view suffix) {
  if (s.ends_with(suffix) && s.size() > suffix.size()) s.resize(s.size() - suffix.size());
  return s;
}

// Appends a file whose bytes are one raw segment; returns its index.
size_t AddRawFile(ModelSource& src, std::string name, std::shared_ptr<MappedFile> map) {
  SourceFile f;
  f.name = std::move(name);
  f.layout.push_back({0, map->size(), -1});
  f.map = std::move(map);
  src.files.push_back(std::move(f));
  return src.files.size() - 1;
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

// Adds the sidecars present in `dir`; config.json is also parsed into
// metadata["config"].
absl::Status AddSidecars(ModelSource& src, const std::string& dir) {
  std::set<std::string> have;
  for (const auto& f : src.files) have.insert(f.name);
  for (std::string_view side : kSafetensorsSidecars) {
    std::string name(side);
    std::string path = Join(dir, name);
    std::error_code ec;
    if (have.count(name) || !fs::is_regular_file(path, ec)) continue;
    ASSIGN_OR_RETURN(auto map, MappedFile::Open(path));
    if (name == "config.json") {
      auto bytes = map->bytes();
      std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      ASSIGN_OR_RETURN(JsonDoc doc, safetensors_internal::ParseJsonStrict(text, path, 0, "config", ""));
      if (!doc.value.is_object())
        return DataError(path, 0, "config", fmt::format("is {}, not a JSON object", JsonTypeName(doc.value)));
      src.metadata["config"] = std::move(doc.value);
    }
    AddRawFile(src, name, std::move(map));
  }
  return absl::OkStatus();
}

// Fills architecture and license from what the metadata says.
void DeriveFields(ModelSource& src) {
  const json& m = src.metadata;
  auto str = [](const json& obj, const char* key) -> std::string {
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
  };
  if (auto c = m.find("config"); c != m.end() && c->is_object()) src.architecture = str(*c, "model_type");
  for (const char* key : {"model_type", "architecture", "modelspec.architecture"})
    if (src.architecture.empty()) src.architecture = str(m, key);
  for (const char* key : {"license", "license_name"}) {
    std::string l = str(m, key);
    if (!l.empty()) {
      src.license = l;
      break;
    }
  }
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

// A shard path must name a file inside the checkpoint directory.
bool ShardPathIsSafe(const std::string& p) {
  if (p.empty() || p.front() == '/' || p.find('\0') != p.npos || p.find('\\') != p.npos)
    return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    if (slash == p.npos) slash = p.size();
    std::string_view part(p.data() + start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

absl::StatusOr<ModelSource> ReadSharded(const std::string& index_path, const std::string& dir) {
  ModelSource src;
  src.format = Format::kSafetensors;
  src.path = index_path;
  src.name_hint = StripSuffix(StripSuffix(BaseName(index_path), kIndexSuffix), ".json");

  ASSIGN_OR_RETURN(auto index_map, MappedFile::Open(index_path));
  if (index_map->size() > kMaxIndexBytes)
    return DataError(index_path, 0, "index", fmt::format("{} bytes exceeds the limit of {} bytes",
                                                         index_map->size(), kMaxIndexBytes));
  auto bytes = index_map->bytes();
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  ASSIGN_OR_RETURN(JsonDoc doc, safetensors_internal::ParseJsonStrict(text, index_path, 0, "index", ""));
  if (!doc.value.is_object())
    return DataError(index_path, 0, "index", fmt::format("is {}, not a JSON object", JsonTypeName(doc.value)));
  auto wm = doc.value.find("weight_map");
  if (wm == doc.value.end()) return DataError(index_path, 0, "weight_map", "missing");
  if (!wm->is_object())
    return DataError(index_path, doc.KeyOffset("weight_map"), "weight_map",
                     fmt::format("is {}, not an object", JsonTypeName(*wm)));
  if (auto im = doc.value.find("metadata"); im != doc.value.end() && !im->is_null()) {
    if (!im->is_object())
      return DataError(index_path, doc.KeyOffset("metadata"), "metadata",
                       fmt::format("is {}, not an object", JsonTypeName(*im)));
    src.metadata["index"] = *im;
  }

  // weight_map: tensor -> shard. Check every path before opening any file.
  std::unordered_map<std::string, std::string> shard_of;
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : wm->items()) {
    uint64_t off = doc.KeyOffset("weight_map", tensor);
    std::string field = fmt::format("weight_map {}", Quote(tensor));
    if (!shard.is_string())
      return DataError(index_path, off, field, fmt::format("is {}, not a file name", JsonTypeName(shard)));
    const std::string& s = shard.get_ref<const std::string&>();
    if (!ShardPathIsSafe(s))
      return DataError(index_path, off, field,
                       fmt::format("shard path {} is not a plain relative path inside the checkpoint "
                                   "directory", Quote(s)));
    shard_of.emplace(tensor, s);
    shards.insert(s);
  }

  AddRawFile(src, BaseName(index_path), index_map);
  std::map<std::string, std::string> merged;
  for (const std::string& shard : shards) {
    std::string path = Join(dir, shard);
    auto opened = OpenWeights(path);
    if (!opened.ok())
      return Annotate(opened.status(), fmt::format("{}: shard {}", index_path, Quote(shard)));
    // The index and the shards must agree exactly: a tensor the index does
    // not list, or lists under another shard, is a lie one way or the other.
    for (const TensorDesc& t : opened->second.tensors) {
      auto it = shard_of.find(t.name);
      if (it == shard_of.end())
        return DataError(index_path, doc.KeyOffset("weight_map"), fmt::format("weight_map {}", Quote(t.name)),
                         fmt::format("tensor is in shard {} but missing from the index", Quote(shard)));
      if (it->second != shard)
        return DataError(index_path, doc.KeyOffset("weight_map", t.name),
                         fmt::format("weight_map {}", Quote(t.name)),
                         fmt::format("index says shard {} but the tensor is in shard {}",
                                     Quote(it->second), Quote(shard)));
    }
    for (const auto& [k, v] : opened->second.metadata) merged.emplace(k, v);
    AddWeightsFile(src, shard, std::move(opened->first), std::move(opened->second));
  }
  if (src.tensors.size() != shard_of.size()) {
    std::set<std::string_view> present;
    for (const TensorDesc& t : src.tensors) present.insert(t.name);
    for (const auto& [tensor, shard] : shard_of)
      if (!present.count(tensor))
        return DataError(index_path, doc.KeyOffset("weight_map", tensor),
                         fmt::format("weight_map {}", Quote(tensor)),
                         fmt::format("index says shard {} but that shard has no such tensor",
                                     Quote(shard)));
  }
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
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(dir), ec).lexically_normal();
  std::string dir_name = abs.filename().string();
  if (dir_name.empty()) dir_name = abs.parent_path().filename().string();  // "dir/" form
  if (!dir_name.empty()) src->name_hint = dir_name;
  return src;
}

}  // namespace hart::formats

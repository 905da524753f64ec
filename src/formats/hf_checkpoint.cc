// Hugging Face checkpoint pieces shared by the safetensors and PyTorch
// readers: the sharded index, sidecar files, derived fields.
#include "formats/hf_checkpoint.h"

#include <filesystem>

#include "core/status.h"
#include "formats/safetensors.h"

namespace hart::formats::hf_internal {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using safetensors_internal::JsonDoc;
using safetensors_internal::JsonTypeName;
using safetensors_internal::Quote;
}  // namespace

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : (fs::path(dir) / name).string();
}

std::string BaseName(const std::string& path) { return fs::path(path).filename().string(); }

std::string StripSuffix(std::string s, std::string_view suffix) {
  if (s.ends_with(suffix) && s.size() > suffix.size()) s.resize(s.size() - suffix.size());
  return s;
}

std::string DirModelName(const std::string& dir) {
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(dir), ec).lexically_normal();
  std::string name = abs.filename().string();
  if (name.empty()) name = abs.parent_path().filename().string();  // "dir/" form
  return name;
}

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

absl::StatusOr<WeightMap> ReadWeightMap(const std::string& index_path) {
  WeightMap out;
  ASSIGN_OR_RETURN(out.map, MappedFile::Open(index_path));
  if (out.map->size() > kMaxIndexBytes)
    return DataError(index_path, 0, "index", fmt::format("{} bytes exceeds the limit of {} bytes",
                                                         out.map->size(), kMaxIndexBytes));
  auto bytes = out.map->bytes();
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  ASSIGN_OR_RETURN(out.doc, safetensors_internal::ParseJsonStrict(text, index_path, 0, "index", ""));
  const JsonDoc& doc = out.doc;
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
    out.metadata = *im;
  }
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
    out.shard_of.emplace(tensor, s);
    out.shards.insert(s);
  }
  return out;
}

absl::Status CheckShardTensors(const WeightMap& wm, const std::string& index_path,
                               const std::string& shard, const std::vector<TensorDesc>& tensors,
                               size_t first) {
  for (size_t i = first; i < tensors.size(); ++i) {
    const TensorDesc& t = tensors[i];
    auto it = wm.shard_of.find(t.name);
    if (it == wm.shard_of.end())
      return DataError(index_path, wm.doc.KeyOffset("weight_map"), fmt::format("weight_map {}", Quote(t.name)),
                       fmt::format("tensor is in shard {} but missing from the index", Quote(shard)));
    if (it->second != shard)
      return DataError(index_path, wm.doc.KeyOffset("weight_map", t.name),
                       fmt::format("weight_map {}", Quote(t.name)),
                       fmt::format("index says shard {} but the tensor is in shard {}",
                                   Quote(it->second), Quote(shard)));
  }
  return absl::OkStatus();
}

absl::Status CheckAllListed(const WeightMap& wm, const std::string& index_path,
                            const std::vector<TensorDesc>& tensors) {
  if (tensors.size() == wm.shard_of.size()) return absl::OkStatus();
  std::set<std::string_view> present;
  for (const TensorDesc& t : tensors) present.insert(t.name);
  for (const auto& [tensor, shard] : wm.shard_of)
    if (!present.count(tensor))
      return DataError(index_path, wm.doc.KeyOffset("weight_map", tensor),
                       fmt::format("weight_map {}", Quote(tensor)),
                       fmt::format("index says shard {} but that shard has no such tensor", Quote(shard)));
  // Only a duplicate name across shards is left; ValidateSource names it.
  return absl::OkStatus();
}

size_t AddRawFile(ModelSource& src, std::string name, std::shared_ptr<MappedFile> map) {
  SourceFile f;
  f.name = std::move(name);
  f.layout.push_back({0, map->size(), -1});
  f.map = std::move(map);
  src.files.push_back(std::move(f));
  return src.files.size() - 1;
}

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

}  // namespace hart::formats::hf_internal

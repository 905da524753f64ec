// The two torch.save containers: the zip archive (torch >= 1.6) and the
// legacy stream of pickles + raw storages. Both end in CollectTensors /
// MaterializeTensors (torch_tensors.cc).
#include "formats/torch.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/limits.h"
#include "formats/torch_internal.h"
#include "formats/zip_reader.h"

namespace hart::formats {
namespace {

using torch_internal::Collected;
using torch_internal::OwnedBudget;
using torch_internal::StorageInfo;

// The legacy format's first pickle, torch.serialization.MAGIC_NUMBER.
constexpr std::string_view kLegacyMagic = "0x1950a86a20f9469cfc6c";
constexpr int64_t kLegacyProtocol = 1001;
// data.pkl of a compressed archive is inflated whole; it holds no tensor data.

absl::StatusOr<TorchCheckpoint> Finish(Collected& c, const std::string& file, OwnedBudget& budget,
                                       nlohmann::json meta) {
  TorchCheckpoint out;
  ASSIGN_OR_RETURN(out.tensors, torch_internal::MaterializeTensors(c, file, budget));
  meta["state_dict_keys"] = out.tensors.size();
  meta["storages"] = c.storages.size();
  if (!c.module_metadata.is_null()) meta["_metadata"] = std::move(c.module_metadata);
  if (!c.values.empty()) meta["values"] = std::move(c.values);
  if (c.values_omitted) meta["values_omitted"] = c.values_omitted;
  out.metadata = std::move(meta);
  return out;
}

std::string EntryText(std::span<const uint8_t> f, const ZipEntry* e) {
  if (!e || e->method != 0 || e->size > 64) return "";
  std::string s(reinterpret_cast<const char*>(f.data() + e->data_offset), e->size);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

absl::StatusOr<TorchCheckpoint> ParseZip(std::span<const uint8_t> f, const std::string& name,
                                         const TorchReadOptions& opt, OwnedBudget& budget) {
  ASSIGN_OR_RETURN(std::vector<ZipEntry> entries, ReadZipDirectory(f, name));
  const ZipEntry* pkl = nullptr;
  for (const ZipEntry& e : entries) {
    // <archive>/data.pkl, the archive name being one path component.
    if (!absl::EndsWith(e.name, "/data.pkl") || e.name.find('/') != e.name.size() - 9) continue;
    if (pkl)
      return DataError(name, e.header_offset, "zip entry", fmt::format("both {} and {} look like the checkpoint's pickle", Quote(pkl->name), Quote(e.name)));
    pkl = &e;
  }
  if (!pkl) return DataError(name, 0, "zip", "no <archive>/data.pkl entry: not a torch.save checkpoint");
  std::string prefix = pkl->name.substr(0, pkl->name.size() - 8);  // "archive/"
  auto find = [&](const std::string& n) -> const ZipEntry* {
    for (const ZipEntry& e : entries)
      if (e.name == n) return &e;
    return nullptr;
  };

  nlohmann::json meta = {{"torch_format", "zip"}, {"archive_name", prefix.substr(0, prefix.size() - 1)}};
  std::string byteorder = EntryText(f, find(prefix + "byteorder"));
  if (!byteorder.empty() && byteorder != "little")
    return DataError(name, find(prefix + "byteorder")->data_offset, "byteorder",
                     fmt::format("{}: only little-endian checkpoints are supported", Quote(byteorder)));
  meta["byteorder"] = byteorder.empty() ? "little" : byteorder;
  if (std::string v = EntryText(f, find(prefix + "version")); !v.empty()) meta["serialization_version"] = v;

  // The pickle: a span of the file when STORED (offsets in messages are then
  // absolute), else inflated and named "file[entry]" in messages.
  std::vector<uint8_t> inflated;
  std::span<const uint8_t> pbytes;
  PickleContext ctx{name, pkl->data_offset, false};
  std::string inflated_name = fmt::format("{}[{}]", name, pkl->name);
  if (pkl->method == 0) {
    ASSIGN_OR_RETURN(pbytes, StoredZipEntry(f, *pkl, name, true));
  } else {
    ASSIGN_OR_RETURN(inflated, InflateZipEntry(f, *pkl, name, kMaxInflatedPickle));
    pbytes = inflated;
    ctx = {inflated_name, 0, false};
  }
  ASSIGN_OR_RETURN(PickleResult pr, RunPickle(pbytes, ctx));
  ASSIGN_OR_RETURN(Collected c, torch_internal::CollectTensors(pr, ctx.file));

  for (auto& [key, info] : c.storages) {
    const ZipEntry* e = find(prefix + "data/" + key);
    if (!e)
      return DataError(name, info.first_offset, fmt::format("storage {}", Quote(key)),
                       fmt::format("no zip entry '{}data/{}'", prefix, key));
    if (!info.dtype_ok) continue;  // refused with the tensor's name later
    uint64_t es = Info(info.dtype).type_size;
    if (info.numel > e->size / es || info.numel * es != e->size)
      return DataError(name, e->header_offset, fmt::format("zip entry {}", Quote(e->name)),
                       fmt::format("holds {} bytes but the pickle declares {} x {} ({})", e->size,
                                   info.numel, info.type_name, es));
    if (e->method == 0) {
      ASSIGN_OR_RETURN(info.data.bytes, StoredZipEntry(f, *e, name, opt.verify_crc));
      info.data.in_file = true;
      info.data.file_offset = e->data_offset;
    } else {
      RETURN_IF_ERROR(budget.Take(e->size, fmt::format("zip entry {}", Quote(e->name))));
      ASSIGN_OR_RETURN(auto bytes, InflateZipEntry(f, *e, name, budget.limit()));
      auto owner = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
      info.data.bytes = *owner;
      info.data.owner = std::move(owner);
    }
    info.located = true;
  }
  return Finish(c, name, budget, std::move(meta));
}

absl::StatusOr<TorchCheckpoint> ParseLegacy(std::span<const uint8_t> f, const std::string& name,
                                            OwnedBudget& budget) {
  uint64_t pos = 0;
  std::vector<PickleResult> pickles;  // magic, protocol, sys_info, main, keys
  for (int i = 0; i < 5; ++i) {
    ASSIGN_OR_RETURN(PickleResult r, RunPickle(f.subspan(pos), {name, pos, false}));
    if (i == 0 && (r.root->kind != PickleKind::kBigInt || r.root->text != kLegacyMagic))
      return DataError(name, 0, "torch legacy magic number",
                       "the first pickle is not torch's magic number: a pickle, but not a torch checkpoint");
    if (i == 1 && (r.root->kind != PickleKind::kInt || r.root->integer != kLegacyProtocol))
      return DataError(name, pos, "torch legacy protocol version", "is not 1001");
    pos = r.end;
    pickles.push_back(std::move(r));
  }
  nlohmann::json meta = {{"torch_format", "legacy"}, {"serialization_version", kLegacyProtocol}};
  const PickleValue* sys = pickles[2].root;
  if (sys->kind == PickleKind::kDict) {
    for (size_t i = 0; i + 1 < sys->items.size(); i += 2) {
      const PickleValue *k = sys->items[i], *v = sys->items[i + 1];
      if (k->kind != PickleKind::kString || k->text != "little_endian") continue;
      if (v->kind != PickleKind::kBool || !v->boolean)
        return DataError(name, v->offset, "sys_info little_endian", "only little-endian checkpoints are supported");
    }
    meta["sys_info"] = torch_internal::ValueToJson(sys);
  }
  meta["byteorder"] = "little";
  ASSIGN_OR_RETURN(Collected c, torch_internal::CollectTensors(pickles[3], name));

  const PickleValue* keys = pickles[4].root;
  if (keys->kind != PickleKind::kList)
    return DataError(name, keys->offset, "torch legacy storage keys", "not a list");
  for (const PickleValue* k : keys->items) {
    std::string field = fmt::format("storage {}", Quote(k->text));
    if (k->kind != PickleKind::kString && k->kind != PickleKind::kBytes)
      return DataError(name, k->offset, "torch legacy storage keys", "a key is not a string");
    auto it = c.storages.find(k->text);
    // torch.load asserts every listed key was declared by the main pickle.
    if (it == c.storages.end())
      return DataError(name, k->offset, field, "listed in the storage keys but no tensor uses it");
    StorageInfo& info = it->second;
    if (info.located) return DataError(name, k->offset, field, "listed twice");
    if (pos > f.size() || f.size() - pos < 8)
      return DataError(name, pos, field, "file ends before the storage's element count");
    uint64_t numel = 0;
    for (int b = 0; b < 8; ++b) numel |= static_cast<uint64_t>(f[pos + b]) << (8 * b);
    pos += 8;
    uint64_t es = info.dtype_ok ? Info(info.dtype).type_size : 1;
    if (numel != info.numel)
      return DataError(name, pos - 8, field, fmt::format("holds {} elements but the pickle declares {}", numel, info.numel));
    if (numel > (f.size() - pos) / es)
      return DataError(name, pos, field, fmt::format("{} x {} bytes run past the end of the file", numel, es));
    info.data.bytes = f.subspan(pos, numel * es);
    info.data.in_file = true;
    info.data.file_offset = pos;
    info.located = true;
    pos += numel * es;
  }
  for (const auto& [key, info] : c.storages)
    if (!info.located)
      return DataError(name, info.first_offset, fmt::format("storage {}", Quote(key)), "missing from the storage keys");
  return Finish(c, name, budget, std::move(meta));
}

}  // namespace

bool LooksLikeTorch(std::span<const uint8_t> head) {
  if (head.size() >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return true;
  return head.size() >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5;
}

absl::StatusOr<TorchCheckpoint> ParseTorch(std::span<const uint8_t> file, std::string_view name,
                                           const TorchReadOptions& options) {
  std::string n(name);
  uint64_t limit = options.max_owned_bytes;
  if (limit == 0) limit = 2 * static_cast<uint64_t>(file.size()) + (256ull << 20);
  OwnedBudget budget(n, limit);
  if (file.size() >= 4 && file[0] == 'P' && file[1] == 'K') return ParseZip(file, n, options, budget);
  // Anything else is read as the legacy stream of pickles, so a hostile
  // pickle of any protocol is refused naming its global. (The pre-1.0 tar
  // format is not supported.)
  return ParseLegacy(file, n, budget);
}

absl::StatusOr<ModelSource> ReadTorch(const std::string& path, const TorchReadOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  std::filesystem::path p(path);
  std::string base = p.filename().string();
  ASSIGN_OR_RETURN(TorchCheckpoint ck, ParseTorch(map->bytes(), base, options));
  ModelSource src;
  src.format = Format::kTorch;
  src.path = path;
  // Hugging Face names the file pytorch_model.bin; its folder names the model.
  std::string stem = p.stem().string();
  if (stem == "pytorch_model" || stem == "model") {
    std::string parent = std::filesystem::absolute(p).parent_path().filename().string();
    if (!parent.empty()) stem = parent;
  }
  src.name_hint = stem;
  src.metadata = std::move(ck.metadata);
  src.files.push_back({base, std::move(map), {}});
  src.tensors = std::move(ck.tensors);
  RETURN_IF_ERROR(ValidateSource(src));
  return src;
}

}  // namespace hart::formats

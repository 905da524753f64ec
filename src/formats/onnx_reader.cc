// ReadOnnx: maps the .onnx file and its external data files and lays them out.
#include <algorithm>
#include <filesystem>
#include <map>

#include "core/status.h"
#include "formats/onnx.h"
#include "formats/onnx_internal.h"

namespace hart::formats {
namespace fs = std::filesystem;
namespace {

// An external location must name a file inside the model's directory: a
// relative path without "..", which after resolving symlinks still lies
// below the directory.
absl::StatusOr<std::string> CheckLocation(const std::string& location, const fs::path& dir,
                                          std::string_view file, uint64_t at, const std::string& field) {
  fs::path p(location);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory())
    return DataError(file, at, field, fmt::format("{} is an absolute path", Quote(location)));
  for (const auto& part : p)
    if (part == "..")
      return DataError(file, at, field, fmt::format("{} leaves the model's directory", Quote(location)));
  std::string norm = p.lexically_normal().string();
  if (norm.empty() || norm == "." || norm.back() == '/')
    return DataError(file, at, field, fmt::format("{} is not a file name", Quote(location)));
  std::error_code ec;
  fs::path base = fs::canonical(dir, ec);
  if (ec) return absl::NotFoundError(fmt::format("{}: {}", dir.string(), ec.message()));
  fs::path real = fs::weakly_canonical(dir / norm, ec);
  if (ec) return DataError(file, at, field, fmt::format("{}: {}", Quote(location), ec.message()));
  auto rel = real.lexically_relative(base);
  if (rel.empty() || *rel.begin() == "..")
    return DataError(file, at, field, fmt::format("{} resolves outside the model's directory", Quote(location)));
  return norm;
}

}  // namespace

absl::StatusOr<ModelSource> ReadOnnx(const std::string& path) {
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  fs::path p(path);
  std::string fname = p.filename().string();
  ASSIGN_OR_RETURN(OnnxModel m, ParseOnnx(map->bytes(), fname));

  ModelSource src;
  src.format = Format::kOnnx;
  src.path = path;
  src.name_hint = p.stem().string();
  src.architecture = "onnx";
  src.metadata = std::move(m.metadata);
  src.license = std::move(m.license);
  src.graph = std::move(m.graph);
  src.files.push_back({fname, map, std::move(m.layout)});
  src.tensors = std::move(m.tensors);

  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::map<std::string, uint32_t> file_of;  // normalized location -> file index
  for (size_t i = 0; i < src.tensors.size(); ++i) {
    if (!m.external[i]) continue;
    const OnnxExternalRef& e = *m.external[i];
    TensorDesc& t = src.tensors[i];
    std::string field = fmt::format("initializer {}.external_data", Quote(t.name));
    ASSIGN_OR_RETURN(std::string loc, CheckLocation(e.location, dir, fname, e.at, field + ".location"));
    if (loc == fname)
      return DataError(fname, e.at, field + ".location", "names the model file itself");
    auto it = file_of.find(loc);
    if (it == file_of.end()) {
      auto xmap = MappedFile::Open((dir / loc).string());
      if (!xmap.ok())
        return DataError(fname, e.at, field + ".location",
                         fmt::format("{}: {}", Quote(loc), Msg(xmap.status())));
      it = file_of.emplace(loc, static_cast<uint32_t>(src.files.size())).first;
      src.files.push_back({loc, *xmap, {}});
    }
    uint64_t fsize = src.files[it->second].map->size();
    uint64_t len = e.length ? *e.length : (e.offset <= fsize ? fsize - e.offset : 0);
    if (e.offset > fsize || len > fsize - e.offset)
      return DataError(fname, e.at, field,
                       fmt::format("bytes [{}, {}) lie past the end of {} ({} bytes)", e.offset,
                                   e.offset + len, Quote(loc), fsize));
    if (len != t.nbytes)
      return DataError(fname, e.at, field + ".length",
                       fmt::format("shape {} x {} is {} bytes but {} holds {} from offset {}",
                                   ShapeToString(t.shape), Name(t.dtype), t.nbytes,
                                   Quote(loc), len, e.offset));
    t.file = it->second;
    t.offset = e.offset;
  }

  // External files: tensor spans in offset order, gaps as other bytes.
  for (uint32_t f = 1; f < src.files.size(); ++f) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < src.tensors.size(); ++i)
      if (m.external[i] && src.tensors[i].file == f && src.tensors[i].nbytes > 0) idx.push_back(i);
    std::sort(idx.begin(), idx.end(),
              [&](size_t a, size_t b) { return src.tensors[a].offset < src.tensors[b].offset; });
    std::vector<Segment>& lay = src.files[f].layout;
    uint64_t pos = 0;
    for (size_t i : idx) {
      const TensorDesc& t = src.tensors[i];
      if (t.offset < pos)
        return DataError(src.files[f].name, t.offset, fmt::format("initializer {}", Quote(t.name)),
                         "overlaps the data of another initializer");
      if (t.offset > pos) lay.push_back({pos, t.offset - pos, -1});
      lay.push_back({t.offset, t.nbytes, static_cast<int64_t>(i)});
      pos = t.offset + t.nbytes;
    }
    uint64_t fsize = src.files[f].map->size();
    if (pos < fsize) lay.push_back({pos, fsize - pos, -1});
  }
  RETURN_IF_ERROR(ValidateSource(src));
  return src;
}

}  // namespace hart::formats

// ReadGguf / ReadGgufMetadata: a .gguf file, or every part of a split model
// (NAME-00001-of-0000N.gguf), as a ModelSource whose layouts reproduce each
// part byte for byte.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/status.h"
#include "formats/gguf.h"
#include "formats/gguf_internal.h"

namespace hart::formats {

namespace fs = std::filesystem;

namespace {

// "NAME-00001-of-00003.gguf" -> base "NAME", part 1, count 3.
struct SplitName {
  std::string base;
  uint32_t part = 0;
  uint32_t count = 0;
};

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<SplitName> ParseSplitName(std::string_view filename) {
  constexpr std::string_view kExt = ".gguf";
  // "-00001-of-00003" is 15 characters.
  if (filename.size() < kExt.size() + 15 || !filename.ends_with(kExt)) return std::nullopt;
  std::string_view stem = filename.substr(0, filename.size() - kExt.size());
  std::string_view tail = stem.substr(stem.size() - 15);
  std::string_view part = tail.substr(1, 5), count = tail.substr(10, 5);
  if (tail[0] != '-' || tail.substr(6, 4) != "-of-" || !AllDigits(part) || !AllDigits(count))
    return std::nullopt;
  return SplitName{std::string(stem.substr(0, stem.size() - 15)),
                   static_cast<uint32_t>(std::stoul(std::string(part))),
                   static_cast<uint32_t>(std::stoul(std::string(count)))};
}

std::string PartFileName(const SplitName& s, uint32_t part) {
  return fmt::format("{}-{:05}-of-{:05}.gguf", s.base, part, s.count);
}

// Segments of one file: everything before the data section, then tensors in
// offset order with the bytes between and after them as other bytes.
std::vector<Segment> Layout(const GgufHeader& h, uint64_t file_size, int64_t first_tensor) {
  std::vector<size_t> order(h.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& ta = h.tensors[a];
    const auto& tb = h.tensors[b];
    return ta.offset != tb.offset ? ta.offset < tb.offset : ta.nbytes < tb.nbytes;
  });
  std::vector<Segment> out;
  uint64_t pos = 0;
  auto raw_to = [&](uint64_t end) {
    if (end > pos) out.push_back({pos, end - pos, -1});
    pos = std::max(pos, end);
  };
  // A file without tensors may end before the (padded) data section.
  raw_to(std::min(h.data_offset, file_size));
  for (size_t i : order) {
    const GgufTensorInfo& t = h.tensors[i];
    uint64_t start = h.data_offset + t.offset;  // bounds checked by ParseGgufHeader
    raw_to(start);
    out.push_back({start, t.nbytes, first_tensor + static_cast<int64_t>(i)});
    pos = start + t.nbytes;
  }
  raw_to(file_size);
  return out;
}

struct Part {
  std::string path;
  std::shared_ptr<MappedFile> map;
  GgufHeader header;
};

absl::StatusOr<Part> OpenPart(const std::string& path) {
  Part p;
  p.path = path;
  ASSIGN_OR_RETURN(p.map, MappedFile::Open(path));
  ASSIGN_OR_RETURN(p.header, ParseGgufHeader(p.map->bytes(), p.map->size(), path));
  return p;
}

// split.* keys, when present, must agree with the file names and contents
// (llama.cpp's gguf-split numbers split.no from 0).
absl::Status CheckSplitKeys(const Part& p, uint32_t index, uint32_t count,
                            uint64_t total_tensors) {
  const GgufMetadata& m = p.header.metadata;
  if (m.Find("split.count")) {
    auto n = m.GetInt("split.count");
    if (!n || *n != static_cast<int64_t>(count))
      return DataError(p.path, 0, "metadata 'split.count'",
                       fmt::format("says {} parts, the file names say {}",
                                   n ? fmt::format("{}", *n) : "a non-integer", count));
  }
  if (m.Find("split.no")) {
    auto n = m.GetInt("split.no");
    if (!n || *n != static_cast<int64_t>(index))
      return DataError(p.path, 0, "metadata 'split.no'",
                       fmt::format("says part {}, the file name says part {} (split.no {})",
                                   n ? fmt::format("{}", *n) : "?", index + 1, index));
  }
  if (m.Find("split.tensors.count")) {
    auto n = m.GetInt("split.tensors.count");
    if (!n || *n < 0 || static_cast<uint64_t>(*n) != total_tensors)
      return DataError(p.path, 0, "metadata 'split.tensors.count'",
                       fmt::format("says {} tensors, the parts hold {}",
                                   n ? fmt::format("{}", *n) : "?", total_tensors));
  }
  return absl::OkStatus();
}

std::string StemWithoutSplit(const std::string& path) {
  std::string file = fs::path(path).filename().string();
  if (auto s = ParseSplitName(file)) return s->base;
  std::string stem = fs::path(path).stem().string();
  return stem.empty() ? file : stem;
}

}  // namespace

absl::StatusOr<ModelSource> ReadGguf(const std::string& path) {
  std::string filename = fs::path(path).filename().string();
  std::optional<SplitName> split = ParseSplitName(filename);
  std::vector<Part> parts;
  if (split) {
    if (split->count == 0 || split->part == 0 || split->part > split->count)
      return DataError(path, 0, "file name",
                       fmt::format("part {} of {} is not a valid split part", split->part,
                                   split->count));
    if (split->part != 1)
      return absl::InvalidArgumentError(fmt::format(
          "{}: is part {} of a {}-part split model; open the first part, {}", path, split->part,
          split->count, PartFileName(*split, 1)));
    fs::path dir = fs::path(path).parent_path();
    for (uint32_t i = 1; i <= split->count; ++i) {
      std::string part_path = i == 1 ? path : (dir / PartFileName(*split, i)).string();
      auto p = OpenPart(part_path);
      if (!p.ok() && absl::IsNotFound(p.status()))
        return absl::NotFoundError(fmt::format("{}: split part {} of {} is missing: {}", path, i,
                                               split->count, Msg(p.status())));
      if (!p.ok()) return p.status();
      parts.push_back(std::move(*p));
    }
  } else {
    ASSIGN_OR_RETURN(Part p, OpenPart(path));
    if (auto n = p.header.metadata.GetInt("split.count"); n && *n > 1)
      return DataError(path, 0, "metadata 'split.count'",
                       fmt::format("the file is one part of a {}-part split model, but its name "
                                   "lacks the -00001-of-{:05} suffix",
                                   *n, *n));
    parts.push_back(std::move(p));
  }

  uint64_t total_tensors = 0;
  for (const Part& p : parts) total_tensors += p.header.tensors.size();

  ModelSource src;
  src.format = Format::kGguf;
  src.path = path;
  const GgufMetadata& meta = parts[0].header.metadata;
  src.metadata = meta.ToJson();
  src.name_hint = meta.GetString("general.name").value_or("");
  if (src.name_hint.empty()) src.name_hint = StemWithoutSplit(path);
  src.architecture = meta.GetString("general.architecture").value_or("");
  src.license = meta.GetString("general.license");
  src.tensors.reserve(total_tensors);
  for (uint32_t i = 0; i < parts.size(); ++i) {
    Part& p = parts[i];
    if (split) RETURN_IF_ERROR(CheckSplitKeys(p, i, split->count, total_tensors));
    SourceFile f;
    f.name = fs::path(p.path).filename().string();
    f.map = p.map;
    f.layout = Layout(p.header, p.map->size(), static_cast<int64_t>(src.tensors.size()));
    for (GgufTensorInfo& t : p.header.tensors) {
      TensorDesc d;
      d.name = std::move(t.name);
      d.dtype = t.dtype;
      d.shape = std::move(t.shape);
      d.file = i;
      d.offset = p.header.data_offset + t.offset;
      d.nbytes = t.nbytes;
      src.tensors.push_back(std::move(d));
    }
    src.files.push_back(std::move(f));
  }
  // Names are unique within a part (ParseGgufHeader); ValidateSource checks
  // them across parts, and everything else once more.
  RETURN_IF_ERROR(ValidateSource(src));
  return src;
}

absl::StatusOr<GgufMetadata> ReadGgufMetadata(const std::string& path) {
  ASSIGN_OR_RETURN(auto map, MappedFile::Open(path));
  ASSIGN_OR_RETURN(GgufHeader h, ParseGgufHeader(map->bytes(), map->size(), path));
  return std::move(h.metadata);
}

}  // namespace hart::formats

// The safetensors header: validation of every field before any tensor is
// trusted. Offsets in errors are absolute in the file: the key of the
// offending entry or field inside the JSON when it can be found.
#include <algorithm>
#include <cstring>

#include "core/status.h"
#include "formats/safetensors.h"
#include "formats/safetensors_json.h"

namespace hart::formats {
namespace {

using nlohmann::json;
using safetensors_internal::JsonDoc;
using safetensors_internal::JsonTypeName;
using safetensors_internal::Quote;

constexpr uint64_t kLengthBytes = 8;

// A JSON number that is a non-negative integer, else an explanation.
absl::StatusOr<uint64_t> AsCount(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return absl::InvalidArgumentError("is negative");
  if (v.is_number_float()) return absl::InvalidArgumentError("is not an integer");
  return absl::InvalidArgumentError(fmt::format("is {}, not an integer", JsonTypeName(v)));
}

struct EntryContext {
  std::string_view file;
  uint64_t base;  // absolute offset of the JSON text
  const JsonDoc* doc;
  const std::string* name;

  absl::Status Error(std::string_view field, std::string_view what) const {
    uint64_t off = field.empty() ? doc->KeyOffset(*name) : doc->KeyOffset(*name, std::string(field));
    std::string f = field.empty() ? fmt::format("tensor {}", Quote(*name))
                                  : fmt::format("tensor {}: {}", Quote(*name), field);
    return DataError(file, base + off, f, what);
  }
};

struct Span {
  uint64_t begin, end;
};

absl::StatusOr<Span> ParseEntry(const EntryContext& ctx, const json& entry, uint64_t data_size,
                                TensorDesc* t) {
  if (!entry.is_object())
    return ctx.Error("", fmt::format("entry is {}, not an object", JsonTypeName(entry)));
  if (!IsValidUtf8(*ctx.name)) return ctx.Error("", "name is not valid UTF-8");
  t->name = *ctx.name;

  auto dt = entry.find("dtype");
  if (dt == entry.end()) return ctx.Error("dtype", "missing");
  if (!dt->is_string())
    return ctx.Error("dtype", fmt::format("is {}, not a string", JsonTypeName(*dt)));
  auto dtype = DTypeFromSafetensors(dt->get_ref<const std::string&>());
  if (!dtype.ok())
    return ctx.Error("dtype", fmt::format("unknown dtype {}", Quote(dt->get_ref<const std::string&>())));
  t->dtype = *dtype;

  auto sh = entry.find("shape");
  if (sh == entry.end()) return ctx.Error("shape", "missing");
  if (!sh->is_array())
    return ctx.Error("shape", fmt::format("is {}, not an array", JsonTypeName(*sh)));
  t->shape.reserve(sh->size());
  for (size_t i = 0; i < sh->size(); ++i) {
    auto d = AsCount((*sh)[i]);
    if (!d.ok()) return ctx.Error("shape", fmt::format("dimension {} {}", i, Msg(d.status())));
    t->shape.push_back(*d);
  }

  auto off = entry.find("data_offsets");
  if (off == entry.end()) return ctx.Error("data_offsets", "missing");
  if (!off->is_array() || off->size() != 2)
    return ctx.Error("data_offsets",
                     off->is_array() ? fmt::format("has {} elements, not 2 (begin, end)", off->size())
                                     : fmt::format("is {}, not an array", JsonTypeName(*off)));
  auto begin = AsCount((*off)[0]);
  if (!begin.ok()) return ctx.Error("data_offsets", fmt::format("begin {}", Msg(begin.status())));
  auto end = AsCount((*off)[1]);
  if (!end.ok()) return ctx.Error("data_offsets", fmt::format("end {}", Msg(end.status())));
  if (*begin > *end)
    return ctx.Error("data_offsets", fmt::format("begin {} is past end {}", *begin, *end));
  if (*end > data_size)
    return ctx.Error("data_offsets", fmt::format("end {} is past the end of the data section "
                                                 "({} bytes)", *end, data_size));

  auto elems = NumElements(t->shape);
  if (!elems.ok())
    return ctx.Error("shape", fmt::format("{} has too many elements", ShapeToString(t->shape)));
  auto nbytes = ByteSize(t->dtype, *elems);
  if (!nbytes.ok())
    return ctx.Error("shape", fmt::format("{} x {} is too many bytes", ShapeToString(t->shape),
                                          Name(t->dtype)));
  if (*nbytes != *end - *begin)
    return ctx.Error("data_offsets",
                     fmt::format("span {} bytes but shape {} x {} is {} bytes", *end - *begin,
                                 ShapeToString(t->shape), Name(t->dtype), *nbytes));
  t->nbytes = *nbytes;
  return Span{*begin, *end};
}

absl::Status ParseMetadata(std::string_view file, uint64_t base, const JsonDoc& doc,
                           const json& m, std::map<std::string, std::string>* out) {
  static const std::string kKey = "__metadata__";
  if (m.is_null()) return absl::OkStatus();
  if (!m.is_object())
    return DataError(file, base + doc.KeyOffset(kKey), kKey,
                     fmt::format("is {}, not an object of strings", JsonTypeName(m)));
  for (const auto& [k, v] : m.items()) {
    if (!v.is_string())
      return DataError(file, base + doc.KeyOffset(kKey, k), fmt::format("__metadata__ {}", Quote(k)),
                       fmt::format("is {}; metadata values must be strings", JsonTypeName(v)));
    out->emplace(k, v.get<std::string>());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> bytes,
                                                         uint64_t file_size,
                                                         std::string_view name) {
  if (file_size < kLengthBytes || bytes.size() < kLengthBytes)
    return DataError(name, 0, "header length",
                     fmt::format("file is {} bytes, too short for the 8-byte header length",
                                 std::min<uint64_t>(file_size, bytes.size())));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  if (n > kMaxSafetensorsHeader)
    return DataError(name, 0, "header length",
                     fmt::format("{} bytes exceeds the limit of {} bytes", n, kMaxSafetensorsHeader));
  if (n > file_size - kLengthBytes)
    return DataError(name, 0, "header length",
                     fmt::format("{} bytes runs past the end of the file ({} bytes)", n, file_size));
  if (bytes.size() - kLengthBytes < n)
    return DataError(name, kLengthBytes, "header",
                     fmt::format("only {} of its {} bytes were given", bytes.size() - kLengthBytes, n));
  std::string_view text(reinterpret_cast<const char*>(bytes.data()) + kLengthBytes, n);
  if (text.empty() || text[0] != '{')
    return DataError(name, kLengthBytes, "header", "does not start with '{' (not a JSON object)");

  ASSIGN_OR_RETURN(JsonDoc doc,
                   safetensors_internal::ParseJsonStrict(text, name, kLengthBytes, "header", "tensor"));
  if (!doc.value.is_object())
    return DataError(name, kLengthBytes, "header",
                     fmt::format("is {}, not a JSON object", JsonTypeName(doc.value)));

  SafetensorsHeader h;
  h.data_offset = kLengthBytes + n;
  const uint64_t data_size = file_size - h.data_offset;
  std::vector<Span> spans;
  for (const auto& [key, value] : doc.value.items()) {
    if (key == "__metadata__") {
      RETURN_IF_ERROR(ParseMetadata(name, kLengthBytes, doc, value, &h.metadata));
      continue;
    }
    EntryContext ctx{name, kLengthBytes, &doc, &key};
    TensorDesc t;
    ASSIGN_OR_RETURN(Span s, ParseEntry(ctx, value, data_size, &t));
    t.offset = h.data_offset + s.begin;
    h.tensors.push_back(std::move(t));
    spans.push_back(s);
  }

  // File order; ties (empty tensors) by name, which the JSON object sorted.
  std::vector<size_t> order(h.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return spans[a].begin != spans[b].begin ? spans[a].begin < spans[b].begin
                                            : spans[a].end < spans[b].end;
  });
  std::vector<TensorDesc> sorted;
  sorted.reserve(order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (k > 0) {
      const size_t p = order[k - 1];  // already moved into `sorted`
      if (spans[i].begin < spans[p].end)
        return DataError(name, kLengthBytes + doc.KeyOffset(h.tensors[i].name, "data_offsets"),
                         fmt::format("tensor {}: data_offsets", Quote(h.tensors[i].name)),
                         fmt::format("[{}, {}) overlaps tensor {} at [{}, {})", spans[i].begin,
                                     spans[i].end, Quote(sorted.back().name), spans[p].begin,
                                     spans[p].end));
    }
    sorted.push_back(std::move(h.tensors[i]));
  }
  h.tensors = std::move(sorted);
  return h;
}

std::vector<Segment> SafetensorsLayout(const SafetensorsHeader& h, uint64_t file_size,
                                       int64_t first_tensor) {
  std::vector<Segment> layout;
  layout.push_back({0, h.data_offset, -1});
  uint64_t pos = h.data_offset;
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const TensorDesc& t = h.tensors[i];
    if (t.offset > pos) layout.push_back({pos, t.offset - pos, -1});
    layout.push_back({t.offset, t.nbytes, first_tensor + static_cast<int64_t>(i)});
    pos = t.offset + t.nbytes;
  }
  if (file_size > pos) layout.push_back({pos, file_size - pos, -1});
  return layout;
}

}  // namespace hart::formats

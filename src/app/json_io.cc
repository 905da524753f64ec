#include "app/json_io.h"

#include <cmath>

#include "fmt/format.h"

namespace hart::app {

using nlohmann::json;

std::string_view JsonTypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "binary";
  }
}

FieldReader::FieldReader(const json& j, std::string_view what) : j_(j), what_(what) {}

void FieldReader::Fail(std::string_view key, std::string_view msg) {
  if (!status_.ok()) return;
  status_ = absl::InvalidArgumentError(fmt::format("{}: field '{}': {}", what_, key, msg));
}

const json* FieldReader::Take(std::string_view key, bool required) {
  seen_.emplace(key);
  if (!j_.is_object()) return nullptr;
  auto it = j_.find(std::string(key));
  if (it == j_.end() || it->is_null()) {
    if (required) Fail(key, "required");
    return nullptr;
  }
  return &*it;
}

FieldReader& FieldReader::String(std::string_view key, std::string* out, bool required) {
  const json* v = Take(key, required);
  if (!v) return *this;
  if (!v->is_string()) {
    Fail(key, fmt::format("expected a string, got {}", JsonTypeName(*v)));
    return *this;
  }
  *out = v->get<std::string>();
  if (required && out->empty()) Fail(key, "must not be empty");
  return *this;
}

FieldReader& FieldReader::OptString(std::string_view key, std::optional<std::string>* out) {
  const json* v = Take(key, false);
  if (!v) return *this;
  if (!v->is_string()) {
    Fail(key, fmt::format("expected a string, got {}", JsonTypeName(*v)));
    return *this;
  }
  *out = v->get<std::string>();
  return *this;
}

FieldReader& FieldReader::Int(std::string_view key, int64_t* out, bool required, int64_t min,
                              int64_t max) {
  const json* v = Take(key, required);
  if (!v) return *this;
  int64_t x = 0;
  if (v->is_number_integer()) {
    x = v->get<int64_t>();
  } else if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      Fail(key, fmt::format("{} is out of range", u));
      return *this;
    }
    x = static_cast<int64_t>(u);
  } else if (v->is_number_float()) {
    double d = v->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < -9.2e18 || d > 9.2e18) {
      Fail(key, fmt::format("expected an integer, got {}", v->dump()));
      return *this;
    }
    x = static_cast<int64_t>(d);
  } else {
    Fail(key, fmt::format("expected an integer, got {}", JsonTypeName(*v)));
    return *this;
  }
  if (x < min || x > max) {
    Fail(key, fmt::format("{} is out of range [{}, {}]", x, min, max));
    return *this;
  }
  *out = x;
  return *this;
}

FieldReader& FieldReader::Int(std::string_view key, int* out, bool required, int min, int max) {
  int64_t x = *out;
  Int(key, &x, required, min, max);
  *out = static_cast<int>(x);
  return *this;
}

FieldReader& FieldReader::Double(std::string_view key, double* out, bool required) {
  const json* v = Take(key, required);
  if (!v) return *this;
  if (!v->is_number()) {
    Fail(key, fmt::format("expected a number, got {}", JsonTypeName(*v)));
    return *this;
  }
  *out = v->get<double>();
  return *this;
}

FieldReader& FieldReader::Bool(std::string_view key, bool* out, bool required) {
  const json* v = Take(key, required);
  if (!v) return *this;
  if (!v->is_boolean()) {
    Fail(key, fmt::format("expected a boolean, got {}", JsonTypeName(*v)));
    return *this;
  }
  *out = v->get<bool>();
  return *this;
}

FieldReader& FieldReader::Strings(std::string_view key, std::vector<std::string>* out,
                                  bool required) {
  const json* v = Take(key, required);
  if (!v) return *this;
  if (!v->is_array()) {
    Fail(key, fmt::format("expected an array of strings, got {}", JsonTypeName(*v)));
    return *this;
  }
  std::vector<std::string> r;
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) {
      Fail(key, fmt::format("element {}: expected a string, got {}", i, JsonTypeName((*v)[i])));
      return *this;
    }
    r.push_back((*v)[i].get<std::string>());
  }
  *out = std::move(r);
  return *this;
}

FieldReader& FieldReader::Enum(std::string_view key, std::string* out,
                               const std::vector<std::string>& allowed, bool required) {
  std::string v = *out;
  String(key, &v, required);
  if (!status_.ok()) return *this;
  for (const auto& a : allowed)
    if (a == v) {
      *out = v;
      return *this;
    }
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  Fail(key, fmt::format("'{}' is not one of {}", v, list));
  return *this;
}

absl::Status FieldReader::Finish() {
  if (!j_.is_object() && !j_.is_null())
    return absl::InvalidArgumentError(
        fmt::format("{}: expected a JSON object, got {}", what_, JsonTypeName(j_)));
  if (!status_.ok()) return status_;
  if (j_.is_object())
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key()))
        return absl::InvalidArgumentError(fmt::format("{}: unknown field '{}'", what_, it.key()));
  return absl::OkStatus();
}

std::string DumpJson(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

// ---- the store's rows (as `hart --json` has always printed them) ----

std::string_view DiffKindName(store::DiffRow::Kind k) {
  switch (k) {
    case store::DiffRow::Kind::kAdded: return "added";
    case store::DiffRow::Kind::kRemoved: return "removed";
    case store::DiffRow::Kind::kChanged: return "changed";
  }
  return "changed";
}

json ToJson(const store::IngestResult& r) {
  json j = {{"version", r.model + "@" + std::to_string(r.number)},
            {"version_id", r.version_id},
            {"model", r.model},
            {"number", r.number},
            {"tensors", r.tensors},
            {"logical_bytes", r.logical_bytes},
            {"new_bytes", r.new_bytes},
            {"chunks", r.chunks},
            {"new_chunks", r.new_chunks},
            {"license", r.license}};
  if (r.suggested_parent) {
    j["suggested_parent"] = *r.suggested_parent;
    j["suggested_shared"] = r.suggested_shared;
  } else {
    j["suggested_parent"] = nullptr;
  }
  return j;
}

json ToJson(const store::ModelRow& r) {
  return {{"name", r.name},
          {"versions", r.versions},
          {"latest", r.latest},
          {"logical_bytes", r.logical_bytes}};
}

json ToJson(const store::VersionRow& r, bool with_metadata) {
  json j = {{"version", r.ref()},
            {"id", r.id},
            {"model", r.model},
            {"number", r.number},
            {"parent", r.parent ? json(*r.parent) : json(nullptr)},
            {"format", std::string(formats::FormatName(r.format))},
            {"license", r.license},
            {"architecture", r.architecture},
            {"created_at", r.created_at},
            {"tensors", r.tensors},
            {"logical_bytes", r.logical_bytes}};
  if (with_metadata) j["metadata"] = r.metadata;
  return j;
}

json ToJson(const store::TensorRow& r) {
  return {{"name", r.name},
          {"dtype", std::string(Name(r.dtype))},
          {"shape", r.shape},
          {"nbytes", r.nbytes},
          {"contiguous", r.contiguous},
          {"shared_with", r.shared_with}};
}

json ToJson(const store::FileRow& r) {
  json j = {{"index", r.index}, {"name", r.name}, {"size", r.size}, {"digest", r.digest}};
  j["sha256"] = r.sha256.empty() ? json() : json(r.sha256);
  return j;
}

json ToJson(const store::DiffRow& r) {
  auto opt = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return {{"kind", std::string(DiffKindName(r.kind))},
          {"name", r.name},
          {"dtype_a", opt(r.dtype_a)},
          {"dtype_b", opt(r.dtype_b)},
          {"shape_a", r.shape_a},
          {"shape_b", r.shape_b},
          {"bytes_a", r.bytes_a},
          {"bytes_b", r.bytes_b},
          {"changed_bytes", r.changed_bytes}};
}

json ToJson(const store::VerifyReport& r) {
  json bad = json::array();
  for (const auto& b : r.bad)
    bad.push_back({{"sha256", b.sha256},
                   {"pack", b.pack},
                   {"offset", b.offset},
                   {"reason", b.reason},
                   {"tensors", b.tensors}});
  return {{"ok", r.ok()}, {"chunks", r.chunks}, {"bytes", r.bytes}, {"bad", bad}};
}

json ToJson(const store::GcReport& r) {
  return {{"chunks_removed", r.chunks_removed},
          {"bytes_reclaimed", r.bytes_reclaimed},
          {"packs_rewritten", r.packs_rewritten},
          {"packs_deleted", r.packs_deleted}};
}

json ToJson(const store::StatsRow& r) {
  json j = {{"versions", r.versions},
            {"tensors", r.tensors},
            {"logical_bytes", r.logical_bytes},
            {"physical_bytes", r.physical_bytes},
            {"dedup_ratio", r.dedup_ratio}};
  if (!r.model.empty()) j["model"] = r.model;
  return j;
}

json ToJson(const store::StatsReport& r) {
  json models = json::array();
  for (const auto& m : r.models) models.push_back(ToJson(m));
  return {{"models", models},
          {"total", ToJson(r.total)},
          {"pack_bytes", r.pack_bytes},
          {"catalog_bytes", r.catalog_bytes}};
}

json ToJson(const store::Event& e) {
  return {{"id", e.id}, {"ts", e.ts}, {"kind", e.kind}, {"payload", e.payload}};
}

}  // namespace hart::app

#include "cli/store_json.h"

#include <string>

namespace hart::cli {

using nlohmann::json;

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
  nlohmann::json j = {{"index", r.index}, {"name", r.name}, {"size", r.size}, {"digest", r.digest}};
  j["sha256"] = r.sha256.empty() ? nlohmann::json() : nlohmann::json(r.sha256);
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

}  // namespace hart::cli

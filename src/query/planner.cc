#include "query/planner.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"
#include "query/functions.h"
#include "query/graph.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "store/db.h"

namespace hart::query {
namespace {

using store::Stmt;

struct Row {
  int64_t id;
  std::string name, kind, role, dtype, shape;
  int layer;
  uint64_t nbytes;
  int64_t parent;
};

absl::StatusOr<std::vector<Row>> VersionComponents(sqlite3* db, int64_t version_id) {
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db,
      "SELECT id, name, kind, COALESCE(role, ''), COALESCE(dtype, ''), COALESCE(shape, '[]'), "
      "COALESCE(layer, -1), nbytes, COALESCE(parent_id, -1) FROM component WHERE version_id = ? ORDER BY id"));
  st.Bind(1, version_id);
  std::vector<Row> rows;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    rows.push_back({st.Int(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4), st.Text(5),
                    static_cast<int>(st.Int(6)), static_cast<uint64_t>(st.Int(7)), st.Int(8)});
  }
  return rows;
}

bool Glob(const std::string& pattern, const std::string& name) {
  return sqlite3_strglob(pattern.c_str(), name.c_str()) == 0;
}

}  // namespace

std::string Plan::Summary() const {
  return fmt::format("need {} of {} tensors: {} of {} ({:.1f}%)", tensors.size(), total_tensors,
                     HumanBytes(need_bytes), HumanBytes(total_bytes),
                     total_bytes ? 100.0 * double(need_bytes) / double(total_bytes) : 0.0);
}

nlohmann::json Plan::ToJson() const {
  nlohmann::json t = nlohmann::json::array();
  for (const auto& p : tensors) {
    nlohmann::json r = nlohmann::json::array();
    for (const auto& b : p.ranges) r.push_back({{"pack", b.pack}, {"offset", b.offset}, {"size", b.size}});
    t.push_back({{"id", p.id}, {"name", p.name}, {"dtype", Name(p.dtype)}, {"shape", p.shape},
                 {"bytes", p.nbytes}, {"role", p.role}, {"layer", p.layer},
                 {"selected", p.selected}, {"ranges", r}});
  }
  return {{"version", version.ref()}, {"tensors", t}, {"selected", selected},
          {"need_tensors", tensors.size()}, {"total_tensors", total_tensors},
          {"need_bytes", need_bytes}, {"total_bytes", total_bytes}, {"summary", Summary()}};
}

absl::StatusOr<Plan> MakePlan(Engine& engine, const PlanRequest& req) {
  int given = !req.sql.empty() + !req.search.empty() + !req.names.empty();
  if (given != 1)
    return absl::InvalidArgumentError("give exactly one selection: sql, search or names");
  sqlite3* db = engine.db();
  ASSIGN_OR_RETURN(store::VersionRef ref, store::ParseVersionRef(req.version));
  Plan plan;
  ASSIGN_OR_RETURN(plan.version, engine.store().Resolve(ref));
  ASSIGN_OR_RETURN(std::vector<Row> rows, VersionComponents(db, plan.version.id));
  std::map<int64_t, size_t> by_id;
  std::map<int64_t, std::vector<int64_t>> children;
  for (size_t i = 0; i < rows.size(); ++i) {
    by_id[rows[i].id] = i;
    if (rows[i].parent >= 0) children[rows[i].parent].push_back(rows[i].id);
    if (rows[i].kind == "tensor") {
      plan.total_bytes += rows[i].nbytes;
      ++plan.total_tensors;
    }
  }

  // 1. Find: the selected components of this version.
  std::vector<int64_t> picked;
  if (!req.sql.empty()) {
    SqlOptions opts;
    opts.timeout_seconds = req.timeout_seconds;
    ASSIGN_OR_RETURN(ResultSet rs, engine.Query(req.sql, opts));
    size_t col = 0;
    for (size_t c = 0; c < rs.columns.size(); ++c)
      if (rs.columns[c] == "id") col = c;
    for (const auto& r : rs.rows) {
      if (rs.columns.empty()) break;
      if (!std::holds_alternative<int64_t>(r[col]))
        return absl::InvalidArgumentError(fmt::format(
            "the selection SQL must return component ids (an integer column named id); got {} in column '{}'",
            ValueToString(r[col]), rs.columns[col]));
      int64_t id = std::get<int64_t>(r[col]);
      if (by_id.count(id)) picked.push_back(id);  // ids of other versions are ignored
    }
  } else if (!req.search.empty()) {
    ASSIGN_OR_RETURN(picked, SearchVersionTensors(db, plan.version.id, req.search));
  } else {
    for (const Row& r : rows)
      if (r.kind == "tensor")
        for (const auto& g : req.names)
          if (Glob(g, r.name)) {
            picked.push_back(r.id);
            break;
          }
  }
  if (picked.empty())
    return absl::NotFoundError(fmt::format("the selection matches no component of {}", plan.version.ref()));

  // Blocks and the model stand for every tensor below them.
  std::set<int64_t> selected;
  std::vector<int64_t> stack = picked;
  while (!stack.empty()) {
    int64_t id = stack.back();
    stack.pop_back();
    const Row& r = rows[by_id[id]];
    if (r.kind == "tensor") {
      selected.insert(id);
      continue;
    }
    for (int64_t c : children[id]) stack.push_back(c);
  }

  // 2. Map: the upstream closure along feeds edges.
  std::set<int64_t> need = selected;
  std::unordered_set<int64_t> visited_from;  // nodes whose upstream is already in `need`
  if (req.closure) {
    // Later tensors first: their upstream walk covers most earlier ones,
    // whose own walks are then skipped.
    for (auto it_sel = selected.rbegin(); it_sel != selected.rend(); ++it_sel) {
      int64_t id = *it_sel;
      if (visited_from.count(id)) continue;
      ASSIGN_OR_RETURN(std::vector<Step> up, Walk(db, id, Direction::kUp, 1 << 20, {"feeds"}));
      for (const Step& s : up) {
        visited_from.insert(s.id);
        auto it = by_id.find(s.id);
        if (it == by_id.end()) continue;
        if (rows[it->second].kind == "tensor") need.insert(s.id);
      }
    }
  }

  // 3. Byte ranges: each tensor's chunks, merged where contiguous in a pack.
  ASSIGN_OR_RETURN(Stmt ch, Stmt::Prepare(db,
      "SELECT c.pack, c.offset, c.size FROM tensor_chunk tc JOIN chunk c ON c.id = tc.chunk_id "
      "WHERE tc.component_id = ? ORDER BY tc.seq"));
  for (const Row& r : rows) {
    if (r.kind != "tensor" || !need.count(r.id)) continue;
    PlanTensor t;
    t.id = r.id;
    t.name = r.name;
    ASSIGN_OR_RETURN(t.dtype, DTypeFromName(r.dtype));
    auto shape = nlohmann::json::parse(r.shape, nullptr, false);
    if (shape.is_array())
      for (const auto& d : shape) t.shape.push_back(d.get<uint64_t>());
    t.nbytes = r.nbytes;
    t.role = r.role;
    t.layer = r.layer;
    t.selected = selected.count(r.id) > 0;
    ch.Reset();
    ch.Bind(1, r.id);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, ch.Step());
      if (!row) break;
      ByteRange b{ch.Int(0), static_cast<uint64_t>(ch.Int(1)), static_cast<uint64_t>(ch.Int(2))};
      if (!t.ranges.empty() && t.ranges.back().pack == b.pack &&
          t.ranges.back().offset + t.ranges.back().size == b.offset)
        t.ranges.back().size += b.size;
      else
        t.ranges.push_back(b);
    }
    plan.need_bytes += t.nbytes;
    plan.selected += t.selected;
    plan.tensors.push_back(std::move(t));
  }
  return plan;
}

namespace {

absl::StatusOr<formats::GgufHeader> ReadGgufHeader(store::Store& st, const store::VersionRow& v) {
  ASSIGN_OR_RETURN(std::vector<store::FileRow> files, st.ListFiles(v.id));
  if (files.empty()) return absl::InternalError(fmt::format("{} has no files", v.ref()));
  const store::FileRow& f = files[0];
  // The header's size is unknown until parsed: read a growing prefix.
  for (uint64_t n = std::min<uint64_t>(f.size, 1 << 20);; n = std::min<uint64_t>(f.size, n * 4)) {
    std::vector<uint8_t> buf(n);
    RETURN_IF_ERROR(st.ReadFileRange(v.id, 0, 0, buf));
    auto h = formats::ParseGgufHeader(buf, f.size, f.name);
    if (h.ok() || n == f.size) return h;
  }
}

}  // namespace

absl::Status WritePlan(Engine& engine, const Plan& plan, const std::string& out_path, LoadFormat format) {
  store::Store& st = engine.store();
  if (format == LoadFormat::kAuto)
    format = plan.version.format == formats::Format::kGguf ? LoadFormat::kGguf : LoadFormat::kSafetensors;
  std::vector<formats::TensorDesc> descs;
  for (const PlanTensor& t : plan.tensors) {
    formats::TensorDesc d;
    d.name = t.name;
    d.dtype = t.dtype;
    d.shape = t.shape;
    d.nbytes = t.nbytes;
    if (format == LoadFormat::kSafetensors && Info(t.dtype).safetensors_name.empty())
      return absl::InvalidArgumentError(fmt::format(
          "tensor '{}' is {}, which safetensors cannot hold; load it as gguf", t.name,
          Name(t.dtype)));
    descs.push_back(std::move(d));
  }
  store::TensorBytes held;
  Progress progress("load", plan.need_bytes);
  formats::TensorBytesFn bytes = [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
    ASSIGN_OR_RETURN(held, st.ReadTensor(plan.version.id, plan.tensors[i].name));
    progress.Add(held.bytes().size());
    return held.bytes();
  };
  absl::Status s;
  if (format == LoadFormat::kGguf) {
    formats::GgufMetadata meta;
    uint64_t alignment = 32;
    if (plan.version.format == formats::Format::kGguf) {
      ASSIGN_OR_RETURN(formats::GgufHeader h, ReadGgufHeader(st, plan.version));
      alignment = h.alignment;
      for (auto& kv : h.metadata.entries)
        if (kv.key.rfind("split.", 0) != 0) meta.entries.push_back(std::move(kv));
    } else {
      formats::GgufValue name;
      name.type = formats::GgufType::kString;
      name.value = plan.version.model;
      meta.entries.push_back({"general.name", name});
      formats::GgufValue lic;
      lic.type = formats::GgufType::kString;
      lic.value = plan.version.license;
      meta.entries.push_back({"general.license", lic});
    }
    s = formats::WriteGguf(out_path, meta, descs, bytes, alignment);
  } else {
    std::map<std::string, std::string> meta;
    if (plan.version.metadata.is_object())
      for (auto& [k, v] : plan.version.metadata.items())
        if (v.is_string()) meta[k] = v.get<std::string>();
    if (!meta.count("license")) meta["license"] = plan.version.license;
    s = formats::WriteSafetensors(out_path, descs, meta, bytes);
  }
  progress.Finish();
  return s;
}

}  // namespace hart::query

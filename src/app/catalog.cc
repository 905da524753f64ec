#include "app/catalog.h"

#include <unordered_set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "app/json_io.h"
#include "core/status.h"
#include "fmt/format.h"
#include "app/access.h"
#include "query/engine.h"
#include "store/db.h"
#include "store/structure.h"

namespace hart::app {

using nlohmann::json;

namespace {
// A parent in a model the caller may not read is left out, as the MQE's
// versions view does (NULL): its name never reaches the caller, and every
// lineage built from it stops there (issue 14).
absl::Status HideUnreadableParents(const Context& ctx, std::vector<store::VersionRow*> rows) {
  if (ctx.caller.role == AccessRole::kAdmin) return absl::OkStatus();
  bool any = false;
  for (auto* v : rows) any = any || v->parent.has_value();
  if (!any) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto readable, ReadableFilter(ctx));
  for (auto* v : rows)
    if (v->parent && !readable(ModelOfRef(*v->parent))) v->parent.reset();
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<store::VersionRow> ResolveVersion(const Context& ctx, std::string_view ref) {
  ASSIGN_OR_RETURN(store::VersionRef r, store::ParseVersionRef(ref));
  RETURN_IF_ERROR(CheckRead(ctx, r.model));
  ASSIGN_OR_RETURN(store::VersionRow v, ctx.st().Resolve(r));
  RETURN_IF_ERROR(HideUnreadableParents(ctx, {&v}));
  return v;
}

// ---- list ----

absl::StatusOr<ListRequest> ListRequest::FromJson(const json& j) {
  ListRequest r;
  RETURN_IF_ERROR(FieldReader(j, "list request").String("model", &r.model).Finish());
  return r;
}
json ListRequest::ToJson() const { return model.empty() ? json::object() : json{{"model", model}}; }

namespace {
void AddAccess(json& item, const std::map<std::string, store::ModelAccess>& access, const std::string& model) {
  auto it = access.find(model);
  if (it == access.end()) return;
  item["owner"] = it->second.owner;
  item["visibility"] = it->second.visibility;
}
}  // namespace

json ListResponse::ToJson() const {
  json j = json::array();
  if (versions_of_model)
    for (const auto& v : versions) {
      j.push_back(app::ToJson(v));
      AddAccess(j.back(), access, v.model);
    }
  else
    for (const auto& m : models) {
      j.push_back(app::ToJson(m));
      AddAccess(j.back(), access, m.name);
      if (auto it = latest.find(m.name); it != latest.end()) {
        j.back()["license"] = it->second.license;
        j.back()["created_at"] = it->second.created_at;
      }
    }
  return j;
}

absl::StatusOr<ListResponse> List(const Context& ctx, const ListRequest& req) {
  ListResponse r;
  if (req.model.empty()) {
    ASSIGN_OR_RETURN(r.models, ctx.st().ListModels());
    // One catalog read for the rule and for the owner/visibility columns;
    // only the access of the models listed goes out.
    ASSIGN_OR_RETURN(auto all, ctx.st().ListModelAccess());
    std::erase_if(r.models, [&](const store::ModelRow& m) {
      auto it = all.find(m.name);
      if (it == all.end() || !MayRead(ctx.caller, it->second)) return true;
      r.access.insert(*it);
      return false;
    });
    // The latest versions' license and time, from the MQE's views (one query).
    ASSIGN_OR_RETURN(auto engine, query::Engine::Attach(ctx.st()));
    ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(engine->db(),
                                        "SELECT v.model, v.license, v.created_at FROM versions v "
                                        "JOIN models m ON m.name = v.model AND v.number = m.latest"));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      std::string model = q.Text(0);
      if (r.access.count(model)) r.latest[model] = {q.Text(1), q.Int(2)};
    }
    return r;
  }
  RETURN_IF_ERROR(CheckRead(ctx, req.model));
  r.versions_of_model = true;
  ASSIGN_OR_RETURN(r.versions, ctx.st().ListVersions(req.model));
  {
    std::vector<store::VersionRow*> rows;
    for (auto& v : r.versions) rows.push_back(&v);
    RETURN_IF_ERROR(HideUnreadableParents(ctx, rows));
  }
  if (r.versions.empty())
    return absl::NotFoundError(fmt::format("no model named '{}'", req.model));
  ASSIGN_OR_RETURN(r.access[req.model], ctx.st().GetModelAccess(req.model));
  return r;
}

// ---- show ----

absl::StatusOr<ShowRequest> ShowRequest::FromJson(const json& j) {
  ShowRequest r;
  RETURN_IF_ERROR(FieldReader(j, "show request").String("version", &r.version, true).Finish());
  return r;
}
json ShowRequest::ToJson() const { return {{"version", version}}; }

json ShowResponse::ToJson() const {
  json j = {{"version", app::ToJson(version, /*with_metadata=*/true)},
            {"files", json::array()},
            {"tensors", json::array()}};
  for (const auto& f : files) j["files"].push_back(app::ToJson(f));
  for (const auto& t : tensors) j["tensors"].push_back(app::ToJson(t));
  j["version"]["owner"] = access.owner;
  j["version"]["visibility"] = access.visibility;
  j["derivation"] = nullptr;
  if (derivation)
    j["derivation"] = {{"method", derivation->method},
                       {"parameters", derivation->parameters},
                       {"inputs", derivation->inputs},
                       {"hart_version", derivation->hart_version},
                       {"created_at", derivation->created_at}};
  j["derived"] = derived;
  return j;
}

absl::StatusOr<ShowResponse> Show(const Context& ctx, const ShowRequest& req) {
  ShowResponse r;
  ASSIGN_OR_RETURN(r.version, ResolveVersion(ctx, req.version));
  ASSIGN_OR_RETURN(r.tensors, ctx.st().ListTensors(r.version.id));
  ASSIGN_OR_RETURN(r.files, ctx.st().ListFiles(r.version.id));
  ASSIGN_OR_RETURN(r.derivation, ctx.st().GetDerivation(r.version.id));
  ASSIGN_OR_RETURN(r.derived, ctx.st().DerivedFrom(r.version.id));
  ASSIGN_OR_RETURN(r.access, ctx.st().GetModelAccess(r.version.model));
  if (ctx.caller.role != AccessRole::kAdmin) {
    // Inputs and derived versions in models the caller may not read are left
    // out, as the MQE's derivations view does.
    ASSIGN_OR_RETURN(auto readable, ReadableFilter(ctx));
    std::erase_if(r.derived, [&](const std::string& ref) { return !readable(ModelOfRef(ref)); });
    // Which other versions hold the same tensor bytes: only readable ones,
    // or the list would tell what others' private models contain.
    for (auto& t : r.tensors)
      std::erase_if(t.shared_with, [&](const std::string& ref) { return !readable(ModelOfRef(ref)); });
    if (r.derivation && r.derivation->inputs.is_array()) {
      nlohmann::json kept = nlohmann::json::array();
      for (const auto& in : r.derivation->inputs)
        if (in.is_object() && readable(ModelOfRef(in.value("ref", std::string())))) kept.push_back(in);
      r.derivation->inputs = std::move(kept);
    }
  }
  return r;
}

// ---- diff ----

absl::StatusOr<DiffRequest> DiffRequest::FromJson(const json& j) {
  DiffRequest r;
  RETURN_IF_ERROR(
      FieldReader(j, "diff request").String("a", &r.a, true).String("b", &r.b, true).Finish());
  return r;
}
json DiffRequest::ToJson() const { return {{"a", a}, {"b", b}}; }

json DiffSummary::ToJson() const {
  return {{"added", added},
          {"removed", removed},
          {"changed", changed},
          {"changed_bytes", changed_bytes},
          {"logical_bytes_a", logical_bytes_a},
          {"logical_bytes_b", logical_bytes_b}};
}

json DiffResponse::ToJson() const {
  json j = {{"a", a.ref()}, {"b", b.ref()}, {"rows", json::array()}};
  for (const auto& r : rows) j["rows"].push_back(app::ToJson(r));
  j["summary"] = summary.ToJson();
  return j;
}

absl::StatusOr<DiffResponse> Diff(const Context& ctx, const DiffRequest& req) {
  DiffResponse r;
  ASSIGN_OR_RETURN(r.a, ResolveVersion(ctx, req.a));
  ASSIGN_OR_RETURN(r.b, ResolveVersion(ctx, req.b));
  ASSIGN_OR_RETURN(r.rows, ctx.st().Diff(r.a.id, r.b.id));
  for (const auto& row : r.rows) {
    switch (row.kind) {
      case store::DiffRow::Kind::kAdded: ++r.summary.added; break;
      case store::DiffRow::Kind::kRemoved: ++r.summary.removed; break;
      case store::DiffRow::Kind::kChanged: ++r.summary.changed; break;
    }
    r.summary.changed_bytes += row.changed_bytes;
  }
  r.summary.logical_bytes_a = r.a.logical_bytes;
  r.summary.logical_bytes_b = r.b.logical_bytes;
  return r;
}

// ---- stats, verify, gc: no parameters ----

absl::StatusOr<StatsRequest> StatsRequest::FromJson(const json& j) {
  RETURN_IF_ERROR(FieldReader(j, "stats request").Finish());
  return StatsRequest{};
}
json StatsRequest::ToJson() const { return json::object(); }
json StatsResponse::ToJson() const { return app::ToJson(report); }

absl::StatusOr<StatsResponse> Stats(const Context& ctx, const StatsRequest&) {
  // Physical bytes per model would tell who shares chunks with whom.
  RETURN_IF_ERROR(CheckAdmin(ctx, "stats"));
  StatsResponse r;
  ASSIGN_OR_RETURN(r.report, ctx.st().Stats());
  return r;
}

absl::StatusOr<VerifyRequest> VerifyRequest::FromJson(const json& j) {
  RETURN_IF_ERROR(FieldReader(j, "verify request").Finish());
  return VerifyRequest{};
}
json VerifyRequest::ToJson() const { return json::object(); }
json VerifyResponse::ToJson() const { return app::ToJson(report); }

absl::StatusOr<VerifyResponse> Verify(const Context& ctx, const VerifyRequest&) {
  RETURN_IF_ERROR(CheckAdmin(ctx, "verify"));
  RETURN_IF_ERROR(ctx.CheckCancel("verify"));
  VerifyResponse r;
  ASSIGN_OR_RETURN(r.report, ctx.st().Verify(ctx.tty_progress));
  return r;
}

absl::StatusOr<GcRequest> GcRequest::FromJson(const json& j) {
  RETURN_IF_ERROR(FieldReader(j, "gc request").Finish());
  return GcRequest{};
}
json GcRequest::ToJson() const { return json::object(); }
json GcResponse::ToJson() const { return app::ToJson(report); }

absl::StatusOr<GcResponse> Gc(const Context& ctx, const GcRequest&) {
  RETURN_IF_ERROR(CheckAdmin(ctx, "gc"));
  GcResponse r;
  ASSIGN_OR_RETURN(r.report, ctx.st().Gc(ctx.actor));
  return r;
}

// ---- rm ----

absl::StatusOr<RemoveRequest> RemoveRequest::FromJson(const json& j) {
  RemoveRequest r;
  RETURN_IF_ERROR(FieldReader(j, "delete request")
                      .String("version", &r.version, true)
                      .Bool("force", &r.force)
                      .Finish());
  return r;
}
json RemoveRequest::ToJson() const { return {{"version", version}, {"force", force}}; }

json RemoveResponse::ToJson() const {
  return {{"deleted", report.ref},
          {"tensors", report.tensors},
          {"exclusive_bytes", hide_sharing ? json(nullptr) : json(report.exclusive_bytes)},
          {"children_relinked", report.children}};
}

absl::StatusOr<RemoveResponse> Remove(const Context& ctx, const RemoveRequest& req) {
  ASSIGN_OR_RETURN(store::VersionRef ref, store::ParseVersionRef(req.version));
  RETURN_IF_ERROR(CheckWrite(ctx, ref.model));
  RemoveResponse r;
  ASSIGN_OR_RETURN(r.report, ctx.st().DeleteVersion(ref, req.force, ctx.actor));
  r.hide_sharing = ctx.caller.role != AccessRole::kAdmin;
  return r;
}


// ---- components ----

absl::StatusOr<ComponentsRequest> ComponentsRequest::FromJson(const json& j) {
  ComponentsRequest r;
  RETURN_IF_ERROR(FieldReader(j, "components request")
                      .String("version", &r.version, true)
                      .String("under", &r.under)
                      .Strings("edges", &r.edges)
                      .Bool("with_edges", &r.with_edges)
                      .Int("max_rows", &r.max_rows, false, 1, kMaxComponentRows)
                      .Finish());
  for (const auto& k : r.edges) {
    if (!store::EdgeKindFromName(k)) {
      return absl::InvalidArgumentError(fmt::format(
          "components request: field 'edges': unknown edge kind \"{}\" (contains, feeds or ties)", k));
    }
  }
  return r;
}
json ComponentsRequest::ToJson() const {
  json j = {{"version", version}, {"with_edges", with_edges}, {"max_rows", max_rows}};
  if (!under.empty()) j["under"] = under;
  if (!edges.empty()) j["edges"] = edges;
  return j;
}

json ComponentsResponse::ToJson() const {
  json j = {{"version", version.ref()}, {"root", root}, {"nodes", json::array()},
            {"edges", json::array()}, {"truncated", truncated}};
  for (const auto& n : nodes) {
    j["nodes"].push_back({{"id", n.id},
                          {"parent", n.parent ? json(*n.parent) : json(nullptr)},
                          {"kind", n.kind},
                          {"name", n.name},
                          {"role", n.role ? json(*n.role) : json(nullptr)},
                          {"layer", n.layer ? json(*n.layer) : json(nullptr)},
                          {"dtype", n.dtype ? json(*n.dtype) : json(nullptr)},
                          {"shape", n.shape},
                          {"nbytes", n.nbytes}});
  }
  for (const auto& e : edges) j["edges"].push_back({{"src", e.src}, {"dst", e.dst}, {"kind", e.kind}});
  return j;
}

absl::StatusOr<ComponentsResponse> Components(const Context& ctx, const ComponentsRequest& req) {
  if (req.max_rows < 1 || req.max_rows > kMaxComponentRows) {
    return absl::InvalidArgumentError(fmt::format("components: max_rows must be in [1, {}]", kMaxComponentRows));
  }
  for (const auto& k : req.edges) {
    if (!store::EdgeKindFromName(k))
      return absl::InvalidArgumentError(fmt::format("components: unknown edge kind \"{}\"", k));
  }
  ComponentsResponse r;
  ASSIGN_OR_RETURN(r.version, ResolveVersion(ctx, req.version));
  ASSIGN_OR_RETURN(auto engine, query::Engine::Attach(ctx.st()));
  sqlite3* db = engine->db();

  // The subtree's root: the version's model node, or `under` (an id or a
  // name of this version's components).
  {
    ASSIGN_OR_RETURN(store::Stmt st, req.under.empty()
                                         ? store::Stmt::Prepare(db,
                                               "SELECT id FROM components WHERE version_id = ? "
                                               "AND parent_id IS NULL ORDER BY id LIMIT 1")
                                         : store::Stmt::Prepare(db,
                                               "SELECT id FROM components WHERE version_id = ? "
                                               "AND (name = ? OR id = ?) ORDER BY name = ? DESC, id LIMIT 1"));
    st.Bind(1, r.version.id);
    if (!req.under.empty()) {
      int64_t id = -1;
      if (!absl::SimpleAtoi(req.under, &id)) id = -1;
      st.Bind(2, req.under).Bind(3, id).Bind(4, req.under);
    }
    ASSIGN_OR_RETURN(bool found, st.Step());
    if (!found) {
      if (req.under.empty())
        return absl::NotFoundError(fmt::format("{} has no component tree", r.version.ref()));
      return absl::NotFoundError(
          fmt::format("{} has no component named or numbered \"{}\"", r.version.ref(), req.under));
    }
    r.root = st.Int(0);
  }

  // The subtree, root first, then by id; one row past the cap tells truncation.
  ASSIGN_OR_RETURN(store::Stmt nodes,
                   store::Stmt::Prepare(db,
                                        "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL "
                                        "SELECT c.id FROM main.component c JOIN sub ON c.parent_id = sub.id) "
                                        "SELECT c.id, c.parent_id, c.kind, c.name, c.role, c.layer, c.dtype, "
                                        "c.shape, c.nbytes FROM sub JOIN components c ON c.id = sub.id "
                                        "ORDER BY c.id != ?1, c.id LIMIT ?2"));
  nodes.Bind(1, r.root).Bind(2, req.max_rows + 1);
  std::unordered_set<int64_t> in;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, nodes.Step());
    if (!row) break;
    if (static_cast<int64_t>(r.nodes.size()) == req.max_rows) {
      r.truncated = true;
      break;
    }
    RETURN_IF_ERROR(ctx.CheckCancel("components"));
    ComponentNodeRow n;
    n.id = nodes.Int(0);
    if (!nodes.IsNull(1)) n.parent = nodes.Int(1);
    n.kind = nodes.Text(2);
    n.name = nodes.Text(3);
    if (!nodes.IsNull(4)) n.role = nodes.Text(4);
    if (!nodes.IsNull(5)) n.layer = nodes.Int(5);
    if (!nodes.IsNull(6)) n.dtype = nodes.Text(6);
    if (!nodes.IsNull(7)) {
      json shape = json::parse(nodes.Text(7), nullptr, false);
      n.shape = shape.is_discarded() ? json(nullptr) : shape;
    }
    n.nbytes = static_cast<uint64_t>(nodes.Int(8));
    in.insert(n.id);
    r.nodes.push_back(std::move(n));
  }
  if (!req.with_edges) return r;

  // Edges with both ends among the nodes, of the asked kinds.
  std::unordered_set<std::string> kinds(req.edges.begin(), req.edges.end());
  ASSIGN_OR_RETURN(store::Stmt edges,
                   store::Stmt::Prepare(db,
                                        "SELECT src, dst, kind FROM edges WHERE version_id = ? "
                                        "ORDER BY src, dst, kind"));
  edges.Bind(1, r.version.id);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, edges.Step());
    if (!row) break;
    ComponentEdgeRow e{edges.Int(0), edges.Int(1), edges.Text(2)};
    if (!in.count(e.src) || !in.count(e.dst)) continue;
    if (!kinds.empty() && !kinds.count(e.kind)) continue;
    if (static_cast<int64_t>(r.edges.size()) == req.max_rows) {
      r.truncated = true;
      break;
    }
    r.edges.push_back(std::move(e));
  }
  return r;
}

// ---- tensors (with stats) ----

absl::StatusOr<TensorsRequest> TensorsRequest::FromJson(const json& j) {
  TensorsRequest r;
  RETURN_IF_ERROR(FieldReader(j, "tensors request")
                      .String("version", &r.version, true)
                      .Bool("stats", &r.stats)
                      .Int("max_stats_bytes", &r.max_stats_bytes, false, 0, kMaxStatsBytes)
                      .Finish());
  return r;
}
json TensorsRequest::ToJson() const {
  return {{"version", version}, {"stats", stats}, {"max_stats_bytes", max_stats_bytes}};
}

json TensorsResponse::ToJson() const {
  json j = json::array();
  for (size_t i = 0; i < tensors.size(); ++i) {
    json t = app::ToJson(tensors[i]);
    if (with_stats) {
      t["stats"] = i < stats.size() ? stats[i] : json(nullptr);
      if (t["stats"].is_null()) t["stats_skipped"] = true;
    }
    j.push_back(std::move(t));
  }
  return j;
}

absl::StatusOr<TensorsResponse> Tensors(const Context& ctx, const TensorsRequest& req) {
  if (req.max_stats_bytes < 0 || req.max_stats_bytes > kMaxStatsBytes) {
    return absl::InvalidArgumentError(fmt::format("tensors: max_stats_bytes must be in [0, {}]", kMaxStatsBytes));
  }
  TensorsResponse r;
  ASSIGN_OR_RETURN(store::VersionRow v, ResolveVersion(ctx, req.version));
  ASSIGN_OR_RETURN(r.tensors, ctx.st().ListTensors(v.id));
  if (!req.stats) return r;
  r.with_stats = true;
  ASSIGN_OR_RETURN(auto engine, query::Engine::Attach(ctx.st()));
  ASSIGN_OR_RETURN(store::Stmt st, store::Stmt::Prepare(engine->db(), "SELECT tensor_stats(?)"));
  uint64_t read = 0;
  for (const auto& t : r.tensors) {
    if (read + t.nbytes > static_cast<uint64_t>(req.max_stats_bytes)) {
      r.stats.push_back(nullptr);
      continue;
    }
    RETURN_IF_ERROR(ctx.CheckCancel("tensor stats"));
    st.Reset();
    st.Bind(1, t.id);
    auto row = st.Step();
    read += t.nbytes;
    if (!row.ok()) {
      // A dtype the decoder lacks: that tensor's stats say why, the rest go on.
      r.stats.push_back({{"error", std::string(row.status().message())}});
      continue;
    }
    json s = nullptr;
    if (*row && !st.IsNull(0)) {
      s = json::parse(st.Text(0), nullptr, false);
      if (s.is_discarded()) s = nullptr;
    }
    r.stats.push_back(std::move(s));
  }
  return r;
}

}  // namespace hart::app

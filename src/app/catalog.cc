#include "app/catalog.h"

#include "app/json_io.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::app {

using nlohmann::json;

absl::StatusOr<store::VersionRow> ResolveVersion(const Context& ctx, std::string_view ref) {
  ASSIGN_OR_RETURN(store::VersionRef r, store::ParseVersionRef(ref));
  return ctx.st().Resolve(r);
}

// ---- list ----

absl::StatusOr<ListRequest> ListRequest::FromJson(const json& j) {
  ListRequest r;
  RETURN_IF_ERROR(FieldReader(j, "list request").String("model", &r.model).Finish());
  return r;
}
json ListRequest::ToJson() const { return model.empty() ? json::object() : json{{"model", model}}; }

json ListResponse::ToJson() const {
  json j = json::array();
  if (versions_of_model)
    for (const auto& v : versions) j.push_back(app::ToJson(v));
  else
    for (const auto& m : models) j.push_back(app::ToJson(m));
  return j;
}

absl::StatusOr<ListResponse> List(const Context& ctx, const ListRequest& req) {
  ListResponse r;
  if (req.model.empty()) {
    ASSIGN_OR_RETURN(r.models, ctx.st().ListModels());
    return r;
  }
  r.versions_of_model = true;
  ASSIGN_OR_RETURN(r.versions, ctx.st().ListVersions(req.model));
  if (r.versions.empty())
    return absl::NotFoundError(fmt::format("no model named '{}'", req.model));
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
  return j;
}

absl::StatusOr<ShowResponse> Show(const Context& ctx, const ShowRequest& req) {
  ShowResponse r;
  ASSIGN_OR_RETURN(r.version, ResolveVersion(ctx, req.version));
  ASSIGN_OR_RETURN(r.tensors, ctx.st().ListTensors(r.version.id));
  ASSIGN_OR_RETURN(r.files, ctx.st().ListFiles(r.version.id));
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
          {"exclusive_bytes", report.exclusive_bytes},
          {"children_relinked", report.children}};
}

absl::StatusOr<RemoveResponse> Remove(const Context& ctx, const RemoveRequest& req) {
  ASSIGN_OR_RETURN(store::VersionRef ref, store::ParseVersionRef(req.version));
  RemoveResponse r;
  ASSIGN_OR_RETURN(r.report, ctx.st().DeleteVersion(ref, req.force, ctx.actor));
  return r;
}

}  // namespace hart::app

#include "app/access.h"

#include "core/status.h"
#include "fmt/format.h"

namespace hart::app {

bool MayRead(const Caller& c, const store::ModelAccess& m) {
  if (c.role == AccessRole::kAdmin) return true;
  if (!c.owner.empty() && c.owner == m.owner) return true;
  if (m.visibility == "public") return true;
  if (m.visibility == "tenant" && !c.tenant.empty() && c.tenant == m.tenant) return true;
  return false;
}

bool MayWrite(const Caller& c, const store::ModelAccess& m) {
  if (c.role == AccessRole::kAdmin) return true;
  return c.role == AccessRole::kContributor && !c.owner.empty() && c.owner == m.owner;
}

namespace {
absl::Status Hidden(std::string_view model) {
  // Word for word what the store says for a model it does not have.
  return absl::NotFoundError(fmt::format("no model named '{}'", model));
}
}  // namespace

absl::Status CheckRead(const Context& ctx, std::string_view model) {
  if (ctx.caller.role == AccessRole::kAdmin) return absl::OkStatus();
  auto m = ctx.st().GetModelAccess(model);
  if (!m.ok()) return absl::IsNotFound(m.status()) ? Hidden(model) : m.status();
  if (!MayRead(ctx.caller, *m)) return Hidden(model);
  return absl::OkStatus();
}

absl::Status CheckWrite(const Context& ctx, std::string_view model) {
  if (ctx.caller.role == AccessRole::kAdmin) return absl::OkStatus();
  auto m = ctx.st().GetModelAccess(model);
  if (!m.ok()) return absl::IsNotFound(m.status()) ? Hidden(model) : m.status();
  if (!MayRead(ctx.caller, *m)) return Hidden(model);
  if (!MayWrite(ctx.caller, *m))
    return absl::PermissionDeniedError(fmt::format("model '{}' is not yours to change", model));
  return absl::OkStatus();
}

absl::Status CheckCreate(const Context& ctx) {
  if (ctx.caller.role == AccessRole::kReader)
    return absl::PermissionDeniedError("creating models needs the Contributor or Admin role");
  return absl::OkStatus();
}

absl::Status IngestAllowed(const Caller& c, std::string_view model, const std::optional<store::ModelAccess>& m) {
  if (c.role == AccessRole::kAdmin) return absl::OkStatus();
  if (!m) {
    if (c.role == AccessRole::kReader)
      return absl::PermissionDeniedError("creating models needs the Contributor or Admin role");
    return absl::OkStatus();
  }
  if (!MayRead(c, *m)) return Hidden(model);
  if (!MayWrite(c, *m))
    return absl::PermissionDeniedError(fmt::format("model '{}' is not yours to change", model));
  return absl::OkStatus();
}

absl::Status CheckIngest(const Context& ctx, std::string_view model) {
  if (ctx.caller.role == AccessRole::kAdmin) return absl::OkStatus();
  if (model.empty()) return absl::InvalidArgumentError("ingest: give the model name (model)");
  auto m = ctx.st().GetModelAccess(model);
  if (!m.ok() && !absl::IsNotFound(m.status())) return m.status();
  return IngestAllowed(ctx.caller, model, m.ok() ? std::optional<store::ModelAccess>(*m) : std::nullopt);
}

absl::Status CheckAdmin(const Context& ctx, std::string_view what) {
  if (ctx.caller.role != AccessRole::kAdmin)
    return absl::PermissionDeniedError(fmt::format("{} needs the Admin role", what));
  return absl::OkStatus();
}

std::string ModelOfRef(std::string_view ref) {
  size_t at = ref.find('@');
  if (at == std::string_view::npos) at = ref.find(':');
  return std::string(ref.substr(0, at));
}

query::ReadScope ReadScopeFor(const Context& ctx) {
  query::ReadScope scope;
  if (ctx.caller.role == AccessRole::kAdmin) return scope;
  scope.may_read = [c = ctx.caller](const std::string& owner, const std::string& tenant,
                                    const std::string& visibility) {
    return MayRead(c, store::ModelAccess{owner, tenant, visibility});
  };
  return scope;
}

absl::StatusOr<std::function<bool(std::string_view)>> ReadableFilter(const Context& ctx) {
  if (ctx.caller.role == AccessRole::kAdmin) return std::function<bool(std::string_view)>([](std::string_view) { return true; });
  ASSIGN_OR_RETURN(auto all, ctx.st().ListModelAccess());
  Caller c = ctx.caller;
  return std::function<bool(std::string_view)>([all = std::move(all), c](std::string_view model) {
    auto it = all.find(std::string(model));
    return it != all.end() && MayRead(c, it->second);
  });
}

absl::StatusOr<store::ModelAccess> SetVisibility(const Context& ctx, const VisibilityRequest& req) {
  RETURN_IF_ERROR(CheckWrite(ctx, req.model));
  ASSIGN_OR_RETURN(store::ModelAccess a, ctx.st().GetModelAccess(req.model));
  a.visibility = req.visibility;
  RETURN_IF_ERROR(ctx.st().SetModelAccess(req.model, a, ctx.actor));
  return a;
}

}  // namespace hart::app

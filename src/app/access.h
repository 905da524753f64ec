// The one access rule (issue 14), used by every use case of src/app/ so the
// REST API, the OpenAI API, MCP and the web UI cannot disagree:
//   Admin          reads and changes everything;
//   the owner      reads its models; changes them when Contributor or Admin;
//   anyone         reads public models; callers of the model's tenant read
//                  tenant-visible ones;
//   creating a model needs Contributor.
// A model the caller may not read does not exist for it: NotFound, the same
// message as for a model that is really absent (no existence leak). A model
// it may read but not change: PermissionDenied (403).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "app/context.h"
#include "query/engine.h"
#include "store/store.h"

namespace hart::app {

bool MayRead(const Caller& c, const store::ModelAccess& m);
bool MayWrite(const Caller& c, const store::ModelAccess& m);

// NotFound "no model named 'X'" (the store's own words) unless the caller may read `model`.
absl::Status CheckRead(const Context& ctx, std::string_view model);
// CheckRead, then PermissionDenied unless the caller may change it.
absl::Status CheckWrite(const Context& ctx, std::string_view model);
// Creating a new model (ingest of a name not yet in the store): Contributor.
absl::Status CheckCreate(const Context& ctx);
// Ingest into `model` ("": named by the file; only an Admin may): CheckWrite
// when it exists, CheckCreate when not. Needs no file, so a server runs it
// before it takes in an upload.
absl::Status CheckIngest(const Context& ctx, std::string_view model);
// The same decision over the model's access as the ingest's commit
// transaction sees it (nullopt: the ingest creates the model).
absl::Status IngestAllowed(const Caller& c, std::string_view model, const std::optional<store::ModelAccess>& m);
// Store-wide work (gc, verify, raw SQL, the audit trail): Admin only.
absl::Status CheckAdmin(const Context& ctx, std::string_view what);

// `hart visibility MODEL private|tenant|public` and PUT /api/models/{model}/visibility.
struct VisibilityRequest {
  std::string model;
  std::string visibility;
};
absl::StatusOr<store::ModelAccess> SetVisibility(const Context& ctx, const VisibilityRequest& req);

// The model name of "model", "model@N" or "model@N:tensor".
std::string ModelOfRef(std::string_view ref);
// The MQE's view of the caller for read-only SQL (query::ReadScope): MayRead
// over each model's columns; unrestricted for an Admin (the local CLI user).
query::ReadScope ReadScopeFor(const Context& ctx);

// Keeps the items whose model the caller may read (one catalog read for all).
absl::StatusOr<std::function<bool(std::string_view model)>> ReadableFilter(const Context& ctx);

}  // namespace hart::app

// Use cases that look at and look after what a store holds: list, show,
// diff, stats, verify, rm, gc. Each is one typed request and response; the
// response's ToJson() is exactly what `hart <cmd> --json` prints, and
// FromJson() reads a request strictly (unknown fields and wrong types are
// InvalidArgument naming the field). Names are data, never SQL or paths:
// every lookup binds them as parameters.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::app {

// `hart ls [MODEL]`: the models, or the versions of one.
struct ListRequest {
  std::string model;  // "": every model
  static absl::StatusOr<ListRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct ListResponse {
  bool versions_of_model = false;           // which of the two lists is set
  std::vector<store::ModelRow> models;      // model == ""
  std::vector<store::VersionRow> versions;  // model given; NotFound when it has none
  nlohmann::json ToJson() const;            // a JSON array of either
};
absl::StatusOr<ListResponse> List(const Context& ctx, const ListRequest& req);

// `hart show MODEL[@V]`: a version's header, files and tensors.
struct ShowRequest {
  std::string version;  // "model" or "model@N"
  static absl::StatusOr<ShowRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct ShowResponse {
  store::VersionRow version;
  std::vector<store::FileRow> files;
  std::vector<store::TensorRow> tensors;
  // {"version": {... "metadata"}, "files": [...], "tensors": [...]}
  nlohmann::json ToJson() const;
};
absl::StatusOr<ShowResponse> Show(const Context& ctx, const ShowRequest& req);

// `hart diff A B`: tensors added, removed and changed from A to B.
struct DiffRequest {
  std::string a, b;  // version references
  static absl::StatusOr<DiffRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct DiffSummary {
  uint64_t added = 0, removed = 0, changed = 0;
  uint64_t changed_bytes = 0;
  uint64_t logical_bytes_a = 0, logical_bytes_b = 0;
  nlohmann::json ToJson() const;
};
struct DiffResponse {
  store::VersionRow a, b;
  std::vector<store::DiffRow> rows;
  DiffSummary summary;
  // {"a": "m@1", "b": "m@2", "rows": [...], "summary": {...}}
  nlohmann::json ToJson() const;
};
absl::StatusOr<DiffResponse> Diff(const Context& ctx, const DiffRequest& req);

// `hart stats`: logical vs physical bytes per model.
struct StatsRequest {
  static absl::StatusOr<StatsRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct StatsResponse {
  store::StatsReport report;
  nlohmann::json ToJson() const;
};
absl::StatusOr<StatsResponse> Stats(const Context& ctx, const StatsRequest& req);

// `hart verify`: re-hash every chunk. A bad chunk is a successful response
// with ok() false (the CLI then exits 2).
struct VerifyRequest {
  static absl::StatusOr<VerifyRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct VerifyResponse {
  store::VerifyReport report;
  bool ok() const { return report.ok(); }
  nlohmann::json ToJson() const;  // {"ok", "chunks", "bytes", "bad": [...]}
};
absl::StatusOr<VerifyResponse> Verify(const Context& ctx, const VerifyRequest& req);

// `hart rm MODEL@V [--force]`: delete one version.
struct RemoveRequest {
  std::string version;  // "model@N" (a bare model: as the store resolves it)
  bool force = false;   // also when it is the parent of others (relinks them)
  static absl::StatusOr<RemoveRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct RemoveResponse {
  store::DeleteReport report;
  // {"deleted", "tensors", "exclusive_bytes", "children_relinked"}
  nlohmann::json ToJson() const;
};
absl::StatusOr<RemoveResponse> Remove(const Context& ctx, const RemoveRequest& req);

// `hart gc`: reclaim chunks no version references.
struct GcRequest {
  static absl::StatusOr<GcRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct GcResponse {
  store::GcReport report;
  nlohmann::json ToJson() const;
};
absl::StatusOr<GcResponse> Gc(const Context& ctx, const GcRequest& req);

// A version reference resolved against the store: InvalidArgument for a
// malformed one, NotFound for an unknown model or number.
absl::StatusOr<store::VersionRow> ResolveVersion(const Context& ctx, std::string_view ref);

}  // namespace hart::app

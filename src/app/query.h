// Use cases over the MQE: sql, search, similar, plan. Each runs on its own
// query::Engine (its own catalog connection with its own authorizer and
// progress handler, see store/store.h "Threads"), so many run at once on one
// shared Store. Every user string reaches SQLite as a bound parameter or as
// the SQL text of the sql use case itself, which the read-only guard checks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"
#include "query/engine.h"
#include "query/planner.h"
#include "query/similarity.h"

namespace hart::app {

// A SQL value as JSON: NULL -> null, numbers as numbers, text as a string
// (text that parses as a JSON object or array, such as metadata and
// tensor_stats, as that JSON), a blob as "x'hex'".
nlohmann::json SqlValueToJson(const query::Value& v);
// One row as the object `hart sql --json` prints per line: {column: value}.
nlohmann::json SqlRowToJson(const std::vector<std::string>& columns,
                            const std::vector<query::Value>& row);

// Caps on a request read from JSON (a remote caller): defaults when the
// request names none, and the most it may ask for.
inline constexpr int64_t kDefaultMaxRows = 10000;
inline constexpr int64_t kMaxMaxRows = 1000000;
inline constexpr double kDefaultTimeoutSeconds = 10;
inline constexpr double kMaxTimeoutSeconds = 300;

// `hart sql "..."`. The CLI runs any number of statements and may --write;
// a request read from JSON is always read-only, one statement, and capped
// (max_rows default kDefaultMaxRows, at most kMaxMaxRows; timeout default
// kDefaultTimeoutSeconds, at most kMaxTimeoutSeconds).
struct SqlRequest {
  std::string sql;
  bool write = false;            // never set by FromJson
  bool single_statement = false; // FromJson: true; more than one statement is InvalidArgument
  double timeout_seconds = 0;    // 0: none; JSON "timeout_seconds"
  int64_t max_rows = 0;          // 0: none; JSON "max_rows": rows past it are dropped, truncated set
  // {"sql", "timeout_seconds"?, "max_rows"?}
  static absl::StatusOr<SqlRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
// The rows of the last statement that returned columns.
struct SqlResponse {
  std::vector<std::string> columns;
  std::vector<std::vector<query::Value>> rows;
  bool truncated = false;  // max_rows cut the result
  // {"columns": [...], "rows": [{column: value}, ...], "truncated": bool}
  // (each element of "rows" is one line of `hart sql --json`).
  nlohmann::json ToJson() const;
};
absl::StatusOr<SqlResponse> Sql(const Context& ctx, const SqlRequest& req);
// Streaming form (the CLI prints as rows come): every statement's columns
// and rows go to `sink`; max_rows counts per statement.
absl::Status SqlStream(const Context& ctx, const SqlRequest& req, const query::RowSink& sink);

// Full-text search over model names, metadata, model cards, tensor names,
// roles and layers (the MQE's search_text). FTS5 syntax; a query FTS5
// cannot parse is retried as quoted terms.
struct SearchRequest {
  std::string query;
  int k = 20;  // 1..1000
  static absl::StatusOr<SearchRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct SearchHit {
  double rank = 0;
  std::string kind;  // "model", "version", "tensor", ...
  std::string ref;   // "model@N"
  std::optional<int64_t> component_id;
  std::string name;
  std::string snippet;
};
struct SearchResponse {
  std::vector<SearchHit> hits;
  // [{"rank", "kind", "ref", "component_id", "name", "snippet"}, ...]
  nlohmann::json ToJson() const;
};
absl::StatusOr<SearchResponse> Search(const Context& ctx, const SearchRequest& req);

// `hart similar TARGET [-k N]`: a tensor (id or "model@N:name") gives the
// nearest tensors; a version ("model[@N]") the nearest versions.
struct SimilarRequest {
  std::string target;
  int k = 10;  // 1..1000
  static absl::StatusOr<SimilarRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct SimilarResponse {
  bool by_tensor = false;
  store::VersionRow version;  // by version: the query version
  std::vector<query::TensorMatch> tensors;
  std::vector<query::VersionMatch> versions;
  // by version: the lineage of the query version (workshop derivations):
  // the versions it was derived from and those derived from it ("m@N").
  std::vector<std::string> derived_from, derived_into;
  // by tensor: [{"id", "ref", "name", "distance"}]; by version:
  // [{"version", "similarity", "matched_tensors", "lineage"}], lineage
  // "derived from" / "derived into" / null
  nlohmann::json ToJson() const;
};
absl::StatusOr<SimilarResponse> Similar(const Context& ctx, const SimilarRequest& req);

// `hart plan`: what a selection needs (closure, byte ranges, cost). From
// JSON the selection SQL runs read-only under the time cap of SqlRequest.
struct PlanRequest {
  query::PlanRequest plan;  // version, sql, search, names, closure, timeout_seconds
  // {"version", "sql"?, "search"?, "names"?, "closure"?}
  static absl::StatusOr<PlanRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct PlanResponse {
  query::Plan plan;
  nlohmann::json ToJson() const;  // query::Plan::ToJson()
};
absl::StatusOr<PlanResponse> Plan(const Context& ctx, const PlanRequest& req);

}  // namespace hart::app

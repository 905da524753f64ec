// Registration of the MQE's SQL function families on a catalog connection,
// one per file, as DuckDB groups its function sets: adding a function
// touches one file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "query/engine.h"
#include "query/graph.h"
#include "store/store.h"

struct sqlite3;

namespace hart::query {

// hart_can_read(owner, tenant, visibility): 1 when the scope lets its caller
// read a model with those columns; always 1 for an unrestricted scope
// (scope.cc). Every other function here and every view relies on it.
absl::Status RegisterAccessFunction(sqlite3* db, ReadScope scope);
// Whether the connection's caller may read the model of component `id`,
// version `id`, or of a ref ("model", "model@N", "model@N:tensor"); false
// also when it does not exist, so callers answer both with one message.
absl::StatusOr<bool> ComponentReadable(sqlite3* db, int64_t id);
absl::StatusOr<bool> VersionReadable(sqlite3* db, int64_t id);
absl::StatusOr<bool> RefReadable(sqlite3* db, const std::string& ref);
// For graph walks: ComponentReadable as a NodeFilter; null (every component)
// when the connection's scope is unrestricted.
absl::StatusOr<NodeFilter> ReadableComponentFilter(sqlite3* db);

// The stable user views (views.cc); `restricted` picks the chunks view that
// counts only chunks of readable tensors.
absl::Status CreateViews(sqlite3* db, bool restricted);
// graph_walk, shortest_path, component_bytes (graph_functions.cc).
absl::Status RegisterGraphFunctions(sqlite3* db);
// tensor_stats, tensor_values, tensor_row (tensor_functions.cc).
absl::Status RegisterTensorFunctions(sqlite3* db, store::Store& store);
// search_text, similar_tensors (search_functions.cc).
absl::Status RegisterSearchFunctions(sqlite3* db, store::Store& store);

// The tensor components of one version that match full-text query q (FTS5
// syntax over tensor names, roles, layers and dtypes; a query FTS5 cannot
// parse is retried as an AND of quoted terms), best match first. The
// planner's --search (search_functions.cc).
absl::StatusOr<std::vector<int64_t>> SearchVersionTensors(sqlite3* db, int64_t version_id,
                                                          const std::string& q);

// lineage, components_as_of (history_functions.cc).
absl::Status RegisterHistoryFunctions(sqlite3* db);

}  // namespace hart::query

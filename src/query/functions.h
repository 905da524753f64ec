// Registration of the MQE's SQL function families on a catalog connection,
// one per file, as DuckDB groups its function sets: adding a function
// touches one file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/store.h"

struct sqlite3;

namespace hart::query {

// The stable user views (views.cc).
absl::Status CreateViews(sqlite3* db);
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

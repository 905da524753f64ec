// Registration of the MQE's SQL function families on a catalog connection,
// one per file, as DuckDB groups its function sets: adding a function
// touches one file.
#pragma once

#include "absl/status/status.h"
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

// lineage, components_as_of (history_functions.cc).
absl::Status RegisterHistoryFunctions(sqlite3* db);

}  // namespace hart::query

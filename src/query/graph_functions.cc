// Graph functions over the component/edge tables:
//   graph_walk(start, direction, max_depth [, kinds])  table-valued: every
//     component reachable from start within max_depth edges, breadth first;
//     direction 'down' follows edges src -> dst, 'up' dst -> src, 'both'.
//     kinds: comma list of edge kinds ('feeds,ties'); default all.
//   shortest_path(a, b [, kinds])  table-valued: the fewest-edges path, along
//     edge direction when one exists, else ignoring direction.
//   component_bytes(c)  scalar: bytes of all tensors in c's subtree.
// A component is given by id, or as text 'model@N:name'. Walks keep a visited
// set, so cycles terminate.
#include <sqlite3.h>

#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_split.h"
#include "core/status.h"
#include "fmt/format.h"
#include "query/functions.h"
#include "query/graph.h"
#include "query/sql_table_function.h"
#include "store/db.h"

namespace hart::query {
namespace {

// A component of a model the caller may not read is answered as absent, in
// the same words (scope.cc). Edges join components of one version today, so
// a walk from a readable start stays inside readable components; the walks
// still check every component they enter (ReadableComponentFilter), so an
// edge across models never leads a scoped caller through one it may not read.
absl::StatusOr<int64_t> ArgComponent(sqlite3* db, sqlite3_value* v, const char* what) {
  if (sqlite3_value_type(v) == SQLITE_INTEGER) {
    int64_t id = sqlite3_value_int64(v);
    ASSIGN_OR_RETURN(bool readable, ComponentReadable(db, id));
    if (!readable) return absl::NotFoundError(fmt::format("no component with id {}", id));
    return id;
  }
  if (sqlite3_value_type(v) == SQLITE_TEXT) {
    std::string ref(reinterpret_cast<const char*>(sqlite3_value_text(v)));
    ASSIGN_OR_RETURN(int64_t id, ResolveComponent(db, ref));
    ASSIGN_OR_RETURN(bool readable, ComponentReadable(db, id));
    if (!readable) return absl::NotFoundError(fmt::format("no component '{}'", ref));
    return id;
  }
  return absl::InvalidArgumentError(fmt::format("{}: expected a component id or 'model@N:name'", what));
}

std::vector<std::string> ArgKinds(sqlite3_value* v) {
  std::vector<std::string> kinds;
  if (v && sqlite3_value_type(v) == SQLITE_TEXT) {
    std::string s(reinterpret_cast<const char*>(sqlite3_value_text(v)));
    for (auto k : absl::StrSplit(s, ',', absl::SkipWhitespace())) kinds.emplace_back(k);
  }
  return kinds;
}

// The rows of graph_walk and shortest_path: one per step, with the
// component's name, kind, role and layer.
absl::StatusOr<std::vector<TableRow>> StepRows(sqlite3* db, const std::vector<Step>& steps) {
  std::vector<int64_t> ids;
  for (const Step& s : steps) ids.push_back(s.id);
  ASSIGN_OR_RETURN(std::vector<NodeInfo> info, LoadNodeInfo(db, ids));
  auto text_or_null = [](const std::string& t) { return t.empty() ? TableCell{} : TableCell{t}; };
  std::vector<TableRow> rows;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    const NodeInfo& n = info[i];
    bool first = s.from < 0;
    rows.push_back({s.id, int64_t{s.depth}, first ? TableCell{} : TableCell{s.from}, text_or_null(s.edge),
                    first ? TableCell{} : TableCell{std::string(s.forward ? "forward" : "backward")},
                    n.name, n.kind, text_or_null(n.role),
                    n.layer < 0 ? TableCell{} : TableCell{int64_t{n.layer}}});
  }
  return rows;
}

absl::StatusOr<std::vector<TableRow>> WalkRows(sqlite3* db, int argc, sqlite3_value** argv) {
  ASSIGN_OR_RETURN(int64_t start, ArgComponent(db, argv[0], "graph_walk start"));
  const char* dir = reinterpret_cast<const char*>(sqlite3_value_text(argv[1]));
  ASSIGN_OR_RETURN(Direction d, ParseDirection(dir ? dir : ""));
  ASSIGN_OR_RETURN(NodeFilter readable, ReadableComponentFilter(db));
  ASSIGN_OR_RETURN(std::vector<Step> steps, Walk(db, start, d, sqlite3_value_int(argv[2]),
                                                 ArgKinds(argc > 3 ? argv[3] : nullptr), readable));
  return StepRows(db, steps);
}

absl::StatusOr<std::vector<TableRow>> PathRows(sqlite3* db, int argc, sqlite3_value** argv) {
  ASSIGN_OR_RETURN(int64_t a, ArgComponent(db, argv[0], "shortest_path a"));
  ASSIGN_OR_RETURN(int64_t b, ArgComponent(db, argv[1], "shortest_path b"));
  ASSIGN_OR_RETURN(NodeFilter readable, ReadableComponentFilter(db));
  ASSIGN_OR_RETURN(std::vector<Step> steps,
                   ShortestPath(db, a, b, ArgKinds(argc > 2 ? argv[2] : nullptr), readable));
  return StepRows(db, steps);
}

void ComponentBytes(sqlite3_context* ctx, int, sqlite3_value** argv) {
  sqlite3* db = sqlite3_context_db_handle(ctx);
  auto id = ArgComponent(db, argv[0], "component_bytes");
  if (!id.ok()) {
    sqlite3_result_error(ctx, std::string(id.status().message()).c_str(), -1);
    return;
  }
  auto bytes = SubtreeBytes(db, *id);
  if (!bytes.ok()) {
    sqlite3_result_error(ctx, std::string(bytes.status().message()).c_str(), -1);
    return;
  }
  sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(*bytes));
}

}  // namespace

absl::Status RegisterGraphFunctions(sqlite3* db) {
  const std::vector<std::string> cols = {"id", "depth", "from_id", "edge", "direction",
                                         "name", "kind", "role", "layer"};
  RETURN_IF_ERROR(RegisterTableFunction(db, {"graph_walk", cols, {"start", "dir", "max_depth", "kinds"},
                                             3, WalkRows}));
  std::vector<std::string> path_cols = cols;
  path_cols[1] = "step";
  RETURN_IF_ERROR(RegisterTableFunction(db, {"shortest_path", path_cols, {"a", "b", "kinds"}, 2, PathRows}));
  int rc = sqlite3_create_function(db, "component_bytes", 1, SQLITE_UTF8, nullptr, ComponentBytes,
                                   nullptr, nullptr);
  if (rc != SQLITE_OK) return store::SqlError(db, rc, "register component_bytes");
  return absl::OkStatus();
}

}  // namespace hart::query

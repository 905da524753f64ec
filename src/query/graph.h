// Graph walks over the catalog's component and edge tables: the C++ side of
// graph_walk / shortest_path / component_bytes, reused by the planner for
// dependency closures. Breadth first with a visited set: cycles terminate.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

struct sqlite3;

namespace hart::query {

enum class Direction { kDown, kUp, kBoth };
absl::StatusOr<Direction> ParseDirection(std::string_view s);  // "down" | "up" | "both"

struct Step {
  int64_t id = 0;
  int depth = 0;       // edges from the start (path: step index)
  int64_t from = -1;   // previous component; -1 for the start
  std::string edge;    // kind of the edge taken; "" for the start
  bool forward = true; // taken along its direction (src -> dst)
};

// Whether a walk may enter a component (issue 14: a scoped caller's walk
// never lists, nor passes through, a component it may not read). Null: all.
using NodeFilter = std::function<absl::StatusOr<bool>(int64_t id)>;

// Every component within max_depth of start (start itself at depth 0).
// kinds empty = every edge kind.
absl::StatusOr<std::vector<Step>> Walk(sqlite3* db, int64_t start, Direction dir, int max_depth,
                                       const std::vector<std::string>& kinds, const NodeFilter& may_enter = nullptr);
// Fewest edges from a to b: along edge direction if possible, else ignoring
// it. Empty when b is unreachable (through components `may_enter` accepts).
absl::StatusOr<std::vector<Step>> ShortestPath(sqlite3* db, int64_t a, int64_t b,
                                               const std::vector<std::string>& kinds,
                                               const NodeFilter& may_enter = nullptr);

struct NodeInfo {
  std::string name, kind, role;
  int layer = -1;
};
absl::StatusOr<std::vector<NodeInfo>> LoadNodeInfo(sqlite3* db, const std::vector<int64_t>& ids);

// 'model@N:name' (or 'model:name' for the latest version) -> component id.
absl::StatusOr<int64_t> ResolveComponent(sqlite3* db, std::string_view ref);
// Bytes of the tensors in the subtree rooted at id (id itself if a tensor).
absl::StatusOr<uint64_t> SubtreeBytes(sqlite3* db, int64_t id);

}  // namespace hart::query

#include "query/graph.h"

#include <sqlite3.h>

#include <algorithm>
#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"

namespace hart::query {
namespace {

struct Neighbor {
  int64_t id;
  std::string kind;
  bool forward;
};

// Prepared neighbour lookups; both directions use an index (edge's primary
// key starts with src, edge_dst indexes dst).
class Adjacency {
 public:
  static absl::StatusOr<Adjacency> Make(sqlite3* db, std::vector<std::string> kinds) {
    Adjacency a;
    a.kinds_ = std::move(kinds);
    ASSIGN_OR_RETURN(a.out_, store::Stmt::Prepare(db, "SELECT dst, kind FROM edge WHERE src = ?"));
    ASSIGN_OR_RETURN(a.in_, store::Stmt::Prepare(db, "SELECT src, kind FROM edge WHERE dst = ?"));
    return a;
  }

  absl::Status Neighbors(int64_t id, Direction dir, std::vector<Neighbor>* out) {
    out->clear();
    if (dir != Direction::kUp) RETURN_IF_ERROR(Collect(out_, id, true, out));
    if (dir != Direction::kDown) RETURN_IF_ERROR(Collect(in_, id, false, out));
    return absl::OkStatus();
  }

 private:
  absl::Status Collect(store::Stmt& st, int64_t id, bool forward, std::vector<Neighbor>* out) {
    st.Reset();
    st.Bind(1, id);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      std::string kind = st.Text(1);
      if (!kinds_.empty() && std::find(kinds_.begin(), kinds_.end(), kind) == kinds_.end()) continue;
      out->push_back({st.Int(0), std::move(kind), forward});
    }
    return absl::OkStatus();
  }

  std::vector<std::string> kinds_;
  store::Stmt out_, in_;
};

absl::Status CheckExists(sqlite3* db, int64_t id) {
  ASSIGN_OR_RETURN(store::Stmt st, store::Stmt::Prepare(db, "SELECT 1 FROM component WHERE id = ?"));
  st.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(fmt::format("no component with id {}", id));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Direction> ParseDirection(std::string_view s) {
  if (s == "down" || s == "out" || s == "downstream") return Direction::kDown;
  if (s == "up" || s == "in" || s == "upstream") return Direction::kUp;
  if (s == "both") return Direction::kBoth;
  return absl::InvalidArgumentError(
      fmt::format("direction '{}': expected 'down', 'up' or 'both'", s));
}

absl::StatusOr<std::vector<Step>> Walk(sqlite3* db, int64_t start, Direction dir, int max_depth,
                                       const std::vector<std::string>& kinds, const NodeFilter& may_enter) {
  RETURN_IF_ERROR(CheckExists(db, start));
  ASSIGN_OR_RETURN(Adjacency adj, Adjacency::Make(db, kinds));
  std::vector<Step> out = {{start, 0, -1, "", true}};
  std::unordered_set<int64_t> seen = {start};
  std::vector<Neighbor> nb;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].depth >= max_depth) continue;
    RETURN_IF_ERROR(adj.Neighbors(out[i].id, dir, &nb));
    int64_t from = out[i].id;
    int depth = out[i].depth + 1;
    for (auto& n : nb) {
      if (!seen.insert(n.id).second) continue;
      if (may_enter) {
        ASSIGN_OR_RETURN(bool ok, may_enter(n.id));
        if (!ok) continue;
      }
      out.push_back({n.id, depth, from, n.kind, n.forward});
    }
  }
  return out;
}

absl::StatusOr<std::vector<Step>> ShortestPath(sqlite3* db, int64_t a, int64_t b,
                                               const std::vector<std::string>& kinds, const NodeFilter& may_enter) {
  RETURN_IF_ERROR(CheckExists(db, a));
  RETURN_IF_ERROR(CheckExists(db, b));
  ASSIGN_OR_RETURN(Adjacency adj, Adjacency::Make(db, kinds));
  for (Direction dir : {Direction::kDown, Direction::kBoth}) {
    std::unordered_map<int64_t, Step> prev = {{a, {a, 0, -1, "", true}}};
    std::deque<int64_t> queue = {a};
    std::vector<Neighbor> nb;
    while (!queue.empty() && !prev.count(b)) {
      int64_t cur = queue.front();
      queue.pop_front();
      RETURN_IF_ERROR(adj.Neighbors(cur, dir, &nb));
      for (auto& n : nb) {
        if (prev.count(n.id)) continue;
        if (may_enter) {
          ASSIGN_OR_RETURN(bool ok, may_enter(n.id));
          if (!ok) continue;
        }
        prev[n.id] = {n.id, prev[cur].depth + 1, cur, n.kind, n.forward};
        queue.push_back(n.id);
      }
    }
    if (!prev.count(b)) continue;
    std::vector<Step> path;
    for (int64_t at = b; at != -1; at = prev[at].from) path.push_back(prev[at]);
    std::reverse(path.begin(), path.end());
    return path;
  }
  return std::vector<Step>{};
}

absl::StatusOr<std::vector<NodeInfo>> LoadNodeInfo(sqlite3* db, const std::vector<int64_t>& ids) {
  ASSIGN_OR_RETURN(store::Stmt st, store::Stmt::Prepare(
                                       db, "SELECT name, kind, role, layer FROM component WHERE id = ?"));
  std::vector<NodeInfo> out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    st.Reset();
    st.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, st.Step());
    NodeInfo n;
    if (row) {
      n.name = st.Text(0);
      n.kind = st.Text(1);
      n.role = st.IsNull(2) ? "" : st.Text(2);
      n.layer = st.IsNull(3) ? -1 : static_cast<int>(st.Int(3));
    }
    out.push_back(std::move(n));
  }
  return out;
}

absl::StatusOr<int64_t> ResolveComponent(sqlite3* db, std::string_view ref) {
  size_t colon = ref.find(':');
  if (colon == std::string_view::npos)
    return absl::InvalidArgumentError(
        fmt::format("component '{}': expected an id or 'model@N:name'", ref));
  std::string_view model = ref.substr(0, colon), name = ref.substr(colon + 1);
  std::string_view number;
  if (size_t at = model.find('@'); at != std::string_view::npos) {
    number = model.substr(at + 1);
    model = model.substr(0, at);
  }
  std::string sql =
      "SELECT c.id FROM component c JOIN version v ON v.id = c.version_id "
      "JOIN model m ON m.id = v.model_id WHERE m.name = ?1 AND c.name = ?2 AND v.number = ";
  sql += number.empty() ? "(SELECT MAX(number) FROM version WHERE model_id = m.id)" : "?3";
  ASSIGN_OR_RETURN(store::Stmt st, store::Stmt::Prepare(db, sql));
  st.Bind(1, model).Bind(2, name);
  if (!number.empty()) st.Bind(3, std::string(number));
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(fmt::format("no component '{}'", ref));
  return st.Int(0);
}

absl::StatusOr<uint64_t> SubtreeBytes(sqlite3* db, int64_t id) {
  RETURN_IF_ERROR(CheckExists(db, id));
  ASSIGN_OR_RETURN(store::Stmt st, store::Stmt::Prepare(db, R"sql(
    WITH RECURSIVE sub(id) AS (
      SELECT ?1 UNION SELECT c.id FROM component c JOIN sub ON c.parent_id = sub.id)
    SELECT COALESCE(SUM(c.nbytes), 0) FROM component c JOIN sub ON c.id = sub.id
    WHERE c.kind = 'tensor')sql"));
  st.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? static_cast<uint64_t>(st.Int(0)) : 0;
}

}  // namespace hart::query

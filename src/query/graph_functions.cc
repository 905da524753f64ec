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
#include "fmt/format.h"
#include "query/functions.h"
#include "query/graph.h"
#include "store/db.h"

namespace hart::query {
namespace {

struct WalkRow {
  int64_t id;
  int depth;
  int64_t from;
  std::string edge;
  std::string direction;
};

// ---- the virtual table plumbing shared by both table-valued functions ----

struct Cursor {
  sqlite3_vtab_cursor base;
  std::vector<WalkRow> rows;
  std::vector<NodeInfo> info;
  size_t pos = 0;
};

enum WalkCol { kId, kDepth, kFrom, kEdge, kDirection, kName, kKind, kRole, kLayer, kArg0 };

struct Table {
  sqlite3_vtab base;
  sqlite3* db;
  bool is_path;
};

int Connect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char**) {
  bool is_path = aux != nullptr;
  const char* ddl = is_path
      ? "CREATE TABLE x(id, step, from_id, edge, direction, name, kind, role, layer,"
        " a HIDDEN, b HIDDEN, kinds HIDDEN)"
      : "CREATE TABLE x(id, depth, from_id, edge, direction, name, kind, role, layer,"
        " start HIDDEN, dir HIDDEN, max_depth HIDDEN, kinds HIDDEN)";
  int rc = sqlite3_declare_vtab(db, ddl);
  if (rc != SQLITE_OK) return rc;
  auto* t = new Table{};
  t->db = db;
  t->is_path = is_path;
  *out = &t->base;
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* v) {
  delete reinterpret_cast<Table*>(v);
  return SQLITE_OK;
}

int BestIndex(sqlite3_vtab* v, sqlite3_index_info* info) {
  auto* t = reinterpret_cast<Table*>(v);
  int nargs = t->is_path ? 3 : 4;
  int required = t->is_path ? 2 : 3;
  int arg_of[4] = {-1, -1, -1, -1};
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    int a = c.iColumn - kArg0;
    if (a < 0 || a >= nargs) continue;
    if (!c.usable || c.op != SQLITE_INDEX_CONSTRAINT_EQ) return SQLITE_CONSTRAINT;
    arg_of[a] = i;
  }
  int n = 0;
  for (int a = 0; a < nargs; ++a) {
    if (arg_of[a] < 0) {
      if (a < required) {
        sqlite3_free(v->zErrMsg);
        v->zErrMsg = sqlite3_mprintf(t->is_path ? "shortest_path(a, b [, kinds]) needs a and b"
                                                : "graph_walk(start, direction, max_depth [, kinds]) "
                                                  "needs start, direction and max_depth");
        return SQLITE_ERROR;
      }
      break;
    }
    info->aConstraintUsage[arg_of[a]].argvIndex = ++n;
    info->aConstraintUsage[arg_of[a]].omit = 1;
  }
  info->idxNum = n;
  info->estimatedCost = 100;
  return SQLITE_OK;
}

int Open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
  auto* c = new Cursor{};
  *out = &c->base;
  return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* c) {
  delete reinterpret_cast<Cursor*>(c);
  return SQLITE_OK;
}

int Fail(sqlite3_vtab_cursor* cur, const absl::Status& s) {
  sqlite3_vtab* v = cur->pVtab;
  sqlite3_free(v->zErrMsg);
  v->zErrMsg = sqlite3_mprintf("%s", std::string(s.message()).c_str());
  return SQLITE_ERROR;
}

absl::StatusOr<int64_t> ArgComponent(sqlite3* db, sqlite3_value* v, const char* what) {
  if (sqlite3_value_type(v) == SQLITE_INTEGER) return sqlite3_value_int64(v);
  if (sqlite3_value_type(v) == SQLITE_TEXT)
    return ResolveComponent(db, reinterpret_cast<const char*>(sqlite3_value_text(v)));
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

int Filter(sqlite3_vtab_cursor* cur, int, const char*, int argc, sqlite3_value** argv) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  auto* t = reinterpret_cast<Table*>(cur->pVtab);
  c->rows.clear();
  c->pos = 0;
  absl::StatusOr<std::vector<Step>> steps;
  if (t->is_path) {
    auto a = ArgComponent(t->db, argv[0], "shortest_path a");
    if (!a.ok()) return Fail(cur, a.status());
    auto b = ArgComponent(t->db, argv[1], "shortest_path b");
    if (!b.ok()) return Fail(cur, b.status());
    steps = ShortestPath(t->db, *a, *b, ArgKinds(argc > 2 ? argv[2] : nullptr));
  } else {
    auto start = ArgComponent(t->db, argv[0], "graph_walk start");
    if (!start.ok()) return Fail(cur, start.status());
    const char* dir = reinterpret_cast<const char*>(sqlite3_value_text(argv[1]));
    auto d = ParseDirection(dir ? dir : "");
    if (!d.ok()) return Fail(cur, d.status());
    int max_depth = sqlite3_value_int(argv[2]);
    steps = Walk(t->db, *start, *d, max_depth, ArgKinds(argc > 3 ? argv[3] : nullptr));
  }
  if (!steps.ok()) return Fail(cur, steps.status());
  std::vector<int64_t> ids;
  for (const Step& s : *steps) {
    c->rows.push_back({s.id, s.depth, s.from, s.edge, s.forward ? "forward" : "backward"});
    ids.push_back(s.id);
  }
  auto info = LoadNodeInfo(t->db, ids);
  if (!info.ok()) return Fail(cur, info.status());
  c->info = std::move(*info);
  return SQLITE_OK;
}

int Next(sqlite3_vtab_cursor* cur) {
  reinterpret_cast<Cursor*>(cur)->pos++;
  return SQLITE_OK;
}

int Eof(sqlite3_vtab_cursor* cur) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  return c->pos >= c->rows.size();
}

int ColumnFn(sqlite3_vtab_cursor* cur, sqlite3_context* ctx, int col) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  const WalkRow& r = c->rows[c->pos];
  const NodeInfo& n = c->info[c->pos];
  switch (col) {
    case kId: sqlite3_result_int64(ctx, r.id); break;
    case kDepth: sqlite3_result_int(ctx, r.depth); break;
    case kFrom:
      if (r.from < 0) sqlite3_result_null(ctx);
      else sqlite3_result_int64(ctx, r.from);
      break;
    case kEdge:
      if (r.edge.empty()) sqlite3_result_null(ctx);
      else sqlite3_result_text(ctx, r.edge.c_str(), -1, SQLITE_TRANSIENT);
      break;
    case kDirection:
      if (r.from < 0) sqlite3_result_null(ctx);
      else sqlite3_result_text(ctx, r.direction.c_str(), -1, SQLITE_TRANSIENT);
      break;
    case kName: sqlite3_result_text(ctx, n.name.c_str(), -1, SQLITE_TRANSIENT); break;
    case kKind: sqlite3_result_text(ctx, n.kind.c_str(), -1, SQLITE_TRANSIENT); break;
    case kRole:
      if (n.role.empty()) sqlite3_result_null(ctx);
      else sqlite3_result_text(ctx, n.role.c_str(), -1, SQLITE_TRANSIENT);
      break;
    case kLayer:
      if (n.layer < 0) sqlite3_result_null(ctx);
      else sqlite3_result_int(ctx, n.layer);
      break;
    default: sqlite3_result_null(ctx); break;
  }
  return SQLITE_OK;
}

int Rowid(sqlite3_vtab_cursor* cur, sqlite3_int64* out) {
  *out = static_cast<sqlite3_int64>(reinterpret_cast<Cursor*>(cur)->pos);
  return SQLITE_OK;
}

sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.iVersion = 0;
  m.xCreate = nullptr;  // eponymous only: used as graph_walk(...) in FROM
  m.xConnect = Connect;
  m.xBestIndex = BestIndex;
  m.xDisconnect = Disconnect;
  m.xDestroy = Disconnect;
  m.xOpen = Open;
  m.xClose = Close;
  m.xFilter = Filter;
  m.xNext = Next;
  m.xEof = Eof;
  m.xColumn = ColumnFn;
  m.xRowid = Rowid;
  return m;
}

const sqlite3_module kModule = MakeModule();
char kPathTag;  // non-null aux marks the shortest_path instance

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
  int rc = sqlite3_create_module(db, "graph_walk", &kModule, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_create_module(db, "shortest_path", &kModule, &kPathTag);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function(db, "component_bytes", 1, SQLITE_UTF8, nullptr, ComponentBytes,
                                 nullptr, nullptr);
  if (rc != SQLITE_OK) return store::SqlError(db, rc, "register graph functions");
  // Connect the eponymous tables now: connecting declares their schema, which
  // the read-only authorizer would otherwise see as a write to sqlite_master
  // inside the user's first query. Prepare alone connects; errors are moot.
  for (const char* sql : {"SELECT * FROM graph_walk", "SELECT * FROM shortest_path"}) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
    sqlite3_finalize(st);
  }
  return absl::OkStatus();
}

}  // namespace hart::query

#include "query/sql_table_function.h"

#include <sqlite3.h>

#include <memory>

#include "absl/strings/str_join.h"
#include "core/status.h"
#include "fmt/format.h"
#include "store/db.h"

namespace hart::query {
namespace {

struct Vtab {
  sqlite3_vtab base;
  sqlite3* db;
  const TableFunctionSpec* spec;
};

struct Cursor {
  sqlite3_vtab_cursor base;
  std::vector<TableRow> rows;
  size_t pos = 0;
};

void SetError(sqlite3_vtab* vt, const std::string& message) {
  sqlite3_free(vt->zErrMsg);
  vt->zErrMsg = sqlite3_mprintf("%s", message.c_str());
}

int Connect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char**) {
  auto* spec = static_cast<const TableFunctionSpec*>(aux);
  std::vector<std::string> cols = spec->columns;
  for (const auto& a : spec->args) cols.push_back(a + " HIDDEN");
  std::string ddl = fmt::format("CREATE TABLE x({})", absl::StrJoin(cols, ", "));
  int rc = sqlite3_declare_vtab(db, ddl.c_str());
  if (rc != SQLITE_OK) return rc;
  auto* v = new Vtab{};
  v->db = db;
  v->spec = spec;
  *out = &v->base;
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* v) {
  delete reinterpret_cast<Vtab*>(v);
  return SQLITE_OK;
}

// The arguments are equality constraints on the hidden columns; they must
// be given in order (f(a) or f(a, b), never f(b) alone).
int BestIndex(sqlite3_vtab* vt, sqlite3_index_info* info) {
  auto* v = reinterpret_cast<Vtab*>(vt);
  const TableFunctionSpec& spec = *v->spec;
  int first = static_cast<int>(spec.columns.size());
  int nargs = static_cast<int>(spec.args.size());
  std::vector<int> arg_of(static_cast<size_t>(nargs), -1);
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    int a = c.iColumn - first;
    if (a < 0 || a >= nargs) continue;
    if (!c.usable || c.op != SQLITE_INDEX_CONSTRAINT_EQ) return SQLITE_CONSTRAINT;
    arg_of[static_cast<size_t>(a)] = i;
  }
  int n = 0;
  for (int a = 0; a < nargs; ++a) {
    if (arg_of[static_cast<size_t>(a)] < 0) {
      if (a < spec.required_args) {
        std::vector<std::string> req(spec.args.begin(), spec.args.begin() + spec.required_args);
        SetError(vt, fmt::format("{}({}) needs {}", spec.name, absl::StrJoin(spec.args, ", "),
                                 absl::StrJoin(req, ", ")));
        return SQLITE_ERROR;
      }
      break;
    }
    info->aConstraintUsage[arg_of[static_cast<size_t>(a)]].argvIndex = ++n;
    info->aConstraintUsage[arg_of[static_cast<size_t>(a)]].omit = 1;
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

int Close(sqlite3_vtab_cursor* cur) {
  delete reinterpret_cast<Cursor*>(cur);
  return SQLITE_OK;
}

int Filter(sqlite3_vtab_cursor* cur, int, const char*, int argc, sqlite3_value** argv) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  auto* v = reinterpret_cast<Vtab*>(cur->pVtab);
  c->rows.clear();
  c->pos = 0;
  auto rows = v->spec->rows(v->db, argc, argv);
  if (!rows.ok()) {
    // Named once: "search_text: fts5: syntax error near ...", but not
    // "graph_walk: graph_walk start: ..." for messages that name it already.
    std::string msg(Msg(rows.status()));
    const std::string& name = v->spec->name;
    if (msg.compare(0, name.size(), name) != 0) msg = name + ": " + msg;
    SetError(cur->pVtab, msg);
    return SQLITE_ERROR;
  }
  c->rows = std::move(*rows);
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

int Column(sqlite3_vtab_cursor* cur, sqlite3_context* ctx, int col) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  const TableRow& r = c->rows[c->pos];
  if (col < 0 || static_cast<size_t>(col) >= r.size()) {
    sqlite3_result_null(ctx);
    return SQLITE_OK;
  }
  const TableCell& cell = r[static_cast<size_t>(col)];
  if (auto* i = std::get_if<int64_t>(&cell)) sqlite3_result_int64(ctx, *i);
  else if (auto* d = std::get_if<double>(&cell)) sqlite3_result_double(ctx, *d);
  else if (auto* s = std::get_if<std::string>(&cell))
    sqlite3_result_text(ctx, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
  else sqlite3_result_null(ctx);
  return SQLITE_OK;
}

int Rowid(sqlite3_vtab_cursor* cur, sqlite3_int64* out) {
  *out = static_cast<sqlite3_int64>(reinterpret_cast<Cursor*>(cur)->pos);
  return SQLITE_OK;
}

sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.xConnect = Connect;  // eponymous only: used as name(...) in FROM
  m.xBestIndex = BestIndex;
  m.xDisconnect = Disconnect;
  m.xDestroy = Disconnect;
  m.xOpen = Open;
  m.xClose = Close;
  m.xFilter = Filter;
  m.xNext = Next;
  m.xEof = Eof;
  m.xColumn = Column;
  m.xRowid = Rowid;
  return m;
}

const sqlite3_module kModule = MakeModule();

TableCell CellOf(sqlite3_stmt* st, int col) {
  switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER: return static_cast<int64_t>(sqlite3_column_int64(st, col));
    case SQLITE_FLOAT: return sqlite3_column_double(st, col);
    case SQLITE_NULL: return std::monostate{};
    default: {
      const unsigned char* t = sqlite3_column_text(st, col);
      return std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(st, col)));
    }
  }
}

}  // namespace

absl::Status RegisterTableFunction(sqlite3* db, TableFunctionSpec spec) {
  // The spec lives as long as the module, i.e. the connection.
  auto* owned = new TableFunctionSpec(std::move(spec));
  int rc = sqlite3_create_module_v2(db, owned->name.c_str(), &kModule, owned,
                                    [](void* p) { delete static_cast<TableFunctionSpec*>(p); });
  if (rc != SQLITE_OK) return store::SqlError(db, rc, fmt::format("register {}", owned->name));
  // Connect the eponymous table now: connecting declares its schema, which
  // the read-only authorizer would otherwise see as a write to sqlite_master
  // inside the user's first query. Prepare alone connects; errors are moot.
  sqlite3_stmt* st = nullptr;
  std::string sql = fmt::format("SELECT * FROM {}", owned->name);
  sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  sqlite3_finalize(st);
  return absl::OkStatus();
}

absl::Status RegisterSqlTableFunction(sqlite3* db, const SqlTableFunctionSpec& spec) {
  TableFunctionSpec t;
  t.name = spec.name;
  t.columns = spec.columns;
  t.args = spec.args;
  t.required_args = spec.required_args;
  t.rows = [name = spec.name, sql = spec.sql, ncols = spec.columns.size()](
               sqlite3* conn, int argc, sqlite3_value** argv) -> absl::StatusOr<std::vector<TableRow>> {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK)
      return absl::InternalError(fmt::format("{}: {}", name, sqlite3_errmsg(conn)));
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw, sqlite3_finalize);
    for (int i = 0; i < argc; ++i) sqlite3_bind_value(raw, i + 1, argv[i]);
    std::vector<TableRow> rows;
    int rc;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      TableRow r;
      int n = std::min(sqlite3_column_count(raw), static_cast<int>(ncols));
      for (int c = 0; c < n; ++c) r.push_back(CellOf(raw, c));
      rows.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return absl::InternalError(fmt::format("{}: {}", name, sqlite3_errmsg(conn)));
    return rows;
  };
  return RegisterTableFunction(db, std::move(t));
}

}  // namespace hart::query

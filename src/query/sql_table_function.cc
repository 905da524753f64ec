#include "query/sql_table_function.h"

#include <sqlite3.h>

#include <memory>

#include "absl/strings/str_join.h"
#include "fmt/format.h"
#include "store/db.h"

namespace hart::query {
namespace {

struct Vtab {
  sqlite3_vtab base;
  sqlite3* db;
  const SqlTableFunctionSpec* spec;
};

struct Cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt* st = nullptr;
  bool eof = true;
  sqlite3_int64 row = 0;
};

int Connect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char**) {
  auto* spec = static_cast<const SqlTableFunctionSpec*>(aux);
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

int BestIndex(sqlite3_vtab* vt, sqlite3_index_info* info) {
  auto* v = reinterpret_cast<Vtab*>(vt);
  int first = static_cast<int>(v->spec->columns.size());
  int nargs = static_cast<int>(v->spec->args.size());
  std::vector<int> arg_of(nargs, -1);
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    int a = c.iColumn - first;
    if (a < 0 || a >= nargs) continue;
    if (!c.usable || c.op != SQLITE_INDEX_CONSTRAINT_EQ) return SQLITE_CONSTRAINT;
    arg_of[a] = i;
  }
  int n = 0;
  for (int a = 0; a < nargs; ++a) {
    if (arg_of[a] < 0) {
      if (a < v->spec->required_args) {
        sqlite3_free(vt->zErrMsg);
        vt->zErrMsg = sqlite3_mprintf("%s(%s) needs %d argument(s)", v->spec->name.c_str(),
                                      absl::StrJoin(v->spec->args, ", ").c_str(), v->spec->required_args);
        return SQLITE_ERROR;
      }
      break;
    }
    info->aConstraintUsage[arg_of[a]].argvIndex = ++n;
    info->aConstraintUsage[arg_of[a]].omit = 1;
  }
  info->estimatedCost = 1000;
  return SQLITE_OK;
}

int Open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
  auto* c = new Cursor{};
  *out = &c->base;
  return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* cur) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  sqlite3_finalize(c->st);
  delete c;
  return SQLITE_OK;
}

int Step(Cursor* c, sqlite3_vtab* vt) {
  int rc = sqlite3_step(c->st);
  if (rc == SQLITE_ROW) {
    c->eof = false;
    return SQLITE_OK;
  }
  c->eof = true;
  if (rc == SQLITE_DONE) return SQLITE_OK;
  sqlite3_free(vt->zErrMsg);
  vt->zErrMsg = sqlite3_mprintf("%s", sqlite3_errmsg(sqlite3_db_handle(c->st)));
  return SQLITE_ERROR;
}

int Filter(sqlite3_vtab_cursor* cur, int, const char*, int argc, sqlite3_value** argv) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  auto* v = reinterpret_cast<Vtab*>(cur->pVtab);
  sqlite3_finalize(c->st);
  c->st = nullptr;
  c->row = 0;
  int rc = sqlite3_prepare_v2(v->db, v->spec->sql.c_str(), -1, &c->st, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_free(cur->pVtab->zErrMsg);
    cur->pVtab->zErrMsg = sqlite3_mprintf("%s: %s", v->spec->name.c_str(), sqlite3_errmsg(v->db));
    return rc;
  }
  for (int i = 0; i < argc; ++i) sqlite3_bind_value(c->st, i + 1, argv[i]);
  return Step(c, cur->pVtab);
}

int Next(sqlite3_vtab_cursor* cur) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  ++c->row;
  return Step(c, cur->pVtab);
}

int Eof(sqlite3_vtab_cursor* cur) { return reinterpret_cast<Cursor*>(cur)->eof; }

int Column(sqlite3_vtab_cursor* cur, sqlite3_context* ctx, int col) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  if (col < sqlite3_column_count(c->st)) sqlite3_result_value(ctx, sqlite3_column_value(c->st, col));
  else sqlite3_result_null(ctx);
  return SQLITE_OK;
}

int Rowid(sqlite3_vtab_cursor* cur, sqlite3_int64* out) {
  *out = reinterpret_cast<Cursor*>(cur)->row;
  return SQLITE_OK;
}

sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.xConnect = Connect;
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

}  // namespace

absl::Status RegisterSqlTableFunction(sqlite3* db, const SqlTableFunctionSpec& spec) {
  // The spec must outlive the connection: keep a copy for the process.
  auto* owned = new SqlTableFunctionSpec(spec);
  int rc = sqlite3_create_module_v2(db, owned->name.c_str(), &kModule, owned,
                                    [](void* p) { delete static_cast<SqlTableFunctionSpec*>(p); });
  if (rc != SQLITE_OK) return store::SqlError(db, rc, fmt::format("register {}", spec.name));
  // Connect now, outside any user statement (see RegisterGraphFunctions).
  sqlite3_stmt* st = nullptr;
  std::string sql = fmt::format("SELECT * FROM {}", spec.name);
  sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  sqlite3_finalize(st);
  return absl::OkStatus();
}

}  // namespace hart::query

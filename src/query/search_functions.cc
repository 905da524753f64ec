// Search functions, table-valued (eponymous virtual tables):
//   search_text(q [, k])        full text (FTS5) over model names, version
//     metadata and model-card text, tensor names, roles and layers; rows
//     (rank, kind, ref, component_id, name, snippet), best first; k
//     defaults to 20. A query FTS5 cannot parse is retried as quoted terms.
//   similar_tensors(tensor_id [, k])  the k (default 10) tensors whose
//     weight fingerprints lie nearest: rows (id, ref, name, distance).
#include <sqlite3.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"
#include "fmt/format.h"
#include "query/functions.h"
#include "query/similarity.h"
#include "store/db.h"

namespace hart::query {
namespace {

using Cell = std::variant<std::monostate, int64_t, double, std::string>;
using Row = std::vector<Cell>;

struct Family {
  const char* name;
  const char* ddl;       // visible columns then the hidden arguments
  int visible;           // number of visible columns
  int args, required;    // hidden argument columns, how many must be given
  absl::StatusOr<std::vector<Row>> (*run)(struct SearchState*, sqlite3*, int, sqlite3_value**);
};

struct SearchState {
  store::Store* store = nullptr;
  std::unique_ptr<Similarity> similarity;
};

struct Table {
  sqlite3_vtab base;
  sqlite3* db;
  const Family* family;
  SearchState* state;
};

struct Cursor {
  sqlite3_vtab_cursor base;
  std::vector<Row> rows;
  size_t pos = 0;
};

std::string Quoted(const std::string& q) {
  // Every run of non-space characters as a quoted string: a plain AND of terms.
  std::string out, term;
  auto flush = [&] {
    if (term.empty()) return;
    std::string esc;
    for (char c : term) esc += c == '"' ? std::string("\"\"") : std::string(1, c);
    out += (out.empty() ? "" : " ") + ("\"" + esc + "\"");
    term.clear();
  };
  for (char c : q) {
    if (c == ' ' || c == '\t' || c == '\n') flush();
    else term += c;
  }
  flush();
  return out;
}

absl::StatusOr<std::vector<Row>> RunText(SearchState*, sqlite3* db, int argc, sqlite3_value** argv) {
  const unsigned char* qt = sqlite3_value_text(argv[0]);
  if (!qt) return absl::InvalidArgumentError("search_text(q [, k]): q must be text");
  std::string q(reinterpret_cast<const char*>(qt));
  int64_t k = argc > 1 ? sqlite3_value_int64(argv[1]) : 20;
  if (k <= 0) return std::vector<Row>{};
  auto run = [&](const std::string& match) -> absl::StatusOr<std::vector<Row>> {
    ASSIGN_OR_RETURN(store::Stmt st, store::Stmt::Prepare(db,
        "SELECT kind, ref, component_id, name, snippet(fts_doc, -1, '[', ']', '...', 12) "
        "FROM main.fts_doc WHERE fts_doc MATCH ? ORDER BY rank LIMIT ?"));
    st.Bind(1, match).Bind(2, k);
    std::vector<Row> rows;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      Row r{int64_t(rows.size() + 1), st.Text(0), st.Text(1),
            st.IsNull(2) ? Cell{} : Cell{st.Int(2)}, st.Text(3), st.Text(4)};
      rows.push_back(std::move(r));
    }
    return rows;
  };
  auto rows = run(q);
  if (rows.ok()) return rows;
  std::string quoted = Quoted(q);
  if (quoted.empty() || quoted == q) return rows.status();
  auto again = run(quoted);
  return again.ok() ? again : rows.status();
}

absl::StatusOr<std::vector<Row>> RunSimilar(SearchState* st, sqlite3*, int argc, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER)
    return absl::InvalidArgumentError("similar_tensors(tensor_id [, k]): tensor_id must be an integer");
  int64_t k = argc > 1 ? sqlite3_value_int64(argv[1]) : 10;
  if (k <= 0) return std::vector<Row>{};
  if (k > 10000) return absl::InvalidArgumentError("similar_tensors: k is at most 10000");
  if (!st->similarity) st->similarity = std::make_unique<Similarity>(*st->store);
  ASSIGN_OR_RETURN(auto hits, st->similarity->NearestTensors(sqlite3_value_int64(argv[0]),
                                                             static_cast<int>(k)));
  std::vector<Row> rows;
  for (const TensorMatch& m : hits) rows.push_back(Row{m.id, m.ref, m.name, m.distance});
  return rows;
}

const Family kText{"search_text",
                   "CREATE TABLE x(rank, kind, ref, component_id, name, snippet, q HIDDEN, k HIDDEN)",
                   6, 2, 1, RunText};
const Family kSimilar{"similar_tensors",
                      "CREATE TABLE x(id, ref, name, distance, tensor_id HIDDEN, k HIDDEN)", 4, 2, 1,
                      RunSimilar};

struct Aux {
  const Family* family;
  SearchState* state;
};

int Connect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char**) {
  auto* a = static_cast<Aux*>(aux);
  int rc = sqlite3_declare_vtab(db, a->family->ddl);
  if (rc != SQLITE_OK) return rc;
  auto* t = new Table{};
  t->db = db;
  t->family = a->family;
  t->state = a->state;
  *out = &t->base;
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* v) {
  delete reinterpret_cast<Table*>(v);
  return SQLITE_OK;
}

int BestIndex(sqlite3_vtab* v, sqlite3_index_info* info) {
  auto* t = reinterpret_cast<Table*>(v);
  const Family& f = *t->family;
  int arg_of[4] = {-1, -1, -1, -1};
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    int a = c.iColumn - f.visible;
    if (a < 0 || a >= f.args) continue;
    if (!c.usable || c.op != SQLITE_INDEX_CONSTRAINT_EQ) return SQLITE_CONSTRAINT;
    arg_of[a] = i;
  }
  int n = 0;
  for (int a = 0; a < f.args; ++a) {
    if (arg_of[a] < 0) {
      if (a < f.required) {
        sqlite3_free(v->zErrMsg);
        v->zErrMsg = sqlite3_mprintf("%s needs its first argument", f.name);
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

int Filter(sqlite3_vtab_cursor* cur, int, const char*, int argc, sqlite3_value** argv) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  auto* t = reinterpret_cast<Table*>(cur->pVtab);
  c->pos = 0;
  auto rows = t->family->run(t->state, t->db, argc, argv);
  if (!rows.ok()) {
    sqlite3_free(t->base.zErrMsg);
    t->base.zErrMsg = sqlite3_mprintf("%s: %s", t->family->name, std::string(Msg(rows.status())).c_str());
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

int ColumnFn(sqlite3_vtab_cursor* cur, sqlite3_context* ctx, int col) {
  auto* c = reinterpret_cast<Cursor*>(cur);
  const Row& r = c->rows[c->pos];
  if (col < 0 || static_cast<size_t>(col) >= r.size()) {
    sqlite3_result_null(ctx);
    return SQLITE_OK;
  }
  const Cell& v = r[static_cast<size_t>(col)];
  if (auto* i = std::get_if<int64_t>(&v)) sqlite3_result_int64(ctx, *i);
  else if (auto* d = std::get_if<double>(&v)) sqlite3_result_double(ctx, *d);
  else if (auto* s = std::get_if<std::string>(&v))
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
  m.xConnect = Connect;  // eponymous only
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

void DestroyTextAux(void* p) { delete static_cast<Aux*>(p); }
void DestroySimilarAux(void* p) {
  auto* a = static_cast<Aux*>(p);
  delete a->state;  // the state lives as long as similar_tensors' module
  delete a;
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> SearchVersionTensors(sqlite3* db, int64_t version_id,
                                                          const std::string& q) {
  auto run = [&](const std::string& match) -> absl::StatusOr<std::vector<int64_t>> {
    ASSIGN_OR_RETURN(store::Stmt st, store::Stmt::Prepare(db,
        "SELECT component_id FROM main.fts_doc WHERE fts_doc MATCH ? AND kind = 'tensor' "
        "AND version_id = ? ORDER BY rank"));
    st.Bind(1, match).Bind(2, version_id);
    std::vector<int64_t> ids;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      ids.push_back(st.Int(0));
    }
    return ids;
  };
  auto ids = run(q);
  if (ids.ok()) return ids;
  std::string quoted = Quoted(q);
  if (quoted.empty() || quoted == q) return ids.status();
  auto again = run(quoted);
  return again.ok() ? again : ids.status();
}

absl::Status RegisterSearchFunctions(sqlite3* db, store::Store& store) {
  auto* state = new SearchState{};
  state->store = &store;
  int rc = sqlite3_create_module_v2(db, "search_text", &kModule, new Aux{&kText, state},
                                    DestroyTextAux);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_module_v2(db, "similar_tensors", &kModule, new Aux{&kSimilar, state},
                                  DestroySimilarAux);
  if (rc != SQLITE_OK) return store::SqlError(db, rc, "register search functions");
  // Connect now, as graph_functions does: declaring the schema inside the
  // user's first (read-only) query would look like a write.
  for (const char* sql : {"SELECT * FROM search_text", "SELECT * FROM similar_tensors"}) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
    sqlite3_finalize(st);
  }
  return absl::OkStatus();
}

}  // namespace hart::query

#include "query/engine.h"

#include <sqlite3.h>

#include <chrono>
#include <cstring>
#include <set>

#include "core/status.h"
#include "fmt/format.h"
#include "query/functions.h"

namespace hart::query {
namespace {

// Pragmas that only read. Everything else (journal_mode, writable_schema,
// any pragma given a value) is refused in read-only mode.
const std::set<std::string, std::less<>> kReadPragmas = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "function_list", "module_list", "pragma_list", "compile_options",
    "database_list", "collation_list", "schema_version", "user_version", "page_count",
    "page_size", "freelist_count", "data_version"};

// What a scoped (non-Admin) caller may read at the top level of its SQL: the
// user views (through which SQLite reports the base tables they read, with
// the view's name) and the MQE's table functions. Base tables, the catalog's
// own views (fts_version_source ...), FTS shadow tables and SQLite's page
// level tables (sqlite_dbpage, dbstat) are not on the list.
const std::set<std::string, std::less<>> kUserViews = {
    "models", "versions", "components", "tensors", "edges", "chunks", "derivations"};
const std::set<std::string, std::less<>> kTableFunctions = {
    "graph_walk", "shortest_path", "search_text", "similar_tensors", "lineage",
    "components_as_of", "json_each", "json_tree"};

struct AuthState {
  bool write = false;
  bool restricted = false;  // a scoped caller: no base table at the top level
  std::string refused;      // why the last statement was refused
};

bool ScopedReadAllowed(const char* table, const char* db, const char* view) {
  if (view) return kUserViews.count(view) > 0;
  if (!table) return false;
  std::string_view t(table);
  if (t == "sqlite_master" || t == "sqlite_schema" || t == "sqlite_temp_master" ||
      t == "sqlite_temp_schema")
    return true;  // the schema, no rows of models
  if (t.starts_with("pragma_")) return kReadPragmas.count(t.substr(7)) > 0;
  if (db && strcmp(db, "temp") == 0 && kUserViews.count(t)) return true;
  return kTableFunctions.count(t) > 0;
}

const char* ActionName(int action) {
  switch (action) {
    case SQLITE_INSERT: return "INSERT";
    case SQLITE_UPDATE: return "UPDATE";
    case SQLITE_DELETE: return "DELETE";
    case SQLITE_ATTACH: return "ATTACH";
    case SQLITE_DETACH: return "DETACH";
    case SQLITE_ALTER_TABLE: return "ALTER TABLE";
    case SQLITE_PRAGMA: return "PRAGMA";
    case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_VIEW: case SQLITE_CREATE_VTABLE: case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE: case SQLITE_CREATE_TEMP_TRIGGER: case SQLITE_CREATE_TEMP_VIEW:
      return "CREATE";
    case SQLITE_DROP_INDEX: case SQLITE_DROP_TABLE: case SQLITE_DROP_TRIGGER: case SQLITE_DROP_VIEW:
    case SQLITE_DROP_VTABLE: case SQLITE_DROP_TEMP_INDEX: case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER: case SQLITE_DROP_TEMP_VIEW:
      return "DROP";
    case SQLITE_ANALYZE: return "ANALYZE";
    case SQLITE_REINDEX: return "REINDEX";
    default: return "this statement";
  }
}

int Authorize(void* user, int action, const char* a1, const char* a2, const char* a3,
              const char* a4) {
  auto* st = static_cast<AuthState*>(user);
  switch (action) {
    case SQLITE_READ:
      if (st->restricted && !ScopedReadAllowed(a1, a3, a4)) {
        st->refused = fmt::format("'{}' is not one of the views (models, versions, components, "
                                  "tensors, edges, chunks, derivations) or MQE table functions",
                                  a1 ? a1 : "");
        return SQLITE_DENY;
      }
      return SQLITE_OK;
    case SQLITE_SELECT: case SQLITE_RECURSIVE: case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      return SQLITE_OK;
    case SQLITE_FUNCTION:
      if (a2 && strcasecmp(a2, "load_extension") == 0) {
        st->refused = "load_extension() is never allowed";
        return SQLITE_DENY;
      }
      return SQLITE_OK;
    case SQLITE_ATTACH: case SQLITE_DETACH:
      st->refused = "ATTACH and DETACH are never allowed";
      return SQLITE_DENY;
    case SQLITE_PRAGMA:
      if (a1 && !a2 && kReadPragmas.count(a1)) return SQLITE_OK;
      if (a1 && a2 && kReadPragmas.count(a1) && strcmp(a1, "user_version") != 0 &&
          strcmp(a1, "schema_version") != 0)
        return SQLITE_OK;  // table_info(x) etc.: the argument names an object
      if (st->write) return SQLITE_OK;
      st->refused = fmt::format("PRAGMA {}{} changes the catalog", a1 ? a1 : "",
                                a2 ? fmt::format(" = {}", a2) : "");
      return SQLITE_DENY;
    default:
      if (st->write) return SQLITE_OK;
      st->refused = fmt::format("{}{} is a write", ActionName(action),
                                a1 ? fmt::format(" on '{}'", a1) : "");
      return SQLITE_DENY;
  }
}

struct Deadline {
  std::chrono::steady_clock::time_point at = std::chrono::steady_clock::time_point::max();
  const CancelToken* cancel = nullptr;
  bool hit = false;
  bool cancelled = false;
};

int Progress(void* user) {
  auto* d = static_cast<Deadline*>(user);
  if (d->cancel && d->cancel->cancelled()) {
    d->cancelled = true;
    return 1;
  }
  if (std::chrono::steady_clock::now() >= d->at) {
    d->hit = true;
    return 1;
  }
  return 0;
}

Value Column(sqlite3_stmt* st, int c) {
  switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER: return static_cast<int64_t>(sqlite3_column_int64(st, c));
    case SQLITE_FLOAT: return sqlite3_column_double(st, c);
    case SQLITE_TEXT:
      return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c)),
                         static_cast<size_t>(sqlite3_column_bytes(st, c)));
    case SQLITE_BLOB: {
      auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st, c));
      return std::vector<uint8_t>(p, p + sqlite3_column_bytes(st, c));
    }
    default: return std::monostate{};
  }
}

}  // namespace

std::string ValueToString(const Value& v) {
  struct V {
    std::string operator()(std::monostate) const { return "NULL"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<uint8_t>& b) const {
      std::string s = "x'";
      for (uint8_t c : b) s += fmt::format("{:02x}", c);
      return s + "'";
    }
  };
  return std::visit(V{}, v);
}

Engine::Engine(store::Store& store, store::Store::Connection conn)
    : store_(store), conn_(std::move(conn)), db_(conn_.get()) {}
Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Attach(store::Store& store, ReadScope scope) {
  ASSIGN_OR_RETURN(store::Store::Connection conn, store.OpenConnection());
  std::unique_ptr<Engine> e(new Engine(store, std::move(conn)));
  e->restricted_ = scope.restricted();
  RETURN_IF_ERROR(RegisterAccessFunction(e->db_, std::move(scope)));
  RETURN_IF_ERROR(CreateViews(e->db_, e->restricted_));
  RETURN_IF_ERROR(RegisterGraphFunctions(e->db_));
  RETURN_IF_ERROR(RegisterHistoryFunctions(e->db_));
  RETURN_IF_ERROR(RegisterTensorFunctions(e->db_, store));
  RETURN_IF_ERROR(RegisterSearchFunctions(e->db_, store));
  return e;
}

absl::Status Engine::Execute(std::string_view sql, const SqlOptions& opts, const RowSink& sink) {
  std::string text(sql);
  const char* tail = text.c_str();
  const char* end = text.c_str() + text.size();
  if (restricted_ && opts.write)
    return absl::PermissionDeniedError("read-only: a scoped caller's SQL never writes");
  AuthState auth{opts.write, restricted_, ""};
  Deadline deadline;
  deadline.cancel = opts.cancel;
  const bool watch = opts.timeout_seconds > 0 || opts.cancel;
  if (opts.timeout_seconds > 0)
    deadline.at = std::chrono::steady_clock::now() +
                  std::chrono::microseconds(static_cast<int64_t>(opts.timeout_seconds * 1e6));
  if (watch) sqlite3_progress_handler(db_, 1000, Progress, &deadline);
  absl::Status result = absl::OkStatus();
  while (tail < end && result.ok()) {
    sqlite3_stmt* st = nullptr;
    auth.refused.clear();
    sqlite3_set_authorizer(db_, Authorize, &auth);
    int rc = sqlite3_prepare_v2(db_, tail, static_cast<int>(end - tail), &st, &tail);
    sqlite3_set_authorizer(db_, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      if (!auth.refused.empty() && restricted_)
        result = absl::PermissionDeniedError(fmt::format("read-only SQL: {}", auth.refused));
      else if (!auth.refused.empty())
        result = absl::PermissionDeniedError(fmt::format(
            "read-only: {}; writes need a write-enabled query", auth.refused));
      else
        result = absl::InvalidArgumentError(fmt::format("SQL error: {}", sqlite3_errmsg(db_)));
      break;
    }
    if (!st) continue;  // whitespace or a comment
    if (!opts.write && !sqlite3_stmt_readonly(st)) {
      sqlite3_finalize(st);
      result = absl::PermissionDeniedError(
          "read-only: this statement writes; writes need a write-enabled query");
      break;
    }
    int ncol = sqlite3_column_count(st);
    if (ncol > 0 && sink.on_columns) {
      std::vector<std::string> cols;
      for (int c = 0; c < ncol; ++c) cols.emplace_back(sqlite3_column_name(st, c));
      sink.on_columns(cols);
    }
    std::vector<Value> row(static_cast<size_t>(ncol));
    for (;;) {
      rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) {
        for (int c = 0; c < ncol; ++c) row[c] = Column(st, c);
        if (sink.on_row && !sink.on_row(row)) break;
        continue;
      }
      if (rc != SQLITE_DONE) {
        if (deadline.cancelled)
          result = absl::CancelledError("query cancelled");
        else if (deadline.hit)
          result = absl::DeadlineExceededError(fmt::format(
              "query stopped after its time limit of {}s", opts.timeout_seconds));
        else
          result = absl::InvalidArgumentError(fmt::format("SQL error: {}", sqlite3_errmsg(db_)));
      }
      break;
    }
    sqlite3_finalize(st);
  }
  if (watch) sqlite3_progress_handler(db_, 0, nullptr, nullptr);
  return result;
}

absl::StatusOr<ResultSet> Engine::Query(std::string_view sql, const SqlOptions& opts) {
  ResultSet rs;
  RowSink sink;
  sink.on_columns = [&](const std::vector<std::string>& cols) {
    rs.columns = cols;
    rs.rows.clear();
  };
  sink.on_row = [&](const std::vector<Value>& row) {
    rs.rows.push_back(row);
    return true;
  };
  RETURN_IF_ERROR(Execute(sql, opts, sink));
  return rs;
}

}  // namespace hart::query

#include <algorithm>
#include "app/query.h"

#include <sqlite3.h>

#include "absl/strings/numbers.h"
#include "app/catalog.h"
#include "app/errors.h"
#include "app/access.h"
#include "app/json_io.h"
#include "core/status.h"
#include "fmt/format.h"
#include "query/graph.h"
#include "store/db.h"

namespace hart::app {

using nlohmann::json;

json SqlValueToJson(const query::Value& v) {
  if (std::holds_alternative<std::monostate>(v)) return nullptr;
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* s = std::get_if<std::string>(&v)) {
    // JSON-looking text (metadata, tensor_stats) is emitted as JSON.
    if (!s->empty() && (s->front() == '{' || s->front() == '[')) {
      auto j = json::parse(*s, nullptr, false);
      if (!j.is_discarded()) return j;
    }
    return *s;
  }
  return query::ValueToString(v);
}

json SqlRowToJson(const std::vector<std::string>& columns, const std::vector<query::Value>& row) {
  json j = json::object();
  for (size_t i = 0; i < row.size() && i < columns.size(); ++i) j[columns[i]] = SqlValueToJson(row[i]);
  return j;
}

// ---- sql ----

namespace {

// InvalidArgument unless `sql` holds exactly one statement (comments and
// whitespace aside). Prepares without running anything. When a statement
// does not prepare, *error_offset is the byte offset in `sql` that SQLite
// names (sqlite3_error_offset, SQLite >= 3.38), else it stays -1.
absl::Status CheckOneStatement(sqlite3* db, const std::string& sql, int64_t* error_offset) {
  const char* tail = sql.c_str();
  const char* end = sql.c_str() + sql.size();
  int n = 0;
  while (tail < end) {
    sqlite3_stmt* st = nullptr;
    const char* next = nullptr;
    int rc = sqlite3_prepare_v2(db, tail, static_cast<int>(end - tail), &st, &next);
    if (rc != SQLITE_OK) {
#if SQLITE_VERSION_NUMBER >= 3038000
      const int off = sqlite3_error_offset(db);
      if (off >= 0) *error_offset = (tail - sql.c_str()) + off;
#endif
      // The engine reports the error (with the read-only guard's wording).
      return absl::OkStatus();
    }
    if (st) {
      ++n;
      sqlite3_finalize(st);
    }
    if (next == tail) break;
    tail = next;
  }
  if (n == 0) return absl::InvalidArgumentError("sql: no statement");
  if (n > 1) return absl::InvalidArgumentError(fmt::format("sql: one statement only, got {}", n));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SqlRequest> SqlRequest::FromJson(const json& j) {
  SqlRequest r;
  r.single_statement = true;
  r.max_rows = kDefaultMaxRows;
  r.timeout_seconds = kDefaultTimeoutSeconds;
  RETURN_IF_ERROR(FieldReader(j, "sql request")
                      .String("sql", &r.sql, true)
                      .Double("timeout_seconds", &r.timeout_seconds)
                      .Int("max_rows", &r.max_rows, false, 1, kMaxMaxRows)
                      .Finish());
  if (!(r.timeout_seconds > 0 && r.timeout_seconds <= kMaxTimeoutSeconds))
    return absl::InvalidArgumentError(fmt::format(
        "sql request: field 'timeout_seconds': must be in (0, {}]", kMaxTimeoutSeconds));
  return r;
}

json SqlRequest::ToJson() const {
  json j = {{"sql", sql}};
  if (timeout_seconds > 0) j["timeout_seconds"] = timeout_seconds;
  if (max_rows > 0) j["max_rows"] = max_rows;
  return j;
}

json SqlResponse::ToJson() const {
  json r = json::array();
  for (const auto& row : rows) r.push_back(SqlRowToJson(columns, row));
  return {{"columns", columns}, {"rows", std::move(r)}, {"truncated", truncated}};
}

absl::Status SqlStream(const Context& ctx, const SqlRequest& req, const query::RowSink& sink) {
  if (req.single_statement && req.sql.find_first_not_of(" \t\r\n") == std::string::npos)
    return absl::InvalidArgumentError("sql: no statement");
  // Readers and Contributors get the views filtered to what they may read and
  // no base table (query::ReadScope); an Admin, the local CLI user among
  // them, sees the whole catalog, the audit trail included.
  if (req.write) RETURN_IF_ERROR(CheckAdmin(ctx, "SQL that writes"));
  ASSIGN_OR_RETURN(auto engine, query::Engine::Attach(ctx.st(), ReadScopeFor(ctx)));
  int64_t error_offset = -1;
  if (req.single_statement) RETURN_IF_ERROR(CheckOneStatement(engine->db(), req.sql, &error_offset));
  query::SqlOptions opts;
  opts.write = req.write;
  opts.timeout_seconds = req.timeout_seconds;
  opts.cancel = ctx.cancel;
  int64_t n = 0;
  query::RowSink wrapped;
  wrapped.on_columns = [&](const std::vector<std::string>& c) {
    n = 0;
    if (sink.on_columns) sink.on_columns(c);
  };
  wrapped.on_row = [&](const std::vector<query::Value>& r) {
    if (ctx.cancel && ctx.cancel->cancelled()) return false;
    if (req.max_rows > 0 && n >= req.max_rows) return false;
    ++n;
    return sink.on_row ? sink.on_row(r) : true;
  };
  // A statement that did not prepare fails here too: the error then carries
  // where in the SQL it is (the UI's console marks it).
  absl::Status st = engine->Execute(req.sql, opts, wrapped);
  if (!st.ok()) return WithErrorOffset(std::move(st), error_offset);
  return ctx.CheckCancel("sql");
}

absl::StatusOr<SqlResponse> Sql(const Context& ctx, const SqlRequest& req) {
  // Any role may run read-only SQL; SqlStream scopes it to the caller.
  SqlResponse out;
  query::RowSink sink;
  sink.on_columns = [&](const std::vector<std::string>& c) {
    out.columns = c;
    out.rows.clear();
    out.truncated = false;
  };
  sink.on_row = [&](const std::vector<query::Value>& r) {
    if (req.max_rows > 0 && static_cast<int64_t>(out.rows.size()) >= req.max_rows) {
      out.truncated = true;
      return false;
    }
    out.rows.push_back(r);
    return true;
  };
  // One row past the cap tells a cut result from one that just fits.
  SqlRequest probe = req;
  if (probe.max_rows > 0) probe.max_rows += 1;
  RETURN_IF_ERROR(SqlStream(ctx, probe, sink));
  return out;
}

// ---- search ----

absl::StatusOr<SearchRequest> SearchRequest::FromJson(const json& j) {
  SearchRequest r;
  RETURN_IF_ERROR(FieldReader(j, "search request")
                      .String("query", &r.query, true)
                      .Int("k", &r.k, false, 1, 1000)
                      .Finish());
  return r;
}
json SearchRequest::ToJson() const { return {{"query", query}, {"k", k}}; }

json SearchResponse::ToJson() const {
  json j = json::array();
  for (const auto& h : hits)
    j.push_back({{"rank", h.rank},
                 {"kind", h.kind},
                 {"ref", h.ref},
                 {"component_id", h.component_id ? json(*h.component_id) : json(nullptr)},
                 {"name", h.name},
                 {"snippet", h.snippet}});
  return j;
}

namespace {
// The first k items of a ranked list that `keep` accepts, for a caller that
// may read only some models (issue 14): `fetch(n)` gives the top n; when
// filtering leaves fewer than k, fetch more (4x each round) until k are kept
// or the list is exhausted (fewer than n came back).
template <typename T, typename Fetch, typename Keep>
absl::StatusOr<std::vector<T>> TopKept(int64_t k, Fetch fetch, Keep keep) {
  for (int64_t n = k;; n *= 4) {
    ASSIGN_OR_RETURN(std::vector<T> all, fetch(n));
    const bool exhausted = static_cast<int64_t>(all.size()) < n || n >= (int64_t{1} << 24);
    std::vector<T> out;
    for (auto& h : all) {
      if (static_cast<int64_t>(out.size()) == k) break;
      if (keep(h)) out.push_back(std::move(h));
    }
    if (static_cast<int64_t>(out.size()) == k || exhausted) return out;
  }
}
}  // namespace

absl::StatusOr<SearchResponse> Search(const Context& ctx, const SearchRequest& req) {
  if (req.query.empty()) return absl::InvalidArgumentError("search: the query is empty");
  if (req.k < 1 || req.k > 1000) return absl::InvalidArgumentError("search: k must be in [1, 1000]");
  ASSIGN_OR_RETURN(auto engine, query::Engine::Attach(ctx.st(), ReadScopeFor(ctx)));
  ASSIGN_OR_RETURN(store::Stmt st,
                   store::Stmt::Prepare(engine->db(),
                                        "SELECT rank, kind, ref, component_id, name, snippet "
                                        "FROM search_text(?, ?)"));
  SearchResponse out;
  ASSIGN_OR_RETURN(auto readable, ReadableFilter(ctx));
  auto fetch = [&](int64_t n) -> absl::StatusOr<std::vector<SearchHit>> {
    std::vector<SearchHit> hits;
    st.Reset();
    st.Bind(1, req.query).Bind(2, n);
    for (;;) {
      auto row = st.Step();
      if (!row.ok())
        return absl::InvalidArgumentError(fmt::format("search '{}': {}", req.query, Msg(row.status())));
      if (!*row) break;
      SearchHit h;
      h.rank = st.Double(0);
      h.kind = st.Text(1);
      h.ref = st.Text(2);
      if (!st.IsNull(3)) h.component_id = st.Int(3);
      h.name = st.Text(4);
      h.snippet = st.Text(5);
      hits.push_back(std::move(h));
    }
    return hits;
  };
  ASSIGN_OR_RETURN(out.hits, TopKept<SearchHit>(req.k, fetch, [&](const SearchHit& h) {
    return readable(ModelOfRef(h.ref));
  }));
  return out;
}

// ---- similar ----

absl::StatusOr<SimilarRequest> SimilarRequest::FromJson(const json& j) {
  SimilarRequest r;
  RETURN_IF_ERROR(FieldReader(j, "similar request")
                      .String("target", &r.target, true)
                      .Int("k", &r.k, false, 1, 1000)
                      .Finish());
  return r;
}
json SimilarRequest::ToJson() const { return {{"target", target}, {"k", k}}; }

json SimilarResponse::ToJson() const {
  json j = json::array();
  if (by_tensor) {
    for (const auto& h : tensors)
      j.push_back({{"id", h.id}, {"ref", h.ref}, {"name", h.name}, {"distance", h.distance}});
  } else {
    for (const auto& h : versions) {
      json lineage = nullptr;
      if (std::find(derived_from.begin(), derived_from.end(), h.ref) != derived_from.end())
        lineage = "derived from";
      else if (std::find(derived_into.begin(), derived_into.end(), h.ref) != derived_into.end())
        lineage = "derived into";
      j.push_back({{"version", h.ref}, {"similarity", h.similarity}, {"matched_tensors", h.matched},
                   {"lineage", lineage}});
    }
  }
  return j;
}

absl::StatusOr<SimilarResponse> Similar(const Context& ctx, const SimilarRequest& req) {
  if (req.k < 1) return absl::InvalidArgumentError("similar: k must be at least 1");
  SimilarResponse out;
  query::Similarity sim(ctx.st());
  int64_t tensor_id = 0;
  bool numeric = absl::SimpleAtoi(req.target, &tensor_id);
  out.by_tensor = numeric || req.target.find(':') != std::string::npos;
  ASSIGN_OR_RETURN(auto readable, ReadableFilter(ctx));
  if (out.by_tensor) {
    if (numeric && ctx.caller.role != AccessRole::kAdmin)
      return absl::PermissionDeniedError("similar: name the tensor as model@N:tensor (numeric ids need the Admin role)");
    if (!numeric) {
      RETURN_IF_ERROR(CheckRead(ctx, ModelOfRef(req.target)));
      ASSIGN_OR_RETURN(store::Store::Connection conn, ctx.st().OpenConnection());
      ASSIGN_OR_RETURN(tensor_id, query::ResolveComponent(conn.get(), req.target));
    }
    using TensorHit = decltype(out.tensors)::value_type;
    ASSIGN_OR_RETURN(out.tensors, TopKept<TensorHit>(
                                      req.k, [&](int64_t n) { return sim.NearestTensors(tensor_id, static_cast<int>(n)); },
                                      [&](const TensorHit& h) { return readable(ModelOfRef(h.ref)); }));
    return out;
  }
  ASSIGN_OR_RETURN(out.version, ResolveVersion(ctx, req.target));
  using VersionHit = decltype(out.versions)::value_type;
  ASSIGN_OR_RETURN(out.versions, TopKept<VersionHit>(
                                     req.k, [&](int64_t n) { return sim.NearestVersions(out.version.id, static_cast<int>(n)); },
                                     [&](const VersionHit& h) { return readable(ModelOfRef(h.ref)); }));
  ASSIGN_OR_RETURN(auto derivation, ctx.st().GetDerivation(out.version.id));
  if (derivation)
    for (const json& in : derivation->inputs) {
        std::string ref = in.value("ref", std::string());
        if (readable(ModelOfRef(ref))) out.derived_from.push_back(std::move(ref));
      }
  ASSIGN_OR_RETURN(out.derived_into, ctx.st().DerivedFrom(out.version.id));
  std::erase_if(out.derived_into, [&](const auto& ref) { return !readable(ModelOfRef(ref)); });
  return out;
}

// ---- plan ----

absl::StatusOr<PlanRequest> PlanRequest::FromJson(const json& j) {
  PlanRequest r;
  r.plan.timeout_seconds = kDefaultTimeoutSeconds;
  RETURN_IF_ERROR(FieldReader(j, "plan request")
                      .String("version", &r.plan.version, true)
                      .String("sql", &r.plan.sql)
                      .String("search", &r.plan.search)
                      .Strings("names", &r.plan.names)
                      .Bool("closure", &r.plan.closure)
                      .Finish());
  return r;
}

json PlanRequest::ToJson() const {
  json j = {{"version", plan.version}, {"closure", plan.closure}};
  if (!plan.sql.empty()) j["sql"] = plan.sql;
  if (!plan.search.empty()) j["search"] = plan.search;
  if (!plan.names.empty()) j["names"] = plan.names;
  return j;
}

json PlanResponse::ToJson() const { return plan.ToJson(); }

absl::StatusOr<PlanResponse> Plan(const Context& ctx, const PlanRequest& req) {
  // A plan's SQL runs over the views as the caller sees them, like Sql().
  RETURN_IF_ERROR(CheckRead(ctx, ModelOfRef(req.plan.version)));
  ASSIGN_OR_RETURN(auto engine, query::Engine::Attach(ctx.st(), ReadScopeFor(ctx)));
  PlanResponse out;
  ASSIGN_OR_RETURN(out.plan, query::MakePlan(*engine, req.plan));
  return out;
}

}  // namespace hart::app

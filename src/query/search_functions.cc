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
#include "query/sql_table_function.h"
#include "store/db.h"

namespace hart::query {
namespace {

using Cell = TableCell;
using Row = TableRow;

struct SearchState {
  store::Store* store = nullptr;
  std::unique_ptr<Similarity> similarity;
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
    // Hits in models the caller may not read are left out (scope.cc); when
    // that leaves fewer than k, the top 4x as many are read again, until k
    // are kept or the matches run out (issue 14: never fewer than k visible).
    for (int64_t limit = k;; limit *= 4) {
      st.Reset();
      st.Bind(1, match).Bind(2, limit);
      std::vector<Row> rows;
      int64_t seen = 0;
      for (;;) {
        ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        ++seen;
        if (static_cast<int64_t>(rows.size()) == k) continue;
        ASSIGN_OR_RETURN(bool readable, RefReadable(db, st.Text(1)));
        if (!readable) continue;
        Row r{int64_t(rows.size() + 1), st.Text(0), st.Text(1),
              st.IsNull(2) ? Cell{} : Cell{st.Int(2)}, st.Text(3), st.Text(4)};
        rows.push_back(std::move(r));
      }
      if (static_cast<int64_t>(rows.size()) == k || seen < limit || limit >= (int64_t{1} << 30)) return rows;
    }
  };
  auto rows = run(q);
  if (rows.ok()) return rows;
  std::string quoted = Quoted(q);
  if (quoted.empty() || quoted == q) return rows.status();
  auto again = run(quoted);
  return again.ok() ? again : rows.status();
}

absl::StatusOr<std::vector<Row>> RunSimilar(SearchState* st, sqlite3* db, int argc, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER)
    return absl::InvalidArgumentError("similar_tensors(tensor_id [, k]): tensor_id must be an integer");
  // The target and the neighbours must be readable (scope.cc); a hidden
  // target reads as absent, in Similarity's own words.
  ASSIGN_OR_RETURN(bool target_readable, ComponentReadable(db, sqlite3_value_int64(argv[0])));
  if (!target_readable)
    return absl::NotFoundError(fmt::format("no tensor with id {}", sqlite3_value_int64(argv[0])));
  int64_t k = argc > 1 ? sqlite3_value_int64(argv[1]) : 10;
  if (k <= 0) return std::vector<Row>{};
  if (k > 10000) return absl::InvalidArgumentError("similar_tensors: k is at most 10000");
  if (!st->similarity) st->similarity = std::make_unique<Similarity>(*st->store);
  // As search_text: read further down the ranking until k readable ones.
  for (int64_t n = k;; n *= 4) {
    ASSIGN_OR_RETURN(auto hits, st->similarity->NearestTensors(sqlite3_value_int64(argv[0]),
                                                               static_cast<int>(n)));
    std::vector<Row> rows;
    for (const TensorMatch& m : hits) {
      if (static_cast<int64_t>(rows.size()) == k) break;
      ASSIGN_OR_RETURN(bool readable, ComponentReadable(db, m.id));
      if (readable) rows.push_back(Row{m.id, m.ref, m.name, m.distance});
    }
    if (static_cast<int64_t>(rows.size()) == k || static_cast<int64_t>(hits.size()) < n || n >= (int64_t{1} << 26))
      return rows;
  }
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
  // One state per connection, shared by the two functions and owned by
  // similar_tensors' spec (it lives as long as the connection).
  auto state = std::make_shared<SearchState>();
  state->store = &store;
  RETURN_IF_ERROR(RegisterTableFunction(db, {"search_text",
                                             {"rank", "kind", "ref", "component_id", "name", "snippet"},
                                             {"q", "k"}, 1,
                                             [state](sqlite3* c, int argc, sqlite3_value** argv) {
                                               return RunText(state.get(), c, argc, argv);
                                             }}));
  return RegisterTableFunction(db, {"similar_tensors", {"id", "ref", "name", "distance"},
                                    {"tensor_id", "k"}, 1,
                                    [state](sqlite3* c, int argc, sqlite3_value** argv) {
                                      return RunSimilar(state.get(), c, argc, argv);
                                    }});
}

}  // namespace hart::query

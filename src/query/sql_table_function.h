// Table-valued SQL functions, the one piece of SQLite virtual-table plumbing
// in the MQE: an eponymous table whose hidden columns are the arguments, so
// `SELECT * FROM graph_walk(7, 'down', 64)` calls a C++ function once per
// argument list and returns its rows.
//   RegisterTableFunction: rows computed in C++ (graph_walk, search_text ...).
//   RegisterSqlTableFunction: rows of a parametrized query, the arguments
//     bound to ?1..?N (lineage, components_as_of).
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_value;

namespace hart::query {

using TableCell = std::variant<std::monostate, int64_t, double, std::string>;
using TableRow = std::vector<TableCell>;  // one cell per column; missing cells are NULL

struct TableFunctionSpec {
  std::string name;
  std::vector<std::string> columns;  // result columns
  std::vector<std::string> args;     // argument names (hidden columns), in call order
  int required_args = 0;
  // The rows for one call; argc >= required_args. An error's message goes to
  // the user as SQLite's error text.
  std::function<absl::StatusOr<std::vector<TableRow>>(sqlite3* db, int argc, sqlite3_value** argv)>
      rows;
};

absl::Status RegisterTableFunction(sqlite3* db, TableFunctionSpec spec);

struct SqlTableFunctionSpec {
  std::string name;
  std::vector<std::string> columns;  // result columns, in the query's order
  std::vector<std::string> args;     // argument names (hidden columns)
  int required_args = 0;
  std::string sql;                   // uses ?1..?N for the arguments
};

absl::Status RegisterSqlTableFunction(sqlite3* db, const SqlTableFunctionSpec& spec);

}  // namespace hart::query

// SqlTableFunction: an eponymous table-valued SQL function whose rows come
// from a parametrized query, e.g. lineage('m@3') or
// components_as_of('m', '2026-01-01'). The function's arguments bind to the
// query's ?1..?N; its columns are the query's result columns.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

struct sqlite3;

namespace hart::query {

struct SqlTableFunctionSpec {
  std::string name;
  std::vector<std::string> columns;  // result columns, in the query's order
  std::vector<std::string> args;     // argument names (hidden columns)
  int required_args = 0;
  std::string sql;                   // uses ?1..?N for the arguments
};

absl::Status RegisterSqlTableFunction(sqlite3* db, const SqlTableFunctionSpec& spec);

}  // namespace hart::query

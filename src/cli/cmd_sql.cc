// `hart sql ["SQL"]`: SQL over the catalog through the MQE (views, MQE
// functions), read-only unless --write. With no SQL argument on a terminal
// it is an interactive shell (libedit line editing and history); with no SQL
// argument and piped input it runs the statements read from stdin.
#include <editline/readline.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "app/query.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/status.h"
#include "fmt/format.h"
#include "query/engine.h"

namespace hart::cli {
namespace {

enum class SqlFormat { kTable, kCsv, kJson };

struct SqlArgs {
  std::string sql;
  bool write = false;
  double timeout = 0;
  std::string format = "table";
};

bool IsNumber(const query::Value& v) {
  return std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v);
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The app names the request's options; here they are flags.
absl::Status FlagWords(const absl::Status& s) {
  std::string m(Msg(s));
  for (auto [from, to] : {std::pair{"writes need a write-enabled query",
                                    "run with --write to change the catalog deliberately"},
                          std::pair{"its time limit of", "the --timeout of"}})
    if (size_t at = m.find(from); at != std::string::npos) m.replace(at, std::string_view(from).size(), to);
  return absl::Status(s.code(), m);
}

// Runs one batch of SQL and prints each result set in the chosen format.
int RunBatch(const app::Context& ctx, const std::string& sql, const SqlArgs& args, SqlFormat fmt) {
  std::vector<std::string> cols;
  std::vector<std::vector<query::Value>> rows;
  auto flush_table = [&] {
    if (cols.empty()) return;
    std::vector<Table::Column> tc;
    for (size_t c = 0; c < cols.size(); ++c) {
      bool numeric = !rows.empty();
      for (const auto& r : rows) numeric = numeric && (IsNumber(r[c]) || std::holds_alternative<std::monostate>(r[c]));
      tc.push_back({cols[c], numeric ? Table::Align::kRight : Table::Align::kLeft});
    }
    Table t(tc);
    for (const auto& r : rows) {
      std::vector<std::string> cells;
      for (const auto& v : r) cells.push_back(query::ValueToString(v));
      t.AddRow(std::move(cells));
    }
    t.Print();
    fmt::print("({} row{})\n", rows.size(), rows.size() == 1 ? "" : "s");
    cols.clear();
    rows.clear();
  };
  query::RowSink sink;
  sink.on_columns = [&](const std::vector<std::string>& c) {
    if (fmt == SqlFormat::kTable) flush_table();
    cols = c;
    if (fmt == SqlFormat::kCsv) {
      std::string line;
      for (size_t i = 0; i < c.size(); ++i) line += (i ? "," : "") + CsvField(c[i]);
      fmt::print("{}\n", line);
    }
  };
  sink.on_row = [&](const std::vector<query::Value>& r) {
    if (fmt == SqlFormat::kTable) {
      rows.push_back(r);
    } else if (fmt == SqlFormat::kCsv) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i)
        line += (i ? "," : "") + (std::holds_alternative<std::monostate>(r[i]) ? std::string() : CsvField(query::ValueToString(r[i])));
      fmt::print("{}\n", line);
    } else {
      PrintJsonLine(app::SqlRowToJson(cols, r));
    }
    return true;
  };
  app::SqlRequest req;
  req.sql = sql;
  req.write = args.write;
  req.timeout_seconds = args.timeout;
  absl::Status s = app::SqlStream(ctx, req, sink);
  if (fmt == SqlFormat::kTable) flush_table();
  std::fflush(stdout);
  if (!s.ok()) return Fail(FlagWords(s));
  return kExitOk;
}

std::string HistoryPath(const Cli& cli) { return cli.StoreDir() + "/.sql_history"; }

int Shell(Cli& cli, const app::Context& ctx, const SqlArgs& args, SqlFormat fmt) {
  std::string hist = HistoryPath(cli);
  using_history();
  read_history(hist.c_str());
  fmt::print("hart sql on {} ({}). End statements with ';'. .tables lists the views, .quit leaves.\n",
             cli.StoreDir(), args.write ? "read-write" : "read-only");
  std::string pending;
  for (;;) {
    char* line = readline(pending.empty() ? "hart> " : "  ...> ");
    if (!line) break;
    std::string l(line);
    std::free(line);
    if (pending.empty() && (l == ".quit" || l == ".exit")) break;
    if (pending.empty() && l == ".tables") {
      RunBatch(ctx,
               "SELECT name, type FROM sqlite_temp_master WHERE type = 'view' UNION ALL "
               "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
               "AND name NOT LIKE 'sqlite_%' ORDER BY 2 DESC, 1",
               args, fmt);
      continue;
    }
    if (l.find_first_not_of(" \t") == std::string::npos && pending.empty()) continue;
    pending += (pending.empty() ? "" : "\n") + l;
    std::string trimmed = pending.substr(0, pending.find_last_not_of(" \t") + 1);
    if (trimmed.empty() || trimmed.back() != ';') continue;
    add_history(pending.c_str());
    write_history(hist.c_str());
    RunBatch(ctx, pending, args, fmt);
    pending.clear();
  }
  fmt::print("\n");
  return kExitOk;
}

int RunSql(Cli& cli, const SqlArgs& args) {
  SqlFormat fmt = SqlFormat::kTable;
  if (cli.json() || args.format == "json") fmt = SqlFormat::kJson;
  else if (args.format == "csv") fmt = SqlFormat::kCsv;
  else if (args.format != "table")
    return Fail(fmt::format("--format {}: expected table, csv or json", args.format));
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  if (!args.sql.empty()) return RunBatch(*ctx, args.sql, args, fmt);
  if (::isatty(0)) return Shell(cli, *ctx, args, fmt);
  std::stringstream in;
  in << std::cin.rdbuf();
  return RunBatch(*ctx, in.str(), args, fmt);
}

}  // namespace

void RegisterSql(Cli& cli) {
  auto args = std::make_shared<SqlArgs>();
  CLI::App* sub = cli.AddCommand(
      "sql", "query the catalog with SQL (views: models, versions, components, tensors, edges, chunks)",
      [&cli, args] { return RunSql(cli, *args); });
  sub->add_option("sql", args->sql, "SQL to run; none: an interactive shell (or statements on stdin)");
  sub->add_flag("--write", args->write, "allow statements that change the catalog");
  sub->add_option("--timeout", args->timeout, "stop a query after this many seconds");
  sub->add_option("--format", args->format, "table (default), csv or json (JSON lines)");
}

}  // namespace hart::cli

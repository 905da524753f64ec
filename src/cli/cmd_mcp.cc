// `hart mcp [--enable-writes]`: Hartonomous as an MCP server on stdio
// (newline-delimited JSON-RPC; src/mcp/). Only argument parsing lives here.
// The caller is the local user (the store's owner); stderr carries one JSON
// log line at start and at the end, never stdout (the protocol's).
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/output.h"
#include "mcp/server.h"
#include "mcp/stdio.h"

namespace hart::cli {
namespace {

struct McpArgs {
  bool enable_writes = false;
  int64_t sql_max_rows = 1000;
  double sql_timeout = 10;
  int64_t max_tokens = 1024;
};

int RunMcp(Cli& cli, const McpArgs& a) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  if (a.sql_max_rows < 1 || a.sql_timeout <= 0 || a.max_tokens < 1) {
    return Fail("--sql-max-rows, --sql-timeout and --max-tokens must be positive");
  }
  mcp::ServerOptions o;
  o.enable_writes = a.enable_writes;
  o.sql_max_rows = a.sql_max_rows;
  o.sql_timeout_seconds = a.sql_timeout;
  o.max_generate_tokens = a.max_tokens;
  app::Caller caller;
  caller.actor = ctx->actor;
  mcp::Server server(o, ctx->store);
  std::fprintf(stderr, "{\"level\":\"info\",\"msg\":\"mcp on stdio\",\"store\":\"%s\",\"writes\":%s}\n",
               ctx->store->dir().c_str(), a.enable_writes ? "true" : "false");
  absl::Status st = mcp::RunStdio(server, STDIN_FILENO, STDOUT_FILENO, caller);
  if (!st.ok()) return Fail(st);
  return kExitOk;
}

}  // namespace

void RegisterMcp(Cli& cli) {
  auto args = std::make_shared<McpArgs>();
  CLI::App* c = cli.AddCommand("mcp", "Serve the store to AI agents over the Model Context Protocol on stdio",
                               [&cli, args] { return RunMcp(cli, *args); });
  c->add_flag("--enable-writes", args->enable_writes, "Offer the write tools ingest and delete_version");
  c->add_option("--sql-max-rows", args->sql_max_rows, "Row cap of the sql_query tool")->capture_default_str();
  c->add_option("--sql-timeout", args->sql_timeout, "Seconds cap of the sql_query tool")->capture_default_str();
  c->add_option("--max-tokens", args->max_tokens, "Most tokens one generate call may ask for")->capture_default_str();
}

}  // namespace hart::cli

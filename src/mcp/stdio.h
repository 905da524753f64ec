// `hart mcp`: the MCP stdio transport. Newline-delimited JSON-RPC on
// in_fd/out_fd: one session, the local caller. Requests run on their own
// threads (so notifications/cancelled reaches a long tools/call), except
// initialize and notifications, which run in order as they are read.
// Bounded: a line longer than the server's max_message is refused with
// -32600 without buffering it; at most 64 MiB of output waits for a client
// that does not read, then reading stops; once stdin closes, requests in flight
// finish, their answers get a few seconds to leave, and RunStdio returns
// even if stdout is never read.
#pragma once

#include <chrono>

#include "absl/status/status.h"
#include "app/caller.h"
#include "mcp/server.h"

namespace hart::mcp {

struct StdioOptions {
  // A client that takes nothing for this long while 64 MiB wait is gone.
  std::chrono::milliseconds write_stall{30000};
  // After stdin closes, how long answers may take to leave.
  std::chrono::milliseconds close_grace{5000};
};

absl::Status RunStdio(Server& server, int in_fd, int out_fd, const app::Caller& caller = {},
                      StdioOptions opts = {});

}  // namespace hart::mcp

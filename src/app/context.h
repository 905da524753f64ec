// app::Context: what every use case of src/app/ runs with. The CLI makes one
// per command; the server one per request (issue 12); MCP tools (issue 15)
// will too. It carries the store (shared: one Store serves every request,
// see the thread-safety contract in store/store.h), who is asking (the audit
// actor written with every change: a parameter, never $USER below the CLI),
// and where progress goes and whether the caller has gone away.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "app/caller.h"
#include "core/cancel.h"
#include "core/progress.h"
#include "store/store.h"

namespace hart::app {

struct Context {
  std::shared_ptr<store::Store> store;
  // The audit actor: the signed-in user or API key name (issue 14), the
  // CLI's $HART_ACTOR/$USER, "local" when unknown. Empty: the store's
  // default (the process user).
  std::string actor;
  // Who is asking, for the access rule (issue 14): the CLI's default is the
  // local owner with every right.
  Caller caller;
  // An id for logs and errors (the server's request id); may be empty.
  std::string request_id;
  // Draw a bar on the terminal (CLI) for long work; the server leaves it off.
  bool tty_progress = false;
  // Hears the progress of long work (ingest, export, verify, load); may be
  // null. Must outlive the call.
  ProgressSink* progress = nullptr;
  // Checked in long loops; may be null. Must outlive the call.
  const CancelToken* cancel = nullptr;

  store::Store& st() const { return *store; }
  // Cancelled "<what>: cancelled" once the caller cancelled, else ok.
  absl::Status CheckCancel(std::string_view what) const { return hart::CheckCancel(cancel, what); }
};

}  // namespace hart::app

// `hart events [--follow] [--after ID]`: the store's outbox as JSON lines,
// one event per line, oldest first; a change feed for scripts and connectors.
#include <signal.h>

#include <memory>

#include "app/events.h"
#include "app/json_io.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/cancel.h"
#include "core/status.h"

namespace hart::cli {
namespace {

// SIGINT/SIGTERM end --follow: the handler only sets an atomic flag.
CancelToken g_stop;
void OnStopSignal(int) { g_stop.Cancel(); }

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

struct EventsArgs {
  bool follow = false;
  int64_t after = 0;
};

int RunEvents(Cli& cli, const EventsArgs& args) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  if (args.after < 0) return Fail("--after must be >= 0");
  if (args.follow) {
    InstallStopHandlers();
    ctx->cancel = &g_stop;
    absl::Status s = app::FollowEvents(*ctx, args.after, [](const store::Event& e) {
      PrintJsonLine(app::ToJson(e));
      return true;
    });
    return s.ok() ? kExitOk : Fail(s);
  }
  app::EventsRequest req;
  req.after = args.after;
  for (;;) {
    auto r = app::Events(*ctx, req);
    if (!r.ok()) return Fail(r.status());
    for (const auto& e : r->events) PrintJsonLine(app::ToJson(e));
    if (static_cast<int64_t>(r->events.size()) < req.limit) break;  // else more waiting
    req.after = r->last_id;
  }
  return kExitOk;
}

}  // namespace

void RegisterEvents(Cli& cli) {
  auto args = std::make_shared<EventsArgs>();
  CLI::App* sub = cli.AddCommand("events", "the change feed (outbox) as JSON lines",
                                 [&cli, args] { return RunEvents(cli, *args); });
  sub->add_flag("-f,--follow", args->follow, "keep polling (every 200 ms) until SIGINT/SIGTERM");
  sub->add_option("--after", args->after, "only events with id greater than this");
}

}  // namespace hart::cli

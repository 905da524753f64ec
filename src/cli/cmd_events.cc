// `hart events [--follow] [--after ID]`: the store's outbox as JSON lines,
// one event per line, oldest first; a change feed for scripts and connectors.
#include <signal.h>
#include <time.h>

#include <atomic>
#include <memory>

#include "cli/command.h"
#include "cli/output.h"
#include "cli/store_json.h"
#include "core/status.h"

namespace hart::cli {
namespace {

constexpr long kPollNanos = 200'000'000;
constexpr int64_t kBatch = 1000;

volatile sig_atomic_t g_stop = 0;
void OnStopSignal(int) { g_stop = 1; }

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the poll sleep ends at once on a signal
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

struct EventsArgs {
  bool follow = false;
  int64_t after = 0;
};

int RunEvents(Cli& cli, const EventsArgs& args) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  if (args.follow) InstallStopHandlers();
  int64_t after = args.after;
  while (!g_stop) {
    auto events = (*st)->Events(after, kBatch);
    if (!events.ok()) return Fail(events.status());
    for (const auto& e : *events) {
      PrintJsonLine(ToJson(e));
      after = e.id;
    }
    if (static_cast<int64_t>(events->size()) == kBatch) continue;  // more waiting
    if (!args.follow) break;
    timespec ts{0, kPollNanos};
    nanosleep(&ts, nullptr);
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

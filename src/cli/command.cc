#include "cli/command.h"

#include <cstdlib>
#include <filesystem>

#include "cli/output.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {

Cli::Cli() : app_("hart: a database for AI models (NinaDB store, MQE queries, runtime)", "hart") {
  app_.set_version_flag("--version", "hart 0.1.0");
  app_.require_subcommand(1);
  // Global options may follow the subcommand too: `hart ls --json`.
  app_.fallthrough();
  app_.add_option("--store", store_dir_, "store directory (default: $HART_HOME, else ~/.hartonomous)");
  app_.add_flag("--json", json_, "machine-readable output on stdout");
  app_.add_flag("--no-progress", no_progress_, "no progress bars (they are drawn only on a TTY anyway)");
}

CLI::App* Cli::AddCommand(const std::string& name, const std::string& description, Action action) {
  CLI::App* sub = app_.add_subcommand(name, description);
  sub->callback([this, action = std::move(action)] { chosen_ = action; });
  return sub;
}

std::string Cli::StoreDir() const {
  return store_dir_.empty() ? store::Store::DefaultDir() : store_dir_;
}

absl::StatusOr<std::unique_ptr<store::Store>> Cli::OpenStore() const {
  std::string dir = StoreDir();
  if (!store::Store::Exists(dir))
    return absl::NotFoundError(fmt::format("no store at {}; run `hart init`", dir));
  return store::Store::Open(dir);
}

absl::StatusOr<app::Context> Cli::MakeContext() const {
  app::Context ctx;
  ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, OpenStore());
  ctx.store = std::move(st);
  ctx.actor = "local";
  for (const char* v : {"HART_ACTOR", "USER", "LOGNAME"})
    if (const char* a = std::getenv(v); a && *a) {
      ctx.actor = a;
      break;
    }
  ctx.tty_progress = progress();
  return ctx;
}

int Cli::Run(int argc, char** argv) {
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app_.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app_.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app_.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(fmt::format("{} (see `hart --help`)", e.what()), kExitUser);
  }
  if (no_progress_) Progress::SetEnabled(false);
  if (!chosen_) return Fail("no command given (see `hart --help`)", kExitUser);
  return chosen_();
}

}  // namespace hart::cli

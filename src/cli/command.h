// The frame every `hart` subcommand plugs into: global options (--store,
// --json, --no-progress), store opening with the CLI's error wording, and
// the registration hook. Commands are renderers: the work and the JSON are
// the app layer's (src/app/); a command parses flags into an app request,
// calls the use case, and prints the response as a table or as its JSON. A command family lives in one cmd_*.cc file that
// defines `void Register<Family>(Cli&)`; main.cc lists the families.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "app/context.h"
#include "store/store.h"

namespace hart::cli {

// A subcommand's work once its arguments are parsed; returns the exit status
// (see output.h: kExitOk, kExitUser, kExitData).
using Action = std::function<int()>;

class Cli {
 public:
  Cli();

  CLI::App& app() { return app_; }
  // Adds a subcommand; `action` runs when the command line chose it.
  CLI::App* AddCommand(const std::string& name, const std::string& description, Action action);

  bool json() const { return json_; }
  bool progress() const { return !no_progress_; }
  // --store, else $HART_HOME, else ~/.hartonomous.
  std::string StoreDir() const;
  // Opens the store; NotFound "no store at DIR; run `hart init`" when absent.
  absl::StatusOr<std::unique_ptr<store::Store>> OpenStore() const;
  // The app layer's context for one command: the opened store, the actor
  // ($HART_ACTOR, else $USER, else $LOGNAME, else "local"), a TTY bar
  // unless --no-progress.
  absl::StatusOr<app::Context> MakeContext() const;

  // Parses argv and runs the chosen action; returns the process exit status.
  int Run(int argc, char** argv);

 private:
  CLI::App app_;
  std::string store_dir_;
  bool json_ = false;
  bool no_progress_ = false;
  Action chosen_;
};

}  // namespace hart::cli

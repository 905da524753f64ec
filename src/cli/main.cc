// `hart`: the command-line face of Hartonomous. Each command family registers
// itself from its own cmd_*.cc file; adding a family is a new file defining
// `void Register<Family>(Cli&)` plus one X(<Family>) line in the list below.
#include "cli/command.h"

#define HART_COMMAND_FAMILIES(X) \
  X(Ingest)  /* init, ingest */ \
  X(Show)    /* ls, show, diff */ \
  X(Export)  /* export */ \
  X(Maint)   /* verify, gc, stats, rm */ \
  X(Events)  /* events */ \
  X(Scan)    /* scan */ \
  X(Similar) /* similar */ \
  X(Run)     /* run, chat */ \
  X(Sql)     /* sql */ \
  X(Plan)    /* plan, load */ \
  X(Serve)   /* serve */ \
  X(Mcp)     /* mcp */ \
  X(Auth)    /* keys, visibility */ \
  X(Workshop) /* quantize, compose, rebuild */ \
  X(Merge)   /* merge */ \
  X(Lora)    /* lora, merge-lora */

namespace hart::cli {
#define HART_DECLARE_FAMILY(name) void Register##name(Cli& cli);
HART_COMMAND_FAMILIES(HART_DECLARE_FAMILY)
#undef HART_DECLARE_FAMILY
}  // namespace hart::cli

int main(int argc, char** argv) {
  hart::cli::Cli cli;
#define HART_REGISTER_FAMILY(name) hart::cli::Register##name(cli);
  HART_COMMAND_FAMILIES(HART_REGISTER_FAMILY)
#undef HART_REGISTER_FAMILY
  return cli.Run(argc, argv);
}

// `hart export MODEL[@V] -o PATH [--verify]`: writes a version's files back
// byte for byte (a directory for multi-file versions).
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/output.h"
#include "cli/store_json.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

struct ExportArgs {
  std::string version;
  std::string out;
  bool verify = false;
};

int RunExport(Cli& cli, const ExportArgs& args) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto ref = store::ParseVersionRef(args.version);
  if (!ref.ok()) return Fail(ref.status());
  auto v = (*st)->Resolve(*ref);
  if (!v.ok()) return Fail(v.status());
  auto files = (*st)->ListFiles(v->id);
  if (!files.ok()) return Fail(files.status());
  absl::Status s = (*st)->Export(v->id, args.out, args.verify, cli.progress());
  if (!s.ok()) return Fail(Annotate(s, fmt::format("export {}", v->ref())));

  uint64_t bytes = 0;
  for (const auto& f : *files) bytes += f.size;
  if (cli.json()) {
    nlohmann::json j = {{"version", v->ref()},
                        {"path", args.out},
                        {"bytes", bytes},
                        {"verified", args.verify},
                        {"files", nlohmann::json::array()}};
    for (const auto& f : *files) j["files"].push_back(ToJson(f));
    PrintJson(j);
  } else {
    fmt::print("exported {} to {}: {} file{}, {}{}\n", v->ref(), args.out, files->size(),
               files->size() == 1 ? "" : "s", HumanBytes(bytes),
               args.verify ? ", SHA-256 verified" : "");
  }
  return kExitOk;
}

}  // namespace

void RegisterExport(Cli& cli) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* sub = cli.AddCommand("export", "write a version's original files back, byte for byte",
                                 [&cli, args] { return RunExport(cli, *args); });
  sub->add_option("version", args->version, "MODEL or MODEL@V (default: latest)")->required();
  sub->add_option("-o,--output", args->out,
                  "output file (a directory for sharded / multi-file versions)")
      ->required();
  sub->add_flag("--verify", args->verify, "check each written file's SHA-256 against the catalog");
}

}  // namespace hart::cli

// `hart export MODEL[@V] -o PATH [--format F] [--verify]`: writes a
// version's files back byte for byte (a directory for multi-file versions),
// or its tensors as one safetensors file (a PyTorch checkpoint converted).
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
  std::string format = "auto";
};

constexpr const char* kExportHelp =
    "Writes a version back out.\n"
    "  --format original     the ingested files, byte for byte (a directory for\n"
    "                        sharded / multi-file versions)\n"
    "  --format safetensors  the tensors as ONE .safetensors file, each tensor's\n"
    "                        contiguous bytes as the source format gives them (a\n"
    "                        PyTorch checkpoint: as torch.load returns them, views\n"
    "                        materialized; shards merged). -o FILE.safetensors\n"
    "                        writes that file; any other -o is a directory that\n"
    "                        gets model.safetensors plus config.json and tokenizer\n"
    "                        files byte for byte.\n"
    "  --format auto         (default) safetensors when -o ends in .safetensors\n"
    "                        and the version is not already safetensors, else\n"
    "                        original.";

int ExportAsSafetensors(Cli& cli, store::Store& st, const store::VersionRow& v, const ExportArgs& args) {
  absl::Status s = st.ExportSafetensors(v.id, args.out, args.verify, cli.progress());
  if (!s.ok()) return Fail(Annotate(s, fmt::format("export {} as safetensors", v.ref())));
  auto tensors = st.ListTensors(v.id);
  if (!tensors.ok()) return Fail(tensors.status());
  uint64_t bytes = 0;
  for (const auto& t : *tensors) bytes += t.nbytes;
  if (cli.json()) {
    nlohmann::json j = {{"version", v.ref()},
               {"path", args.out},
               {"format", "safetensors"},
               {"source_format", formats::FormatName(v.format)},
               {"tensors", tensors->size()},
               {"tensor_bytes", bytes},
               {"verified", args.verify}};
    PrintJson(j);
  } else {
    fmt::print("exported {} ({}) to {} as safetensors: {} tensors, {}{}\n", v.ref(),
               formats::FormatName(v.format), args.out, tensors->size(), HumanBytes(bytes),
               args.verify ? ", read back and compared" : "");
  }
  return kExitOk;
}

int RunExport(Cli& cli, const ExportArgs& args) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto ref = store::ParseVersionRef(args.version);
  if (!ref.ok()) return Fail(ref.status());
  auto v = (*st)->Resolve(*ref);
  if (!v.ok()) return Fail(v.status());
  auto files = (*st)->ListFiles(v->id);
  if (!files.ok()) return Fail(files.status());
  std::string format = args.format;
  if (format == "auto")
    format = args.out.ends_with(".safetensors") && v->format != formats::Format::kSafetensors
                 ? "safetensors"
                 : "original";
  if (format != "original" && format != "safetensors")
    return Fail(absl::InvalidArgumentError(
        fmt::format("--format {}: expected auto, original or safetensors", args.format)));
  if (format == "safetensors") return ExportAsSafetensors(cli, **st, *v, args);
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
               args.verify ? ", verified against the digests recorded at ingest" : "");
  }
  return kExitOk;
}

}  // namespace

void RegisterExport(Cli& cli) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* sub = cli.AddCommand("export",
                                 "write a version's original files back byte for byte, or its tensors "
                                 "as safetensors",
                                 [&cli, args] { return RunExport(cli, *args); });
  sub->footer(kExportHelp);
  sub->add_option("version", args->version, "MODEL or MODEL@V (default: latest)")->required();
  sub->add_option("-o,--output", args->out,
                  "output file (a directory for sharded / multi-file versions)")
      ->required();
  sub->add_option("--format", args->format, "auto (default), original or safetensors; see below");
  sub->add_flag("--verify", args->verify,
                "original: check each written file's digest (and SHA-256 when recorded) against the "
                "catalog; safetensors: read "
                "the file back and compare every tensor");
}

}  // namespace hart::cli

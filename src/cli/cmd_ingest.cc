// Getting models in: `hart init` creates a store; `hart ingest FILE|DIR...
// [--model NAME] [--license ID] [--parent MODEL@V]` reads each path with its
// format's reader and commits it as one new version.
#include <memory>
#include <string>
#include <vector>

#include "app/transfer.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/model_source.h"

namespace hart::cli {
namespace {

struct IngestArgs {
  std::vector<std::string> paths;
  std::string model;
  std::string license;
  std::string parent;
  std::string tokenizer;
  bool file_sha256 = false;
};

int RunInit(Cli& cli) {
  std::string dir = cli.StoreDir();
  absl::Status s = store::Store::Init(dir);
  if (!s.ok()) return Fail(s);
  if (cli.json()) {
    PrintJson({{"store", dir}});
  } else {
    fmt::print("initialized NinaDB store at {}\n", dir);
  }
  return kExitOk;
}

// A store suggests the version sharing the most bytes; below this share the
// relation is coincidence (equal norm vectors, say), not lineage.
constexpr double kMinTipShare = 0.5;

void PrintResult(const store::IngestResult& r) {
  uint64_t shared = r.logical_bytes > r.new_bytes ? r.logical_bytes - r.new_bytes : 0;
  fmt::print("{}@{}  tensors {}  logical {}  new {}  dedup {}  license {}\n", r.model, r.number,
             r.tensors, HumanBytes(r.logical_bytes), HumanBytes(r.new_bytes),
             Percent(Fraction(shared, r.logical_bytes)), r.license.empty() ? "-" : r.license);
  if (r.suggested_parent && r.suggested_shared >= kMinTipShare) {
    // Versions are immutable, so the parent cannot be added afterwards; the tip
    // is for the next ingest of this lineage.
    fmt::print("tip: shares {:.0f}% of its bytes with {}; record that with --parent {}\n",
               r.suggested_shared * 100, *r.suggested_parent, *r.suggested_parent);
  }
  std::fflush(stdout);
}

// The app names request fields; here they are flags.
absl::Status FlagWords(const absl::Status& s) {
  std::string m(Msg(s));
  for (auto [field, flag] : {std::pair{"(license: ", "(--license "}, std::pair{"(model)", "(--model NAME)"}})
    if (size_t at = m.find(field); at != std::string::npos) m.replace(at, std::string_view(field).size(), flag);
  if (m.starts_with("parent: ")) m.replace(0, 6, "--parent");
  return absl::Status(s.code(), m);
}

int RunIngest(Cli& cli, const IngestArgs& args) {
  app::IngestRequest req;
  req.model = args.model;
  req.file_sha256 = args.file_sha256;
  if (!args.license.empty()) req.license = args.license;
  req.parent = args.parent;
  req.tokenizer = args.tokenizer;
  if (!args.parent.empty()) {
    auto ref = store::ParseVersionRef(args.parent);
    if (!ref.ok()) return Fail(Annotate(ref.status(), "--parent"));
  }
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());

  // Each path is its own transaction: one failure does not undo the others,
  // and the exit status is the worst of them.
  int exit_code = kExitOk;
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& path : args.paths) {
    req.path = path;
    auto r = app::Ingest(*ctx, req);
    if (!r.ok()) {
      exit_code = std::max(exit_code, Fail(FlagWords(r.status())));
      continue;
    }
    if (cli.json()) results.push_back(r->ToJson());
    else PrintResult(r->result);
  }
  if (cli.json()) PrintJson(results);
  return exit_code;
}

}  // namespace

void RegisterIngest(Cli& cli) {
  cli.AddCommand("init", "create a NinaDB store (no-op when it exists)",
                 [&cli] { return RunInit(cli); });
  auto args = std::make_shared<IngestArgs>();
  CLI::App* sub = cli.AddCommand(
      "ingest", "store models as new versions (safetensors, GGUF, ONNX, PyTorch, llama2.c; see --help)",
      [&cli, args] { return RunIngest(cli, *args); });
  sub->footer(
      "Formats (recognised by content, then by name):\n"
      "  safetensors   a .safetensors file; a sharded checkpoint's *.safetensors.index.json\n"
      "  GGUF          a .gguf file; the first part of a split model (NAME-00001-of-0000N.gguf)\n"
      "  ONNX          a .onnx file, with its external data files beside it\n"
      "  PyTorch       a .bin/.pt/.pth checkpoint (zip or legacy pickle, tensors only: the\n"
      "                pickle is checked, never run); a sharded one's *.bin.index.json\n"
      "  llama2.c      a .bin checkpoint of llama2.c's run.c, with its tokenizer.bin (--tokenizer)\n"
      "  directory     a Hugging Face model directory: safetensors (preferred), else PyTorch\n"
      "                weights, else one .gguf, else one llama2.c checkpoint; config.json and\n"
      "                tokenizer files are kept\n"
      "A license is required: from the file's metadata when it names one, else --license.");
  sub->add_option("paths", args->paths, "model files or directories; each becomes one version")
      ->required();
  sub->add_option("--model", args->model, "model name (default: the file name without suffix)");
  sub->add_option("--license", args->license,
                  "license id (e.g. mit, apache-2.0); required when the file names none");
  sub->add_option("--parent", args->parent, "the version this one derives from (MODEL@V)");
  sub->add_option("--tokenizer", args->tokenizer,
                  "a llama2.c checkpoint's tokenizer file (stored in the same version); default: "
                  "tokenizer.bin beside the checkpoint, else the one tok*.bin there that fits its vocabulary");
  sub->add_flag("--file-sha256", args->file_sha256,
                "also record each file's plain SHA-256 (one extra serial pass; for comparing "
                "with a published hash)");
}

}  // namespace hart::cli

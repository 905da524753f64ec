// `hart export MODEL[@V] -o PATH [--format F] [--verify]`: writes a
// version's files back byte for byte (a directory for multi-file versions),
// or its tensors as one safetensors file (a PyTorch checkpoint converted).
#include <memory>
#include <string>

#include "app/transfer.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"

namespace hart::cli {
namespace {

struct ExportArgs {
  std::string version;
  std::string out;
  bool verify = false;
  std::string format = "auto";
  std::string dtype = "bf16";
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
    "  --format hf           a Hugging Face model directory transformers loads\n"
    "                        (llama, mistral, qwen2, qwen3 GGUF versions, derived\n"
    "                        ones included): model.safetensors with HF tensor\n"
    "                        names, Q/K rows un-permuted to HF's rotary order,\n"
    "                        quantized tensors dequantized to --dtype; config.json\n"
    "                        and generation_config.json from the GGUF metadata;\n"
    "                        tokenizer.json copied from the first version of the\n"
    "                        lineage ingested with one (else none, and it says so).\n"
    "                        -o must be a new or empty directory.\n"
    "  --format auto         (default) safetensors when -o ends in .safetensors\n"
    "                        and the version is not already safetensors, else\n"
    "                        original.";

int RunExport(Cli& cli, const ExportArgs& args) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  if (args.format != "auto" && args.format != "original" && args.format != "safetensors" &&
      args.format != "hf")
    return Fail(absl::InvalidArgumentError(
        fmt::format("--format {}: expected auto, original, safetensors or hf", args.format)));
  if (args.dtype != "bf16" && args.format != "hf")
    return Fail(absl::InvalidArgumentError("--dtype applies to --format hf only"));
  app::ExportRequest req;
  req.version = args.version;
  req.format = args.format;
  req.verify = args.verify;
  req.dtype = args.dtype;
  auto r = app::Export(*ctx, req, args.out);
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  const store::VersionRow& v = r->version;
  if (r->format == "hf" && r->hf) {
    const workshop::HfExportResult& h = *r->hf;
    fmt::print("exported {} ({}) to {} as a Hugging Face model: {} tensors in {} ({}), {}\n", v.ref(), h.arch,
               args.out, h.tensors, args.dtype, HumanBytes(h.tensor_bytes), fmt::join(h.files, ", "));
    if (!h.dropped.empty())
      fmt::print("not exported as tensors (carried by config.json): {}\n", fmt::join(h.dropped, ", "));
    if (h.tokenizer_from == "gguf") fmt::print("tokenizer: tokenizer.json written from the GGUF vocabulary\n");
    else if (!h.tokenizer_from.empty()) fmt::print("tokenizer: copied from {}\n", h.tokenizer_from);
    else fmt::print("{}\n", h.tokenizer_note);
  } else if (r->format == "safetensors") {
    fmt::print("exported {} ({}) to {} as safetensors: {} tensors, {}{}\n", v.ref(),
               formats::FormatName(v.format), args.out, r->tensors, HumanBytes(r->tensor_bytes),
               args.verify ? ", read back and compared" : "");
  } else {
    fmt::print("exported {} to {}: {} file{}, {}{}\n", v.ref(), args.out, r->files.size(),
               r->files.size() == 1 ? "" : "s", HumanBytes(r->bytes),
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
  sub->add_option("--format", args->format, "auto (default), original, safetensors or hf; see below");
  sub->add_option("--dtype", args->dtype, "hf: tensor type in model.safetensors: bf16 (default), f16, f32");
  sub->add_flag("--verify", args->verify,
                "original: check each written file's digest (and SHA-256 when recorded) against the "
                "catalog; safetensors: read "
                "the file back and compare every tensor");
}

}  // namespace hart::cli

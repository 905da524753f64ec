// `hart lora PATH --base REF [--as NAME]`: a PEFT or GGUF LoRA adapter into
// the store, attached to its base; `hart merge-lora BASE ADAPTER[:SCALE]
// [--as NAME]`: the adapter merged into a new version (workshop/lora.h).
#include <cstdlib>
#include <memory>
#include <string>

#include "app/merge.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

struct LoraArgs {
  std::string path, base, adapter, as;
};

int RunImport(Cli& cli, const LoraArgs& args) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  app::LoraRequest req;
  req.path = args.path;
  req.base = args.base;
  req.as = args.as;
  auto r = app::ImportLora(*ctx, req);
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  fmt::print("stored {} ({} LoRA, rank {}, alpha {}, {} tensors targeted) attached to {}\n", r->ref,
             r->source, r->rank, r->alpha, r->pairs, r->base);
  return kExitOk;
}

int RunMergeLora(Cli& cli, const LoraArgs& args) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  app::LoraRequest req;
  req.base = args.base;
  req.adapter = args.adapter;
  req.as = args.as;
  // ADAPTER[:SCALE]: a trailing :number is the scale.
  const size_t colon = args.adapter.rfind(':');
  if (colon != std::string::npos) {
    const std::string tail = args.adapter.substr(colon + 1);
    char* end = nullptr;
    const double v = std::strtod(tail.c_str(), &end);
    if (tail.empty() || *end != '\0')
      return Fail(absl::InvalidArgumentError(
          fmt::format("ADAPTER[:SCALE] {}: {} is not a number", args.adapter, tail)));
    req.adapter = args.adapter.substr(0, colon);
    req.scale = v;
  }
  auto r = app::MergeLora(*ctx, req);
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  fmt::print("merged {} into {} at scale {} (alpha {}, rank {}): {} tensors changed, {} new\n",
             req.adapter, r->ref, req.scale, r->alpha, r->rank, r->pairs, HumanBytes(r->new_bytes));
  return kExitOk;
}

}  // namespace

void RegisterLora(Cli& cli) {
  auto args = std::make_shared<LoraArgs>();
  CLI::App* sub = cli.AddCommand(
      "lora", "store a LoRA adapter (PEFT directory or GGUF adapter) attached to its base",
      [&cli, args] { return RunImport(cli, *args); });
  sub->add_option("path", args->path,
                  "PEFT adapter directory (adapter_model.safetensors + adapter_config.json), "
                  "its .safetensors, or a llama.cpp GGUF LoRA adapter")
      ->required();
  sub->add_option("--base", args->base, "the base version (MODEL or MODEL@V)")->required();
  sub->add_option("--as", args->as, "model name of the adapter (default: BASE-lora)");

  auto margs = std::make_shared<LoraArgs>();
  CLI::App* m = cli.AddCommand("merge-lora", "materialize base + scale * (alpha/r) * B@A as a new version",
                               [&cli, margs] { return RunMergeLora(cli, *margs); });
  m->add_option("base", margs->base, "the base version")->required();
  m->add_option("adapter", margs->adapter, "ADAPTER[:SCALE]: a stored adapter (`hart lora`), scale 1 by default")
      ->required();
  m->add_option("--as", margs->as, "model name of the merged version (default: BASE-merged)");
}

}  // namespace hart::cli

// `hart merge RECIPE.yaml [--as NAME] [--stats]`: a mergekit recipe over
// stored GGUF versions into a new version (app/merge.h, workshop/merge.h).
#include <memory>
#include <string>

#include "app/merge.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/file_util.h"
#include "core/progress.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

struct MergeArgs {
  std::string recipe;
  std::string as;
  bool stats = false;
};

constexpr const char* kMergeHelp =
    "Runs a mergekit recipe (YAML) over versions in the store: merge_method linear,\n"
    "slerp, task_arithmetic, ties, dare_linear, dare_ties or passthrough; `models`\n"
    "(whole models) or `slices` (layer_range [start, end) per source, stacked);\n"
    "parameters weight, density, t (numbers, gradients, {filter, value} lists),\n"
    "normalize, rescale, lambda; base_model; dtype float32|float16|bfloat16;\n"
    "random_seed (DARE: the same seed gives the same bytes). Models are store\n"
    "references (name or name@N) of GGUF versions. Tensors are streamed; tensors\n"
    "taken unchanged (passthrough) share their chunks. Every error names the\n"
    "recipe field, and is found before anything is written.";

int RunMerge(Cli& cli, const MergeArgs& args) {
  std::string text;
  {
    FILE* f = std::fopen(args.recipe.c_str(), "rb");
    if (!f) return Fail(absl::NotFoundError(fmt::format("{}: cannot open the recipe", args.recipe)));
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() < (2u << 20)) text.append(buf, n);
    std::fclose(f);
  }
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  app::MergeRequest req;
  req.recipe = std::move(text);
  req.recipe_name = args.recipe;
  req.as = args.as;
  auto r = app::Merge(*ctx, req);
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  for (const workshop::InputConversion& c : r->conversions)
    if (c.created)
      fmt::print("converted {} (Hugging Face) to {}, its GGUF layout; {} new bytes stored\n", c.hf_ref,
                 c.converted, HumanBytes(c.result.ingest.new_bytes));
    else
      fmt::print("{} (Hugging Face): using its conversion {}\n", c.hf_ref, c.converted);
  for (const std::string& n : r->notes) fmt::print(stderr, "note: {}\n", n);
  fmt::print("merged {} ({}) from {}: {} layers, {} tensors computed, {} taken unchanged; {} new\n",
             r->ref, r->method, fmt::join(r->inputs, ", "), r->layers, r->computed, r->taken,
             HumanBytes(r->new_bytes));
  if (args.stats)
    fmt::print(stderr, "merge: read {} in {:.2f} s ({:.2f} GB/s of input), wrote {}, peak RSS {}\n",
               HumanBytes(r->input_bytes), r->seconds,
               r->seconds > 0 ? r->input_bytes / r->seconds / 1e9 : 0.0, HumanBytes(r->output_bytes),
               HumanBytes(r->peak_rss));
  return kExitOk;
}

}  // namespace

void RegisterMerge(Cli& cli) {
  auto args = std::make_shared<MergeArgs>();
  CLI::App* sub = cli.AddCommand("merge", "merge stored models by a mergekit recipe",
                                 [&cli, args] { return RunMerge(cli, *args); });
  sub->footer(kMergeHelp);
  sub->add_option("recipe", args->recipe, "mergekit YAML recipe")->required();
  sub->add_option("--as", args->as, "model name of the new version (default: the recipe's file stem)");
  sub->add_flag("--stats", args->stats, "print throughput and peak memory on stderr");
}

}  // namespace hart::cli

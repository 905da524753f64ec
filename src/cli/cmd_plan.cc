// `hart plan` and `hart load`: the MQE planner. plan shows what a selection
// needs (the selected tensors plus their upstream closure, byte ranges, and
// the cost against the whole model); load writes exactly those tensors as a
// safetensors or GGUF sub-model.
#include <memory>
#include <string>
#include <vector>

#include "app/query.h"
#include "app/transfer.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"
#include "query/planner.h"

namespace hart::cli {
namespace {

struct PlanArgs {
  query::PlanRequest req;
  bool no_closure = false;
  std::string out;
  std::string format = "auto";
};

void AddSelection(CLI::App* sub, PlanArgs* a) {
  sub->add_option("version", a->req.version, "MODEL or MODEL@V (default: latest)")->required();
  sub->add_option("--sql", a->req.sql, "SQL whose id column lists components (tensors or blocks)");
  sub->add_option("--search", a->req.search, "full-text query over tensor names, roles and layers (FTS5 syntax: words AND-ed, \"phrases\", OR, prefix*)");
  sub->add_option("--names", a->req.names, "GLOB patterns over tensor names")->expected(1, -1);
  sub->add_flag("--no-closure", a->no_closure, "only the selection, without upstream dependencies");
}

// The app names the request fields; here they are flags.
absl::Status FlagWords(const absl::Status& s) {
  std::string m(Msg(s));
  if (m == "give exactly one selection: sql, search or names")
    m = "give exactly one selection: --sql, --search or --names";
  if (m.starts_with("the selection SQL ")) m.replace(0, 17, "--sql");
  return absl::Status(s.code(), m);
}

int RunPlan(Cli& cli, PlanArgs& a) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  app::PlanRequest req;
  req.plan = a.req;
  req.plan.closure = !a.no_closure;
  auto r = app::Plan(*ctx, req);
  if (!r.ok()) return Fail(FlagWords(r.status()));
  const query::Plan* plan = &r->plan;
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  Table t({{"tensor"}, {"role"}, {"layer", Table::Align::kRight}, {"dtype"}, {"shape"},
           {"size", Table::Align::kRight}, {"why"}, {"ranges", Table::Align::kRight}});
  for (const auto& p : plan->tensors)
    t.AddRow({p.name, p.role, p.layer < 0 ? "" : std::to_string(p.layer), std::string(Name(p.dtype)),
              ShapeToString(p.shape), HumanBytes(p.nbytes), p.selected ? "selected" : "upstream",
              std::to_string(p.ranges.size())});
  t.Print();
  fmt::print("{}: {}\n", plan->version.ref(), plan->Summary());
  return kExitOk;
}

int RunLoad(Cli& cli, PlanArgs& a) {
  if (a.format != "auto" && a.format != "safetensors" && a.format != "gguf")
    return Fail(fmt::format("--format {}: expected auto, safetensors or gguf", a.format));
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  app::LoadRequest req;
  req.plan.plan = a.req;
  req.plan.plan.closure = !a.no_closure;
  req.format = a.format;
  auto r = app::Load(*ctx, req, a.out);
  if (!r.ok()) return Fail(FlagWords(r.status()));
  if (cli.json()) {
    PrintJson(r->ToJson());
  } else {
    fmt::print("wrote {} tensors of {} to {}: {}\n", r->plan.tensors.size(), r->plan.version.ref(),
               a.out, r->plan.Summary());
  }
  return kExitOk;
}

}  // namespace

void RegisterPlan(Cli& cli) {
  auto plan = std::make_shared<PlanArgs>();
  CLI::App* p = cli.AddCommand("plan", "what a selection of components needs: closure, bytes, cost",
                               [&cli, plan] { return RunPlan(cli, *plan); });
  AddSelection(p, plan.get());
  auto load = std::make_shared<PlanArgs>();
  CLI::App* l = cli.AddCommand("load", "write a planned selection as a safetensors or GGUF sub-model",
                               [&cli, load] { return RunLoad(cli, *load); });
  AddSelection(l, load.get());
  l->add_option("-o,--output", load->out, "output file")->required();
  l->add_option("--format", load->format, "auto (the source's), safetensors or gguf");
}

}  // namespace hart::cli

// `hart similar TENSOR|MODEL@V [-k N]`: the nearest weights across the store
// by fingerprint (docs/MQE.md "Search"). A tensor is an id or
// 'model@N:name'; a version lists the versions nearest on aggregate, which
// names the base a fine-tune came from.
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "app/query.h"
#include "cli/command.h"
#include "cli/output.h"
#include "fmt/format.h"
#include "query/graph.h"
#include "query/similarity.h"

namespace hart::cli {
namespace {

struct Args {
  std::string target;
  int k = 10;
};

int RunSimilar(Cli& cli, const Args& a) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  if (a.k <= 0) return Fail("-k must be at least 1");
  auto r = app::Similar(*ctx, {a.target, a.k});
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  if (r->by_tensor) {
    Table t({{"ID", Table::Align::kRight}, {"VERSION"}, {"DISTANCE", Table::Align::kRight}, {"TENSOR"}});
    for (const auto& h : r->tensors)
      t.AddRow({std::to_string(h.id), h.ref, fmt::format("{:.4f}", h.distance), h.name});
    t.Print();
    return kExitOk;
  }
  auto lineage = [&](const std::string& ref) -> std::string {
    for (const auto& d : r->derived_from)
      if (d == ref) return "derived from";
    for (const auto& d : r->derived_into)
      if (d == ref) return "derived into";
    return "-";
  };
  if (r->versions.empty()) {
    fmt::print("no other version has tensors near {}\n", r->version.ref());
  } else {
    Table t({{"VERSION"}, {"SIMILARITY", Table::Align::kRight}, {"MATCHED", Table::Align::kRight},
             {"LINEAGE"}});
    for (const auto& h : r->versions)
      t.AddRow({h.ref, fmt::format("{:.4f}", h.similarity),
                fmt::format("{}/{}", h.matched, r->version.tensors), lineage(h.ref)});
    t.Print();
  }
  if (!r->derived_from.empty())
    fmt::print("{} was derived from {}\n", r->version.ref(), fmt::join(r->derived_from, ", "));
  if (!r->derived_into.empty())
    fmt::print("derived from {}: {}\n", r->version.ref(), fmt::join(r->derived_into, ", "));
  return kExitOk;
}

}  // namespace

void RegisterSimilar(Cli& cli) {
  auto args = std::make_shared<Args>();
  CLI::App* c = cli.AddCommand(
      "similar", "nearest tensors (TENSOR: id or MODEL@V:NAME) or versions (MODEL@V) by weight fingerprint",
      [&cli, args] { return RunSimilar(cli, *args); });
  c->add_option("target", args->target, "tensor id, MODEL@V:TENSOR, or MODEL[@V]")->required();
  c->add_option("-k", args->k, "how many (default 10)");
}

}  // namespace hart::cli

// `hart similar TENSOR|MODEL@V [-k N]`: the nearest weights across the store
// by fingerprint (docs/MQE.md "Search"). A tensor is an id or
// 'model@N:name'; a version lists the versions nearest on aggregate, which
// names the base a fine-tune came from.
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
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
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  if (a.k <= 0) return Fail("-k must be at least 1");
  query::Similarity sim(**st);
  int64_t tensor_id = 0;
  bool is_tensor = absl::SimpleAtoi(a.target, &tensor_id) ||
                   a.target.find(':') != std::string::npos;
  if (is_tensor) {
    if (a.target.find(':') != std::string::npos) {
      auto id = query::ResolveComponent((*st)->catalog(), a.target);
      if (!id.ok()) return Fail(id.status());
      tensor_id = *id;
    }
    auto hits = sim.NearestTensors(tensor_id, a.k);
    if (!hits.ok()) return Fail(hits.status());
    if (cli.json()) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& h : *hits)
        j.push_back({{"id", h.id}, {"ref", h.ref}, {"name", h.name}, {"distance", h.distance}});
      PrintJson(j);
      return kExitOk;
    }
    Table t({{"ID", Table::Align::kRight}, {"VERSION"}, {"DISTANCE", Table::Align::kRight}, {"TENSOR"}});
    for (const auto& h : *hits)
      t.AddRow({std::to_string(h.id), h.ref, fmt::format("{:.4f}", h.distance), h.name});
    t.Print();
    return kExitOk;
  }
  auto ref = store::ParseVersionRef(a.target);
  if (!ref.ok()) return Fail(ref.status());
  auto v = (*st)->Resolve(*ref);
  if (!v.ok()) return Fail(v.status());
  auto hits = sim.NearestVersions(v->id, a.k);
  if (!hits.ok()) return Fail(hits.status());
  if (cli.json()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& h : *hits)
      j.push_back({{"version", h.ref}, {"similarity", h.similarity}, {"matched_tensors", h.matched}});
    PrintJson(j);
    return kExitOk;
  }
  if (hits->empty()) {
    fmt::print("no other version has tensors near {}\n", v->ref());
    return kExitOk;
  }
  Table t({{"VERSION"}, {"SIMILARITY", Table::Align::kRight}, {"MATCHED", Table::Align::kRight}});
  for (const auto& h : *hits)
    t.AddRow({h.ref, fmt::format("{:.4f}", h.similarity),
              fmt::format("{}/{}", h.matched, v->tensors)});
  t.Print();
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

// `hart scan FILE...`: what a pickle-based checkpoint (.pt, .pth, .bin,
// .pkl) would import and call if Python loaded it, found without running
// anything, and a verdict. Exit 0 when every file is safe, 2 when one is not.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/output.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/torch.h"

namespace hart::cli {
namespace {

std::string_view KindName(formats::PickleFinding::Kind k) {
  switch (k) {
    case formats::PickleFinding::Kind::kImport: return "import";
    case formats::PickleFinding::Kind::kCall: return "call";
    case formats::PickleFinding::Kind::kExtension: return "extension";
  }
  return "?";
}

nlohmann::json ToJson(const std::string& path, const formats::TorchScanReport& r) {
  nlohmann::json pickles = nlohmann::json::array();
  for (const auto& p : r.pickles) {
    nlohmann::json findings = nlohmann::json::array();
    for (const auto& f : p.findings)
      findings.push_back({{"kind", KindName(f.kind)}, {"opcode", f.opcode}, {"target", f.target},
                          {"offset", f.offset}, {"allowed", f.allowed}});
    nlohmann::json j = {{"where", p.where}, {"offset", p.base}, {"findings", std::move(findings)}};
    if (!p.error.ok()) j["error"] = std::string(Msg(p.error));
    pickles.push_back(std::move(j));
  }
  return {{"file", path}, {"format", r.format}, {"safe", r.safe}, {"verdict", r.verdict},
          {"pickles", std::move(pickles)}};
}

// Allowed findings are grouped (a checkpoint calls the tensor rebuild once
// per tensor); refused ones are listed one by one with their offsets.
void PrintReport(const std::string& path, const formats::TorchScanReport& r) {
  fmt::print("{}: {}, {} pickle{}\n", path, r.format, r.pickles.size(), r.pickles.size() == 1 ? "" : "s");
  for (const auto& p : r.pickles) {
    fmt::print("  {} (offset {})\n", p.where, p.base);
    Table t({{"KIND"}, {"OPCODE"}, {"TARGET"}, {"COUNT", Table::Align::kRight},
             {"OFFSET", Table::Align::kRight}, {"STATUS"}});
    struct Group { std::string kind, opcode, target; uint64_t count = 0, first = 0; };
    std::map<std::string, Group> groups;
    std::vector<std::string> order;
    for (const auto& f : p.findings) {
      if (!f.allowed) {
        t.AddRow({std::string(KindName(f.kind)), f.opcode, f.target, "1", std::to_string(f.offset), "REFUSED"});
        continue;
      }
      std::string key = fmt::format("{}|{}|{}", KindName(f.kind), f.opcode, f.target);
      auto [it, fresh] = groups.try_emplace(key, Group{std::string(KindName(f.kind)), f.opcode, f.target, 0, f.offset});
      if (fresh) order.push_back(key);
      ++it->second.count;
    }
    for (const auto& k : order) {
      const Group& g = groups[k];
      t.AddRow({g.kind, g.opcode, g.target, std::to_string(g.count), std::to_string(g.first), "allowed"});
    }
    if (!t.empty()) t.Print();
    if (!p.error.ok()) fmt::print("    stopped: {}\n", Msg(p.error));
  }
  fmt::print("{}\n", r.verdict);
}

int RunScan(Cli& cli, const std::vector<std::string>& paths) {
  int exit_code = kExitOk;
  nlohmann::json all = nlohmann::json::array();
  for (const std::string& path : paths) {
    auto r = formats::ScanTorchFile(path);
    if (!r.ok()) {
      exit_code = std::max(exit_code, Fail(r.status()));
      continue;
    }
    if (cli.json()) all.push_back(ToJson(path, *r));
    else PrintReport(path, *r);
    if (!r->safe) exit_code = kExitData;
  }
  if (cli.json()) PrintJson(paths.size() == 1 && !all.empty() ? all[0] : all);
  return exit_code;
}

}  // namespace

void RegisterScan(Cli& cli) {
  auto paths = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = cli.AddCommand(
      "scan", "list what a pickle checkpoint (.pt/.pth/.bin/.pkl) would import and call, without running it",
      [&cli, paths] { return RunScan(cli, *paths); });
  sub->add_option("files", *paths, "checkpoint or pickle files")->required();
}

}  // namespace hart::cli

// Store upkeep: `hart verify`, `hart gc`, `hart stats`, `hart rm`.
#include <memory>
#include <string>
#include <utility>

#include "cli/command.h"
#include "cli/output.h"
#include "cli/store_json.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

int RunVerify(Cli& cli) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto report = (*st)->Verify(cli.progress());
  if (!report.ok()) return Fail(report.status());
  if (cli.json()) {
    PrintJson(ToJson(*report));
  } else if (report->ok()) {
    fmt::print("ok: {} chunks, {} verified\n", report->chunks, HumanBytes(report->bytes));
  } else {
    Table t({{"CHUNK"}, {"PACK"}, {"OFFSET", Table::Align::kRight}, {"REASON"}, {"HURTS"}});
    for (const auto& b : report->bad) {
      std::string hurts;
      for (const auto& name : b.tensors) hurts += (hurts.empty() ? "" : ", ") + name;
      t.AddRow({b.sha256.substr(0, 16), b.pack, std::to_string(b.offset), b.reason,
                hurts.empty() ? "-" : hurts});
    }
    t.Print();
  }
  if (!report->ok()) {
    return Fail(fmt::format("verify found {} bad chunk{} of {}", report->bad.size(),
                            report->bad.size() == 1 ? "" : "s", report->chunks),
                kExitData);
  }
  return kExitOk;
}

int RunGc(Cli& cli) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto r = (*st)->Gc();
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(ToJson(*r));
  } else {
    fmt::print("gc: removed {} chunks, reclaimed {}; {} packs rewritten, {} deleted\n",
               r->chunks_removed, HumanBytes(r->bytes_reclaimed), r->packs_rewritten,
               r->packs_deleted);
  }
  return kExitOk;
}

int RunRm(Cli& cli, const std::string& version, bool force) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto ref = store::ParseVersionRef(version);
  if (!ref.ok()) return Fail(ref.status());
  auto r = (*st)->DeleteVersion(*ref, force);
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson({{"deleted", r->ref},
               {"tensors", r->tensors},
               {"exclusive_bytes", r->exclusive_bytes},
               {"children_relinked", r->children}});
    return kExitOk;
  }
  fmt::print("deleted {} ({} tensors); `hart gc` reclaims the {} only it referenced\n", r->ref,
             r->tensors, HumanBytes(r->exclusive_bytes));
  for (const auto& c : r->children) fmt::print("  {} now descends from {}'s parent\n", c, r->ref);
  return kExitOk;
}

std::string Ratio(double r) { return r > 0 ? fmt::format("{:.2f}x", r) : "-"; }

int RunStats(Cli& cli) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto r = (*st)->Stats();
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(ToJson(*r));
    return kExitOk;
  }
  using A = Table::Align;
  Table t({{"MODEL"}, {"VERSIONS", A::kRight}, {"TENSORS", A::kRight}, {"LOGICAL", A::kRight},
           {"PHYSICAL", A::kRight}, {"DEDUP", A::kRight}});
  auto add = [&](const store::StatsRow& m, const std::string& name) {
    t.AddRow({name, std::to_string(m.versions), std::to_string(m.tensors),
              HumanBytes(m.logical_bytes), HumanBytes(m.physical_bytes), Ratio(m.dedup_ratio)});
  };
  for (const auto& m : r->models) add(m, m.model);
  add(r->total, "(total)");
  t.Print();
  uint64_t saved = r->total.logical_bytes > r->total.physical_bytes
                       ? r->total.logical_bytes - r->total.physical_bytes
                       : 0;
  fmt::print("\ndedup saves {} ({} of logical bytes)\n", HumanBytes(saved),
             Percent(Fraction(saved, r->total.logical_bytes)));
  fmt::print("on disk: packs {}, catalog {}\n", HumanBytes(r->pack_bytes),
             HumanBytes(r->catalog_bytes));
  return kExitOk;
}

}  // namespace

void RegisterMaint(Cli& cli) {
  cli.AddCommand("verify", "re-hash every chunk; exit 2 listing what a bad chunk hurts",
                 [&cli] { return RunVerify(cli); });
  cli.AddCommand("gc", "reclaim chunks no version references (e.g. left by a crash)",
                 [&cli] { return RunGc(cli); });
  auto rm = std::make_shared<std::pair<std::string, bool>>();
  CLI::App* sub = cli.AddCommand("rm", "delete a version (its bytes stay until `hart gc`; numbers are never reused)",
                                 [&cli, rm] { return RunRm(cli, rm->first, rm->second); });
  sub->add_option("version", rm->first, "MODEL@V to delete")->required();
  sub->add_flag("--force", rm->second, "delete a version that is the parent of others (relinks them)");
  cli.AddCommand("stats", "logical vs physical bytes per model: what dedup saves",
                 [&cli] { return RunStats(cli); });
}

}  // namespace hart::cli

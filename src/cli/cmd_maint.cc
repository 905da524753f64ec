// Store upkeep: `hart verify`, `hart gc`, `hart stats`, `hart rm`.
#include <memory>
#include <string>
#include <utility>

#include "app/catalog.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

int RunVerify(Cli& cli) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto resp = app::Verify(*ctx, {});
  if (!resp.ok()) return Fail(resp.status());
  const store::VerifyReport* report = &resp->report;
  if (cli.json()) {
    PrintJson(resp->ToJson());
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
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto resp = app::Gc(*ctx, {});
  if (!resp.ok()) return Fail(resp.status());
  const store::GcReport* r = &resp->report;
  if (cli.json()) {
    PrintJson(resp->ToJson());
  } else {
    fmt::print("gc: removed {} chunks, reclaimed {}; {} packs rewritten, {} deleted\n",
               r->chunks_removed, HumanBytes(r->bytes_reclaimed), r->packs_rewritten,
               r->packs_deleted);
  }
  return kExitOk;
}

int RunRm(Cli& cli, const std::string& version, bool force) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto resp = app::Remove(*ctx, {version, force});
  if (!resp.ok()) {
    // The app names the request field; here it is a flag.
    if (resp.status().code() == absl::StatusCode::kFailedPrecondition)
      return Fail(fmt::format("{} (use --force)", Msg(resp.status())));
    return Fail(resp.status());
  }
  const store::DeleteReport* r = &resp->report;
  if (cli.json()) {
    PrintJson(resp->ToJson());
    return kExitOk;
  }
  fmt::print("deleted {} ({} tensors); `hart gc` reclaims the {} only it referenced\n", r->ref,
             r->tensors, HumanBytes(r->exclusive_bytes));
  for (const auto& c : r->children) fmt::print("  {} now descends from {}'s parent\n", c, r->ref);
  return kExitOk;
}

std::string Ratio(double r) { return r > 0 ? fmt::format("{:.2f}x", r) : "-"; }

int RunStats(Cli& cli) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto resp = app::Stats(*ctx, {});
  if (!resp.ok()) return Fail(resp.status());
  const store::StatsReport* r = &resp->report;
  if (cli.json()) {
    PrintJson(resp->ToJson());
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

// Looking at what a store holds: `hart ls [MODEL]`, `hart show MODEL[@V]`,
// `hart diff A B`.
#include <algorithm>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/output.h"
#include "app/catalog.h"
#include "core/progress.h"
#include "core/shape.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

using A = Table::Align;

int RunLs(Cli& cli, const std::string& model) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto r = app::List(*ctx, {model});
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  if (!r->versions_of_model) {
    if (r->models.empty()) {
      fmt::print("no models yet; add one with `hart ingest FILE`\n");
      return kExitOk;
    }
    Table t({{"MODEL"}, {"VERSIONS", A::kRight}, {"LATEST"}, {"SIZE", A::kRight}});
    for (const auto& m : r->models)
      t.AddRow({m.name, std::to_string(m.versions), fmt::format("{}@{}", m.name, m.latest),
                HumanBytes(m.logical_bytes)});
    t.Print();
    return kExitOk;
  }
  Table t({{"VERSION"}, {"PARENT"}, {"FORMAT"}, {"LICENSE"}, {"TENSORS", A::kRight},
           {"SIZE", A::kRight}, {"CREATED"}});
  for (const auto& v : r->versions)
    t.AddRow({v.ref(), v.parent.value_or("-"), std::string(formats::FormatName(v.format)),
              v.license, std::to_string(v.tensors), HumanBytes(v.logical_bytes),
              FormatTime(v.created_at)});
  t.Print();
  return kExitOk;
}

int RunShow(Cli& cli, const std::string& arg) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto r = app::Show(*ctx, {arg});
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
    return kExitOk;
  }
  const store::VersionRow* v = &r->version;
  const auto* files = &r->files;
  const auto* tensors = &r->tensors;
  fmt::print("{}\n", v->ref());
  PrintFields({{"format", std::string(formats::FormatName(v->format))},
               {"license", v->license.empty() ? "-" : v->license},
               {"architecture", v->architecture.empty() ? "-" : v->architecture},
               {"parent", v->parent.value_or("-")},
               {"created", FormatTime(v->created_at)},
               {"tensors", std::to_string(v->tensors)},
               {"size", fmt::format("{} ({} bytes)", HumanBytes(v->logical_bytes),
                                    v->logical_bytes)},
               {"files", std::to_string(files->size())}});
  if (r->derivation) {
    std::string inputs;
    for (const auto& in : r->derivation->inputs)
      inputs += (inputs.empty() ? "" : ", ") + in.value("ref", std::string("?"));
    PrintFields({{"derived by", r->derivation->method},
                 {"from", inputs.empty() ? "-" : inputs},
                 {"parameters", r->derivation->parameters.dump()},
                 {"made with", r->derivation->hart_version}});
  }
  if (!r->derived.empty()) {
    std::string list;
    for (const auto& d : r->derived) list += (list.empty() ? "" : ", ") + d;
    PrintFields({{"derived into", list}});
  }
  bool any_sha = std::any_of(files->begin(), files->end(), [](const auto& f) { return !f.sha256.empty(); });
  if (files->size() > 1 || any_sha) {
    fmt::print("\n");
    Table ft({{"FILE"}, {"SIZE", A::kRight}, {any_sha ? "SHA256" : "DIGEST"}});
    for (const auto& f : *files)
      ft.AddRow({f.name, HumanBytes(f.size), any_sha ? (f.sha256.empty() ? "-" : f.sha256) : f.digest});
    ft.Print();
  }
  fmt::print("\n");
  Table t({{"TENSOR"}, {"DTYPE"}, {"SHAPE"}, {"SIZE", A::kRight}, {"SHARED WITH"}});
  for (const auto& row : *tensors) {
    std::string shared;
    for (const auto& s : row.shared_with) shared += (shared.empty() ? "" : ", ") + s;
    t.AddRow({row.name, std::string(Name(row.dtype)), ShapeToString(row.shape), HumanBytes(row.nbytes),
              shared.empty() ? "-" : shared});
  }
  t.Print();
  return kExitOk;
}

std::string DiffCell(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty() || a == b) return a;
  return a + " -> " + b;
}

int RunDiff(Cli& cli, const std::string& arg_a, const std::string& arg_b) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto d = app::Diff(*ctx, {arg_a, arg_b});
  if (!d.ok()) return Fail(d.status());
  if (cli.json()) {
    PrintJson(d->ToJson());
    return kExitOk;
  }
  const auto* rows = &d->rows;
  if (!rows->empty()) {
    Table t({{""}, {"TENSOR"}, {"DTYPE"}, {"SHAPE"}, {"SIZE", A::kRight},
             {"CHANGED", A::kRight}});
    for (const auto& r : *rows) {
      std::string sa = r.kind == store::DiffRow::Kind::kAdded ? "" : ShapeToString(r.shape_a);
      std::string sb = r.kind == store::DiffRow::Kind::kRemoved ? "" : ShapeToString(r.shape_b);
      std::string za = r.kind == store::DiffRow::Kind::kAdded ? "" : HumanBytes(r.bytes_a);
      std::string zb = r.kind == store::DiffRow::Kind::kRemoved ? "" : HumanBytes(r.bytes_b);
      const char* mark = r.kind == store::DiffRow::Kind::kAdded     ? "+"
                         : r.kind == store::DiffRow::Kind::kRemoved ? "-"
                                                                    : "~";
      t.AddRow({mark, r.name, DiffCell(r.dtype_a, r.dtype_b), DiffCell(sa, sb), DiffCell(za, zb),
                HumanBytes(r.changed_bytes)});
    }
    t.Print();
    fmt::print("\n");
  }
  const app::DiffSummary& s = d->summary;
  fmt::print("{} -> {}: {} added, {} removed, {} changed; {} of {} new\n", d->a.ref(), d->b.ref(),
             s.added, s.removed, s.changed, HumanBytes(s.changed_bytes), HumanBytes(d->b.logical_bytes));
  return kExitOk;
}

}  // namespace

void RegisterShow(Cli& cli) {
  auto model = std::make_shared<std::string>();
  CLI::App* ls = cli.AddCommand("ls", "list models, or the versions of MODEL",
                                [&cli, model] { return RunLs(cli, *model); });
  ls->add_option("model", *model, "list this model's versions");

  auto ref = std::make_shared<std::string>();
  CLI::App* show = cli.AddCommand("show", "a version's header and tensor table",
                                  [&cli, ref] { return RunShow(cli, *ref); });
  show->add_option("version", *ref, "MODEL or MODEL@V (default: latest)")->required();

  auto pair = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* diff = cli.AddCommand("diff", "tensors added, removed and changed from A to B",
                                  [&cli, pair] { return RunDiff(cli, pair->first, pair->second); });
  diff->add_option("a", pair->first, "MODEL[@V]")->required();
  diff->add_option("b", pair->second, "MODEL[@V]")->required();
}

}  // namespace hart::cli

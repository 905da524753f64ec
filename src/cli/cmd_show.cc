// Looking at what a store holds: `hart ls [MODEL]`, `hart show MODEL[@V]`,
// `hart diff A B`.
#include <algorithm>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/output.h"
#include "cli/store_json.h"
#include "core/progress.h"
#include "core/shape.h"
#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

using A = Table::Align;

absl::StatusOr<store::VersionRow> ResolveArg(store::Store& st, const std::string& arg) {
  ASSIGN_OR_RETURN(store::VersionRef ref, store::ParseVersionRef(arg));
  return st.Resolve(ref);
}

int ListModels(Cli& cli, store::Store& st) {
  auto models = st.ListModels();
  if (!models.ok()) return Fail(models.status());
  if (cli.json()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& m : *models) j.push_back(ToJson(m));
    PrintJson(j);
    return kExitOk;
  }
  if (models->empty()) {
    fmt::print("no models yet; add one with `hart ingest FILE`\n");
    return kExitOk;
  }
  Table t({{"MODEL"}, {"VERSIONS", A::kRight}, {"LATEST"}, {"SIZE", A::kRight}});
  for (const auto& m : *models)
    t.AddRow({m.name, std::to_string(m.versions), fmt::format("{}@{}", m.name, m.latest),
              HumanBytes(m.logical_bytes)});
  t.Print();
  return kExitOk;
}

int ListVersions(Cli& cli, store::Store& st, const std::string& model) {
  auto versions = st.ListVersions(model);
  if (!versions.ok()) return Fail(versions.status());
  if (versions->empty()) return Fail(fmt::format("no model named '{}'", model));
  if (cli.json()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : *versions) j.push_back(ToJson(v));
    PrintJson(j);
    return kExitOk;
  }
  Table t({{"VERSION"}, {"PARENT"}, {"FORMAT"}, {"LICENSE"}, {"TENSORS", A::kRight},
           {"SIZE", A::kRight}, {"CREATED"}});
  for (const auto& v : *versions)
    t.AddRow({v.ref(), v.parent.value_or("-"), std::string(formats::FormatName(v.format)),
              v.license, std::to_string(v.tensors), HumanBytes(v.logical_bytes),
              FormatTime(v.created_at)});
  t.Print();
  return kExitOk;
}

int RunLs(Cli& cli, const std::string& model) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  return model.empty() ? ListModels(cli, **st) : ListVersions(cli, **st, model);
}

int RunShow(Cli& cli, const std::string& arg) {
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto v = ResolveArg(**st, arg);
  if (!v.ok()) return Fail(v.status());
  auto tensors = (*st)->ListTensors(v->id);
  if (!tensors.ok()) return Fail(tensors.status());
  auto files = (*st)->ListFiles(v->id);
  if (!files.ok()) return Fail(files.status());

  if (cli.json()) {
    nlohmann::json j = {{"version", ToJson(*v, /*with_metadata=*/true)},
                        {"files", nlohmann::json::array()},
                        {"tensors", nlohmann::json::array()}};
    for (const auto& f : *files) j["files"].push_back(ToJson(f));
    for (const auto& t : *tensors) j["tensors"].push_back(ToJson(t));
    PrintJson(j);
    return kExitOk;
  }
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
  for (const auto& r : *tensors) {
    std::string shared;
    for (const auto& s : r.shared_with) shared += (shared.empty() ? "" : ", ") + s;
    t.AddRow({r.name, std::string(Name(r.dtype)), ShapeToString(r.shape), HumanBytes(r.nbytes),
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
  auto st = cli.OpenStore();
  if (!st.ok()) return Fail(st.status());
  auto a = ResolveArg(**st, arg_a);
  if (!a.ok()) return Fail(a.status());
  auto b = ResolveArg(**st, arg_b);
  if (!b.ok()) return Fail(b.status());
  auto rows = (*st)->Diff(a->id, b->id);
  if (!rows.ok()) return Fail(rows.status());

  uint64_t added = 0, removed = 0, changed = 0, changed_bytes = 0;
  for (const auto& r : *rows) {
    switch (r.kind) {
      case store::DiffRow::Kind::kAdded: ++added; break;
      case store::DiffRow::Kind::kRemoved: ++removed; break;
      case store::DiffRow::Kind::kChanged: ++changed; break;
    }
    changed_bytes += r.changed_bytes;
  }
  if (cli.json()) {
    nlohmann::json j = {{"a", a->ref()}, {"b", b->ref()}, {"rows", nlohmann::json::array()}};
    for (const auto& r : *rows) j["rows"].push_back(ToJson(r));
    j["summary"] = {{"added", added},
                    {"removed", removed},
                    {"changed", changed},
                    {"changed_bytes", changed_bytes},
                    {"logical_bytes_a", a->logical_bytes},
                    {"logical_bytes_b", b->logical_bytes}};
    PrintJson(j);
    return kExitOk;
  }
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
  fmt::print("{} -> {}: {} added, {} removed, {} changed; {} of {} new\n", a->ref(), b->ref(),
             added, removed, changed, HumanBytes(changed_bytes), HumanBytes(b->logical_bytes));
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

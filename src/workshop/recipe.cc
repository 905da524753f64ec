#include "workshop/recipe.h"

#include "core/status.h"
#include "fmt/format.h"
#include "workshop/compose.h"
#include "workshop/hf_import.h"
#include "workshop/lora.h"
#include "workshop/merge.h"
#include "workshop/quantize.h"

namespace hart::workshop {

absl::StatusOr<Derivation> BuildFromRecord(store::Store& store, const store::DerivationRecord& rec) {
  std::vector<int64_t> inputs;
  for (const nlohmann::json& in : rec.inputs) {
    if (!in.is_object() || !in.contains("version_id") || !in["version_id"].is_number_integer())
      return absl::DataLossError(fmt::format("derivation record: input without a version_id: {}", in.dump()));
    inputs.push_back(in["version_id"].get<int64_t>());
  }
  if (rec.method == "quantize") {
    if (inputs.size() != 1)
      return absl::DataLossError("quantize record: exactly one input expected");
    QuantizeParams p;
    p.type = rec.parameters.value("type", "");
    p.keep = rec.parameters.value("keep", std::vector<std::string>{});
    ASSIGN_OR_RETURN(SourceModel src, OpenSourceById(store, inputs[0]));
    return BuildQuantize(store, src, p);
  }
  if (rec.method == "compose") return BuildCompose(store, rec.parameters);
  if (rec.method == "convert-hf") {
    if (inputs.size() != 1) return absl::DataLossError("convert-hf record: exactly one input expected");
    return BuildConvertHf(store, inputs[0]);
  }
  if (rec.method == "merge") return BuildMergeFromRecord(store, rec.parameters);
  if (rec.method == "merge-lora") {
    if (inputs.size() != 2) return absl::DataLossError("merge-lora record: two inputs expected");
    ASSIGN_OR_RETURN(SourceModel b, OpenSourceById(store, inputs[0]));
    ASSIGN_OR_RETURN(SourceModel a, OpenSourceById(store, inputs[1]));
    ASSIGN_OR_RETURN(LoraMergePlan p, PlanMergeLora(store, b.version.ref(), a.version.ref(),
                                                    rec.parameters.value("scale", 1.0)));
    return std::move(p.derivation);
  }
  return absl::UnimplementedError(
      fmt::format("derivation method '{}' cannot be re-run by this build", rec.method));
}

absl::StatusOr<RebuildResult> Rebuild(store::Store& store, std::string_view ref) {
  ASSIGN_OR_RETURN(store::VersionRef r, store::ParseVersionRef(ref));
  ASSIGN_OR_RETURN(store::VersionRow v, store.Resolve(r));
  ASSIGN_OR_RETURN(std::optional<store::DerivationRecord> rec, store.GetDerivation(v.id));
  if (!rec)
    return absl::FailedPreconditionError(
        fmt::format("{} was ingested, not derived: there is no recipe to re-run", v.ref()));
  ASSIGN_OR_RETURN(std::vector<store::FileRow> files, store.ListFiles(v.id));
  if (files.empty()) return absl::DataLossError(fmt::format("{} has no files", v.ref()));
  ASSIGN_OR_RETURN(Derivation d, BuildFromRecord(store, *rec));
  RebuildResult res;
  res.ref = v.ref();
  res.method = rec->method;
  res.stored_digest = files[0].digest;
  ASSIGN_OR_RETURN(res.derive, DeriveDigestOnly(store, d));
  res.rebuilt_digest = res.derive.file_digest;
  res.identical = !res.stored_digest.empty() && res.stored_digest == res.rebuilt_digest;
  return res;
}

}  // namespace hart::workshop

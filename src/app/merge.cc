#include "app/merge.h"

#include "app/workshop.h"
#include "core/status.h"

namespace hart::app {

nlohmann::json MergeResponse::ToJson() const {
  return {{"ref", ref},
          {"method", method},
          {"inputs", inputs},
          {"layers", layers},
          {"tensors_taken", taken},
          {"tensors_computed", computed},
          {"output_bytes", output_bytes},
          {"input_bytes", input_bytes},
          {"new_bytes", new_bytes},
          {"peak_rss_bytes", peak_rss},
          {"seconds", seconds},
          {"file_digest", digest},
          {"notes", notes},
          {"conversions", ConversionsJson(conversions)}};
}

absl::StatusOr<MergeResponse> Merge(const Context& ctx, const MergeRequest& req) {
  workshop::DeriveOptions opts;
  opts.model = req.as;
  opts.actor = ctx.actor;
  opts.progress = ctx.tty_progress;
  opts.progress_sink = ctx.progress;
  opts.cancel = ctx.cancel;
  const std::string name = req.recipe_name.empty() ? "recipe.yaml" : req.recipe_name;
  // HF models converted in memory and the merge planned and checked against
  // them before any conversion is stored (derive.h, PrepareInputs); a recipe
  // that does not parse is reported by RunMerge.
  std::vector<workshop::InputConversion> conv;
  if (auto parsed = workshop::ParseMergeRecipe(req.recipe, name); parsed.ok()) {
    ASSIGN_OR_RETURN(workshop::PreparedInputs prepared, workshop::PrepareInputs(ctx.st(), parsed->ModelRefs()));
    if (!prepared.pending.empty()) {
      RETURN_IF_ERROR(workshop::CheckWithPrepared(ctx.st(), prepared, [&]() -> absl::Status {
        ASSIGN_OR_RETURN(workshop::MergePlan plan, workshop::PlanMerge(ctx.st(), *parsed, req.recipe));
        return workshop::CheckDerivation(ctx.st(), plan.derivation);
      }));
    }
    workshop::DeriveOptions co = opts;
    co.model.clear();
    ASSIGN_OR_RETURN(conv, workshop::StorePrepared(ctx.st(), std::move(prepared), co));
  }
  auto run = workshop::RunMerge(ctx.st(), req.recipe, name, opts);
  if (!run.ok()) {
    workshop::UndoConversions(ctx.st(), conv, ctx.actor);
    return workshop::AnnotateUndone(run.status(), conv);
  }
  workshop::MergeResult& r = *run;
  MergeResponse out;
  out.ref = r.derive.ref;
  out.method = r.plan.derivation.parameters.value("merge_method", "");
  out.inputs = r.plan.input_refs;
  out.layers = r.plan.layers;
  out.taken = r.plan.taken;
  out.computed = r.plan.computed;
  out.output_bytes = r.derive.output_bytes;
  out.input_bytes = r.derive.input_bytes;
  out.new_bytes = r.derive.ingest.new_bytes;
  out.peak_rss = r.derive.peak_rss_bytes;
  out.seconds = r.derive.seconds;
  out.digest = r.derive.file_digest;
  out.notes = r.plan.notes;
  out.conversions = std::move(conv);
  return out;
}

nlohmann::json LoraResponse::ToJson() const {
  return {{"ref", ref},   {"base", base},   {"source", source},       {"rank", rank},
          {"alpha", alpha}, {"pairs", pairs}, {"new_bytes", new_bytes}};
}

namespace {
workshop::DeriveOptions Options(const Context& ctx, const std::string& as) {
  workshop::DeriveOptions opts;
  opts.model = as;
  opts.actor = ctx.actor;
  opts.progress = ctx.tty_progress;
  opts.progress_sink = ctx.progress;
  opts.cancel = ctx.cancel;
  return opts;
}
LoraResponse Response(const workshop::LoraResult& r) {
  LoraResponse out;
  out.ref = r.derive.ref;
  out.base = r.base_ref;
  out.source = r.source;
  out.rank = r.rank;
  out.alpha = r.alpha;
  out.pairs = r.pairs;
  out.new_bytes = r.derive.ingest.new_bytes;
  return out;
}
}  // namespace

absl::StatusOr<LoraResponse> ImportLora(const Context& ctx, const LoraRequest& req) {
  ASSIGN_OR_RETURN(workshop::LoraResult r,
                   workshop::ImportLora(ctx.st(), req.path, req.base, Options(ctx, req.as)));
  return Response(r);
}

absl::StatusOr<LoraResponse> MergeLora(const Context& ctx, const LoraRequest& req) {
  ASSIGN_OR_RETURN(workshop::LoraResult r, workshop::MergeLora(ctx.st(), req.base, req.adapter,
                                                               req.scale, Options(ctx, req.as)));
  return Response(r);
}

}  // namespace hart::app

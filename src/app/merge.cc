#include "app/merge.h"

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
          {"notes", notes}};
}

absl::StatusOr<MergeResponse> Merge(const Context& ctx, const MergeRequest& req) {
  workshop::DeriveOptions opts;
  opts.model = req.as;
  opts.actor = ctx.actor;
  opts.progress = ctx.tty_progress;
  opts.progress_sink = ctx.progress;
  opts.cancel = ctx.cancel;
  ASSIGN_OR_RETURN(workshop::MergeResult r,
                   workshop::RunMerge(ctx.st(), req.recipe,
                                      req.recipe_name.empty() ? "recipe.yaml" : req.recipe_name,
                                      opts));
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
  return out;
}

}  // namespace hart::app

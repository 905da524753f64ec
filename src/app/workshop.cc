#include "app/workshop.h"
#include "workshop/hf_import.h"

#include <algorithm>
#include <cctype>

#include "core/status.h"
#include "fmt/format.h"
#include "workshop/compose.h"
#include "workshop/quantize.h"

namespace hart::app {

using nlohmann::json;

json DeriveResultJson(const workshop::DeriveResult& r) {
  return {{"version", r.ref},
          {"tensors", r.ingest.tensors},
          {"taken_tensors", r.taken_tensors},
          {"computed_tensors", r.computed_tensors},
          {"output_bytes", r.output_bytes},
          {"computed_bytes", r.computed_bytes},
          {"input_bytes", r.input_bytes},
          {"file_bytes", r.ingest.logical_bytes},
          {"new_bytes", r.ingest.new_bytes},
          {"new_chunks", r.ingest.new_chunks},
          {"file_digest", r.file_digest},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"max_tensor_buffer", r.max_tensor_buffer},
          {"seconds", r.seconds}};
}

absl::StatusOr<QuantizeRequest> QuantizeRequest::FromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("quantize request: a JSON object expected");
  QuantizeRequest r;
  r.version = j.value("version", "");
  r.type = j.value("type", "");
  r.as = j.value("as", "");
  if (j.contains("keep")) r.keep = j["keep"].get<std::vector<std::string>>();
  if (r.version.empty()) return absl::InvalidArgumentError("quantize request: version is required");
  if (r.type.empty()) return absl::InvalidArgumentError("quantize request: type is required");
  return r;
}

absl::StatusOr<DeriveResponse> Quantize(const Context& ctx, const QuantizeRequest& req) {
  ASSIGN_OR_RETURN(workshop::SourceModel src, workshop::OpenSource(ctx.st(), req.version));
  workshop::QuantizeParams p{req.type, req.keep};
  ASSIGN_OR_RETURN(workshop::Derivation d, workshop::BuildQuantize(ctx.st(), src, p));
  workshop::DeriveOptions o;
  o.model = req.as.empty() ? fmt::format("{}-{}", src.version.model, req.type) : req.as;
  o.actor = ctx.actor;
  o.progress = ctx.tty_progress;
  o.progress_sink = ctx.progress;
  o.cancel = ctx.cancel;
  DeriveResponse r;
  ASSIGN_OR_RETURN(r.result, workshop::Derive(ctx.st(), d, o));
  return r;
}

absl::StatusOr<DeriveResponse> Compose(const Context& ctx, const ComposeRequest& req) {
  ASSIGN_OR_RETURN(workshop::Derivation d, workshop::BuildCompose(ctx.st(), req.spec));
  workshop::DeriveOptions o;
  std::string base_model = req.spec["base"].get<std::string>();
  base_model = base_model.substr(0, base_model.find('@'));
  o.model = req.as.empty() ? base_model + "-composed" : req.as;
  o.actor = ctx.actor;
  o.progress = ctx.tty_progress;
  o.progress_sink = ctx.progress;
  o.cancel = ctx.cancel;
  DeriveResponse r;
  ASSIGN_OR_RETURN(r.result, workshop::Derive(ctx.st(), d, o));
  return r;
}

absl::StatusOr<DeriveResponse> Convert(const Context& ctx, const ConvertRequest& req) {
  ASSIGN_OR_RETURN(store::VersionRef ref, store::ParseVersionRef(req.version));
  auto v = ctx.st().Resolve(ref);
  if (!v.ok()) return Annotate(v.status(), fmt::format("convert {}", req.version));
  ASSIGN_OR_RETURN(workshop::Derivation d, workshop::BuildConvertHf(ctx.st(), v->id));
  workshop::DeriveOptions o;
  o.model = req.as.empty() ? v->model + "-gguf" : req.as;
  o.actor = ctx.actor;
  o.progress = ctx.tty_progress;
  o.progress_sink = ctx.progress;
  o.cancel = ctx.cancel;
  DeriveResponse r;
  ASSIGN_OR_RETURN(r.result, workshop::Derive(ctx.st(), d, o));
  return r;
}

json RebuildResponse::ToJson() const {
  return {{"version", result.ref},
          {"method", result.method},
          {"stored_digest", result.stored_digest},
          {"rebuilt_digest", result.rebuilt_digest},
          {"identical", result.identical},
          {"peak_rss_bytes", result.derive.peak_rss_bytes},
          {"seconds", result.derive.seconds}};
}

absl::StatusOr<RebuildResponse> Rebuild(const Context& ctx, std::string_view version) {
  RebuildResponse r;
  ASSIGN_OR_RETURN(r.result, workshop::Rebuild(ctx.st(), version));
  return r;
}

}  // namespace hart::app

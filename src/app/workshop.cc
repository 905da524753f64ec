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

json ConversionsJson(const std::vector<workshop::InputConversion>& c) {
  json out = json::array();
  for (const workshop::InputConversion& x : c) {
    json j = {{"input", x.input}, {"hf", x.hf_ref}, {"converted", x.converted}, {"created", x.created}};
    if (x.created) j["new_bytes"] = x.result.ingest.new_bytes;
    out.push_back(std::move(j));
  }
  return out;
}

namespace {

workshop::DeriveOptions Options(const Context& ctx, std::string model) {
  workshop::DeriveOptions o;
  o.model = std::move(model);
  o.actor = ctx.actor;
  o.progress = ctx.tty_progress;
  o.progress_sink = ctx.progress;
  o.cancel = ctx.cancel;
  return o;
}

// Builds the conversions of the HF versions among `refs` in memory, runs
// `check` (the method's own checks, up to CheckDerivation) against them,
// stores them only when it passes, then runs `op`; the conversions made
// here are deleted again when `op` fails after all (an I/O fault or a
// cancel: everything else was checked with nothing stored).
template <typename Check, typename Op>
absl::StatusOr<DeriveResponse> WithConvertedInputs(const Context& ctx, const std::vector<std::string>& refs,
                                                   Check check, Op op) {
  ASSIGN_OR_RETURN(workshop::PreparedInputs prepared, workshop::PrepareInputs(ctx.st(), refs));
  if (!prepared.pending.empty()) RETURN_IF_ERROR(workshop::CheckWithPrepared(ctx.st(), prepared, check));
  ASSIGN_OR_RETURN(std::vector<workshop::InputConversion> conv,
                   workshop::StorePrepared(ctx.st(), std::move(prepared), Options(ctx, "")));
  absl::StatusOr<workshop::DeriveResult> r = op();
  if (!r.ok()) {
    workshop::UndoConversions(ctx.st(), conv, ctx.actor);
    return workshop::AnnotateUndone(r.status(), conv);
  }
  DeriveResponse out;
  out.result = std::move(*r);
  out.conversions = std::move(conv);
  return out;
}

std::string ModelOf(std::string_view ref) { return std::string(ref.substr(0, ref.find('@'))); }

}  // namespace

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
  workshop::QuantizeParams p{req.type, req.keep};
  // An unknown type is refused before an HF input is converted.
  RETURN_IF_ERROR(workshop::PlanQuantize(workshop::SourceModel{}, p).status());
  auto build = [&]() -> absl::StatusOr<workshop::Derivation> {
    ASSIGN_OR_RETURN(workshop::SourceModel src, workshop::OpenSource(ctx.st(), req.version));
    return workshop::BuildQuantize(ctx.st(), src, p);
  };
  auto check = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(workshop::Derivation d, build());
    return workshop::CheckDerivation(ctx.st(), d);
  };
  return WithConvertedInputs(ctx, {req.version}, check, [&]() -> absl::StatusOr<workshop::DeriveResult> {
    ASSIGN_OR_RETURN(workshop::Derivation d, build());
    // The default name follows the model the user named, not its conversion.
    return workshop::Derive(ctx.st(), d,
                            Options(ctx, req.as.empty() ? fmt::format("{}-{}", ModelOf(req.version), req.type)
                                                        : req.as));
  });
}

absl::StatusOr<DeriveResponse> Compose(const Context& ctx, const ComposeRequest& req) {
  std::vector<std::string> refs;
  if (req.spec.is_object()) {
    if (req.spec.contains("base") && req.spec["base"].is_string()) refs.push_back(req.spec["base"]);
    if (req.spec.contains("parts") && req.spec["parts"].is_array())
      for (const json& part : req.spec["parts"])
        if (part.is_object() && part.contains("from") && part["from"].is_string()) refs.push_back(part["from"]);
  }
  auto check = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(workshop::Derivation d, workshop::BuildCompose(ctx.st(), req.spec));
    return workshop::CheckDerivation(ctx.st(), d);
  };
  return WithConvertedInputs(ctx, refs, check, [&]() -> absl::StatusOr<workshop::DeriveResult> {
    ASSIGN_OR_RETURN(workshop::Derivation d, workshop::BuildCompose(ctx.st(), req.spec));
    std::string base_model = req.spec["base"].get<std::string>();
    base_model = base_model.substr(0, base_model.find('@'));
    return workshop::Derive(ctx.st(), d, Options(ctx, req.as.empty() ? base_model + "-composed" : req.as));
  });
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

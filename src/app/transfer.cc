#include "app/access.h"
#include "app/transfer.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "app/catalog.h"
#include "app/json_io.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/model_source.h"

namespace hart::app {

using nlohmann::json;

namespace {
constexpr uint64_t kPiece = 1 << 20;
}

// ---- ingest ----

absl::StatusOr<IngestRequest> IngestRequest::FromJson(const json& j) {
  IngestRequest r;
  RETURN_IF_ERROR(FieldReader(j, "ingest request")
                      .String("model", &r.model)
                      .OptString("license", &r.license)
                      .String("parent", &r.parent)
                      .Bool("file_sha256", &r.file_sha256)
                      .Finish());
  return r;
}

json IngestRequest::ToJson() const {
  json j = json::object();
  if (!model.empty()) j["model"] = model;
  if (license) j["license"] = *license;
  if (!parent.empty()) j["parent"] = parent;
  if (file_sha256) j["file_sha256"] = true;
  return j;
}

json IngestResponse::ToJson() const {
  json j = app::ToJson(result);
  j["path"] = path;
  return j;
}

absl::StatusOr<IngestResponse> Ingest(const Context& ctx, const IngestRequest& req) {
  if (req.path.empty()) return absl::InvalidArgumentError("ingest: no file given");
  store::IngestOptions opts;
  opts.model = req.model;
  opts.file_sha256 = req.file_sha256;
  if (req.license && !req.license->empty()) opts.license = *req.license;
  if (!req.parent.empty()) {
    auto ref = store::ParseVersionRef(req.parent);
    if (!ref.ok()) return Annotate(ref.status(), "parent");
    opts.parent = *ref;
  }
  opts.progress = ctx.tty_progress;
  opts.progress_sink = ctx.progress;
  opts.cancel = ctx.cancel;
  opts.actor = ctx.actor;
  // A new version of an existing model: its owner (Contributor) or an Admin;
  // a new model: any Contributor, who then owns it. Checked here first (a
  // refused caller costs no read of the file), and again inside the commit
  // transaction (store::IngestOptions::authorize), so a model created or
  // changed meanwhile is judged as it is when the version lands.
  if (ctx.caller.role != AccessRole::kAdmin || ctx.caller.authenticated) {
    if (req.model.empty() && ctx.caller.role != AccessRole::kAdmin)
      return absl::InvalidArgumentError("ingest: give the model name (model)");
    RETURN_IF_ERROR(CheckIngest(ctx, req.model));
    if (opts.parent) RETURN_IF_ERROR(CheckRead(ctx, opts.parent->model));
    opts.authorize = [caller = ctx.caller, model = req.model](const std::optional<store::ModelAccess>& m) {
      return IngestAllowed(caller, model, m);
    };
    // The caller owns what it creates, private until it says otherwise:
    // written in the same transaction as the version.
    opts.new_model_access = store::ModelAccess{ctx.caller.owner, ctx.caller.tenant, "private"};
  }
  // Dedup across owners stays invisible: chunks only others' models hold
  // count, and cost, as new (docs/AUTH.md).
  if (ctx.caller.role != AccessRole::kAdmin)
    opts.dedup_visible = [caller = ctx.caller](const store::ModelAccess& m) { return MayRead(caller, m); };
  RETURN_IF_ERROR(ctx.CheckCancel("ingest"));
  ASSIGN_OR_RETURN(formats::ModelSource src, formats::OpenModel(req.path, {.tokenizer = req.tokenizer}));
  IngestResponse r;
  r.path = req.path;
  ASSIGN_OR_RETURN(r.result, ctx.st().Ingest(src, opts));
  return r;
}

absl::StatusOr<std::string> NewUploadPath(const Context& ctx, std::string_view suffix) {
  return ctx.st().NewTempPath("upload", suffix);
}

void RemoveUpload(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

// ---- export ----

absl::StatusOr<ExportRequest> ExportRequest::FromJson(const json& j) {
  ExportRequest r;
  RETURN_IF_ERROR(FieldReader(j, "export request")
                      .String("version", &r.version, true)
                      .Enum("format", &r.format, {"auto", "original", "safetensors", "hf"})
                      .Bool("verify", &r.verify)
                      .Enum("dtype", &r.dtype, {"bf16", "f16", "f32"})
                      .Finish());
  return r;
}

json ExportRequest::ToJson() const {
  json j = {{"version", version}, {"format", format}, {"verify", verify}};
  if (format == "hf") j["dtype"] = dtype;
  return j;
}

json ExportResponse::ToJson() const {
  if (format == "hf" && hf)
    return {{"version", version.ref()},
            {"path", path},
            {"format", "hf"},
            {"architecture", hf->arch},
            {"files", hf->files},
            {"tensors", hf->tensors},
            {"tensor_bytes", hf->tensor_bytes},
            {"input_bytes", hf->input_bytes},
            {"max_buffer_bytes", hf->max_buffer_bytes},
            {"dropped", hf->dropped},
            {"tokenizer_from", hf->tokenizer_from.empty() ? json(nullptr) : json(hf->tokenizer_from)},
            {"tokenizer_note", hf->tokenizer_note.empty() ? json(nullptr) : json(hf->tokenizer_note)},
            {"config", hf->config}};
  if (format == "safetensors")
    return {{"version", version.ref()},
            {"path", path},
            {"format", "safetensors"},
            {"source_format", formats::FormatName(version.format)},
            {"tensors", tensors},
            {"tensor_bytes", tensor_bytes},
            {"verified", verified}};
  json j = {{"version", version.ref()},
            {"path", path},
            {"bytes", bytes},
            {"verified", verified},
            {"files", json::array()}};
  for (const auto& f : files) j["files"].push_back(app::ToJson(f));
  return j;
}

absl::StatusOr<ExportResponse> Export(const Context& ctx, const ExportRequest& req,
                                      const std::string& out_path) {
  if (out_path.empty()) return absl::InvalidArgumentError("export: no output path");
  ExportResponse r;
  ASSIGN_OR_RETURN(r.version, ResolveVersion(ctx, req.version));
  const store::VersionRow& v = r.version;
  r.path = out_path;
  r.verified = req.verify;
  std::string format = req.format;
  if (format == "auto")
    format = out_path.ends_with(".safetensors") && v.format != formats::Format::kSafetensors
                 ? "safetensors"
                 : "original";
  if (format != "original" && format != "safetensors" && format != "hf")
    return absl::InvalidArgumentError(
        fmt::format("export format '{}': expected auto, original, safetensors or hf", req.format));
  r.format = format;
  RETURN_IF_ERROR(ctx.CheckCancel("export"));
  if (format == "hf") {
    if (req.verify)
      return absl::InvalidArgumentError(
          "export --format hf: --verify compares against recorded digests or stored tensors, which a converted "
          "directory has neither of; leave it out");
    workshop::HfExportOptions o;
    ASSIGN_OR_RETURN(o.dtype, workshop::HfExportDType(req.dtype));
    o.progress = ctx.tty_progress;
    o.progress_sink = ctx.progress;
    o.cancel = ctx.cancel;
    ASSIGN_OR_RETURN(r.hf, workshop::ExportHf(ctx.st(), v.id, out_path, o));
    r.tensors = r.hf->tensors;
    r.tensor_bytes = r.hf->tensor_bytes;
    return r;
  }
  if (format == "safetensors") {
    absl::Status s = ctx.st().ExportSafetensors(v.id, out_path, req.verify, ctx.tty_progress);
    if (!s.ok()) return Annotate(s, fmt::format("export {} as safetensors", v.ref()));
    ASSIGN_OR_RETURN(auto tensors, ctx.st().ListTensors(v.id));
    r.tensors = tensors.size();
    for (const auto& t : tensors) r.tensor_bytes += t.nbytes;
    return r;
  }
  ASSIGN_OR_RETURN(r.files, ctx.st().ListFiles(v.id));
  absl::Status s = ctx.st().Export(v.id, out_path, req.verify, ctx.tty_progress);
  if (!s.ok()) return Annotate(s, fmt::format("export {}", v.ref()));
  for (const auto& f : r.files) r.bytes += f.size;
  return r;
}

absl::StatusOr<ExportFileReader> ExportFileReader::Open(const Context& ctx, std::string_view version,
                                                        std::string_view file) {
  ExportFileReader r;
  r.ctx_ = &ctx;
  ASSIGN_OR_RETURN(r.version_, ResolveVersion(ctx, version));
  ASSIGN_OR_RETURN(auto files, ctx.st().ListFiles(r.version_.id));
  if (files.empty())
    return absl::NotFoundError(fmt::format("{} has no original files to export", r.version_.ref()));
  if (file.empty()) {
    if (files.size() == 1) {
      r.file_ = files[0];
      return r;
    }
    std::string names;
    for (const auto& f : files) names += (names.empty() ? "" : ", ") + f.name;
    return absl::InvalidArgumentError(fmt::format(
        "{} has {} files; name one of: {}", r.version_.ref(), files.size(), names));
  }
  for (const auto& f : files)
    if (f.name == file) {
      r.file_ = f;
      return r;
    }
  return absl::NotFoundError(fmt::format("{} has no file '{}'", r.version_.ref(), file));
}

absl::Status ExportFileReader::Read(uint64_t offset, uint64_t length, const ByteSink& sink) const {
  if (length == 0 || offset >= file_.size || length > file_.size - offset)
    return absl::OutOfRangeError(fmt::format("bytes [{}, {}) of {} ({} bytes): not in the file",
                                             offset, offset + length, file_.name, file_.size));
  std::vector<uint8_t> buf(std::min<uint64_t>(length, kPiece));
  uint64_t pos = offset, end = offset + length;
  while (pos < end) {
    RETURN_IF_ERROR(ctx_->CheckCancel("export"));
    uint64_t n = std::min<uint64_t>(end - pos, kPiece);
    std::span<uint8_t> out(buf.data(), n);
    RETURN_IF_ERROR(ctx_->st().ReadFileRange(version_.id, file_.index, pos, out));
    RETURN_IF_ERROR(sink(out));
    pos += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<ByteRange> ParseRangeHeader(std::string_view h, uint64_t size) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(fmt::format("Range '{}': {}", h, why));
  };
  constexpr std::string_view kUnit = "bytes=";
  if (!h.starts_with(kUnit)) return bad("expected bytes=FIRST-LAST");
  std::string_view spec = h.substr(kUnit.size());
  while (!spec.empty() && spec.front() == ' ') spec.remove_prefix(1);
  while (!spec.empty() && spec.back() == ' ') spec.remove_suffix(1);
  if (spec.find(',') != std::string_view::npos) return bad("one range only");
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return bad("expected FIRST-LAST");
  std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  auto num = [](std::string_view s, uint64_t* out) {
    if (s.empty() || s.size() > 19) return false;
    for (char c : s)
      if (c < '0' || c > '9') return false;
    return absl::SimpleAtoi(absl::string_view(s.data(), s.size()), out);
  };
  ByteRange r;
  if (a.empty()) {  // suffix: the last n bytes
    uint64_t n = 0;
    if (!num(b, &n)) return bad("expected -N");
    if (n == 0 || size == 0) return absl::OutOfRangeError(fmt::format("Range '{}': empty", h));
    n = std::min(n, size);
    r.offset = size - n;
    r.length = n;
    return r;
  }
  uint64_t first = 0, last = 0;
  if (!num(a, &first)) return bad("FIRST is not a number");
  if (b.empty()) {
    last = size ? size - 1 : 0;
  } else if (!num(b, &last)) {
    return bad("LAST is not a number");
  } else if (last < first) {
    return bad("LAST is before FIRST");
  }
  if (first >= size)
    return absl::OutOfRangeError(
        fmt::format("Range '{}': starts at or past the end ({} bytes)", h, size));
  last = std::min(last, size - 1);
  r.offset = first;
  r.length = last - first + 1;
  return r;
}

// ---- load ----

absl::StatusOr<LoadRequest> LoadRequest::FromJson(const json& j) {
  LoadRequest r;
  r.plan.plan.timeout_seconds = kDefaultTimeoutSeconds;
  RETURN_IF_ERROR(FieldReader(j, "load request")
                      .String("version", &r.plan.plan.version, true)
                      .String("sql", &r.plan.plan.sql)
                      .String("search", &r.plan.plan.search)
                      .Strings("names", &r.plan.plan.names)
                      .Bool("closure", &r.plan.plan.closure)
                      .Enum("format", &r.format, {"auto", "safetensors", "gguf"})
                      .Finish());
  return r;
}

json LoadRequest::ToJson() const {
  json j = plan.ToJson();
  j["format"] = format;
  return j;
}

json LoadResponse::ToJson() const {
  json j = plan.ToJson();
  j["path"] = path;
  return j;
}

absl::StatusOr<LoadResponse> Load(const Context& ctx, const LoadRequest& req,
                                  const std::string& out_path) {
  if (out_path.empty()) return absl::InvalidArgumentError("load: no output path");
  query::LoadFormat f;
  if (req.format == "auto") f = query::LoadFormat::kAuto;
  else if (req.format == "safetensors") f = query::LoadFormat::kSafetensors;
  else if (req.format == "gguf") f = query::LoadFormat::kGguf;
  else
    return absl::InvalidArgumentError(
        fmt::format("load format '{}': expected auto, safetensors or gguf", req.format));
  // The access rule, as for a plan: the version must be readable; its SQL
  // sees only what the caller may read.
  RETURN_IF_ERROR(CheckRead(ctx, ModelOfRef(req.plan.plan.version)));
  ASSIGN_OR_RETURN(auto engine, query::Engine::Attach(ctx.st(), ReadScopeFor(ctx)));
  LoadResponse r;
  ASSIGN_OR_RETURN(r.plan, query::MakePlan(*engine, req.plan.plan));
  if (f == query::LoadFormat::kAuto)
    f = r.plan.version.format == formats::Format::kGguf ? query::LoadFormat::kGguf
                                                        : query::LoadFormat::kSafetensors;
  r.format = f == query::LoadFormat::kGguf ? "gguf" : "safetensors";
  RETURN_IF_ERROR(ctx.CheckCancel("load"));
  RETURN_IF_ERROR(query::WritePlan(*engine, r.plan, out_path, f));
  r.path = out_path;
  struct stat st;
  if (::stat(out_path.c_str(), &st) == 0) r.bytes = static_cast<uint64_t>(st.st_size);
  return r;
}

absl::StatusOr<LoadResponse> LoadToSink(const Context& ctx, const LoadRequest& req,
                                        const ByteSink& sink) {
  ASSIGN_OR_RETURN(std::string tmp, ctx.st().NewTempPath("load", ""));
  struct Cleanup {
    std::string p;
    ~Cleanup() { RemoveUpload(p); }
  } cleanup{tmp};
  ASSIGN_OR_RETURN(LoadResponse r, Load(ctx, req, tmp));
  std::ifstream in(tmp, std::ios::binary);
  if (!in) return absl::InternalError(fmt::format("{}: cannot read back", tmp));
  std::vector<char> buf(kPiece);
  uint64_t sent = 0;
  while (in) {
    RETURN_IF_ERROR(ctx.CheckCancel("load"));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    RETURN_IF_ERROR(sink({reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(n)}));
    sent += static_cast<uint64_t>(n);
  }
  if (sent != r.bytes)
    return absl::InternalError(fmt::format("load: sent {} of {} bytes", sent, r.bytes));
  r.path.clear();
  return r;
}

}  // namespace hart::app

// REST over the store: each route reads its request (query string or JSON
// body) into the app layer's typed request, runs the use case, and answers
// the response's ToJson() unchanged, so the JSON is the same as `hart ...
// --json`. Bytes move as streams: export with HTTP Range (rebuilt from
// chunks on the fly), load as a streamed file, ingest by upload (streamed to
// a temp file inside the store by the server, then ingested all or nothing),
// and the outbox as server-sent events.
#include <cstdio>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "app/catalog.h"
#include "app/events.h"
#include "app/query.h"
#include "app/tensor_view.h"
#include "app/transfer.h"
#include "serve/errors.h"
#include "app/access.h"
#include "core/status.h"
#include "serve/service.h"
#include "serve/service_state.h"

namespace hart::serve {

namespace {

using nlohmann::json;

// The query string as a JSON object for a FromJson: `ints` are converted to
// integers, `bools` to booleans; any other parameter not in `strings` is
// refused (so a typo is an error, not silently ignored).
absl::StatusOr<json> QueryJson(const Request& r, const std::set<std::string>& strings,
                               const std::set<std::string>& ints = {}, const std::set<std::string>& bools = {}) {
  json j = json::object();
  for (const auto& [k, v] : r.query) {
    if (strings.count(k)) {
      j[k] = v;
    } else if (ints.count(k)) {
      int64_t n;
      if (!absl::SimpleAtoi(v, &n)) {
        return absl::InvalidArgumentError(absl::StrFormat("query parameter '%s': expected an integer, got \"%s\"", k, v));
      }
      j[k] = n;
    } else if (bools.count(k)) {
      if (v == "true" || v == "1" || v.empty()) {
        j[k] = true;
      } else if (v == "false" || v == "0") {
        j[k] = false;
      } else {
        return absl::InvalidArgumentError(absl::StrFormat("query parameter '%s': expected true or false", k));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("unknown query parameter '%s' for %s %s", k, r.method, r.route));
    }
  }
  return j;
}

template <typename T>
void Answer(Exchange& ex, const absl::StatusOr<T>& resp) {
  if (!resp.ok()) return RespondError(ex, resp.status());
  RespondJson(ex, resp->ToJson());
}

json Q(const char* name, const char* type, const char* description, bool required = false) {
  return {{"name", name}, {"schema", {{"type", type}}}, {"description", description}, {"required", required}};
}

// Serves one original file of a version: whole (200) or one byte range (206).
void ServeFile(Service& svc, Exchange& ex, const Caller& caller, const std::string& ref, const std::string& file) {
  app::Context ctx = svc.ContextFor(ex, caller);
  auto reader = app::ExportFileReader::Open(ctx, ref, file);
  if (!reader.ok()) return RespondError(ex, reader.status());
  uint64_t size = reader->size();
  uint64_t offset = 0, length = size;
  int status = 200;
  Headers h = {{"content-type", "application/octet-stream"},
               {"accept-ranges", "bytes"},
               {"content-disposition", "attachment; filename=\"" + reader->file().name + "\""}};
  std::string range = ex.request().Header("range");
  if (!range.empty()) {
    auto r = app::ParseRangeHeader(range, size);
    if (!r.ok()) {
      Response resp = ErrorResponse(r.status(), "range");
      if (r.status().code() == absl::StatusCode::kOutOfRange) {
        resp.status = 416;
        resp.headers["content-range"] = absl::StrFormat("bytes */%d", size);
      }
      ex.Respond(std::move(resp));
      return;
    }
    offset = r->offset;
    length = r->length;
    status = 206;
    h["content-range"] = absl::StrFormat("bytes %d-%d/%d", offset, offset + length - 1, size);
  }
  if (!ex.Begin(status, h, static_cast<int64_t>(length))) return;
  if (ex.request().method == "HEAD" || length == 0) {
    ex.End();
    return;
  }
  absl::Status st = reader->Read(offset, length, [&](std::span<const uint8_t> b) -> absl::Status {
    if (!ex.Write(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()))) {
      return absl::CancelledError("client went away");
    }
    return absl::OkStatus();
  });
  // Headers are out: an error now can only cut the body short, which the
  // client sees as fewer bytes than content-length.
  (void)st;
  ex.End();
}

// The file extension of an upload, from its `filename` parameter.
absl::StatusOr<std::string> UploadSuffix(const std::string& filename) {
  static const char* kKnown[] = {".safetensors", ".gguf", ".onnx", ".pt", ".pth", ".bin", ".ckpt"};
  for (const char* s : kKnown) {
    if (absl::EndsWith(filename, s)) return std::string(s);
  }
  return absl::InvalidArgumentError("query parameter 'filename': \"" + filename +
                                    "\" must end in .safetensors, .gguf, .onnx, .pt, .pth, .bin or .ckpt "
                                    "(the format is told by it)");
}

// The model an upload goes into: its `model` parameter, else the file's name
// without suffix.
absl::StatusOr<std::string> UploadModel(const Request& r) {
  auto fn = r.query.find("filename");
  auto m = r.query.find("model");
  if (m != r.query.end() && !m->second.empty()) return m->second;
  if (fn == r.query.end()) return std::string();
  ASSIGN_OR_RETURN(std::string suffix, UploadSuffix(fn->second));
  std::string stem = std::filesystem::path(fn->second).filename().string();
  return stem.substr(0, stem.size() - suffix.size());
}

// Before the upload's body is read (Route::before_body): may the caller
// ingest into that model at all? Bad parameters are left to the handler.
absl::Status IngestBeforeBody(Service& svc, const Request& r, const Caller& caller) {
  auto model = UploadModel(r);
  if (!model.ok() || model->empty()) return absl::OkStatus();
  app::Context ctx;
  ctx.store = svc.store();
  ctx.actor = caller.actor;
  ctx.caller = caller;
  RETURN_IF_ERROR(app::CheckIngest(ctx, *model));
  auto parent = r.query.find("parent");
  if (parent != r.query.end() && !parent->second.empty())
    return app::CheckRead(ctx, app::ModelOfRef(parent->second));
  return absl::OkStatus();
}

void HandleIngest(Service& svc, Exchange& ex, const Caller& caller) {
  const Request& r = ex.request();
  auto q = QueryJson(r, {"model", "license", "parent", "filename"}, {}, {"file_sha256"});
  if (!q.ok()) return RespondError(ex, q.status());
  if (!q->contains("filename")) {
    return RespondError(ex, absl::InvalidArgumentError(
                                "query parameter 'filename' is required (e.g. model.safetensors): it tells the format"));
  }
  std::string filename = (*q)["filename"];
  q->erase("filename");
  auto suffix = UploadSuffix(filename);
  if (!suffix.ok()) return RespondError(ex, suffix.status(), "filename");
  auto req = app::IngestRequest::FromJson(*q);
  if (!req.ok()) return RespondError(ex, req.status());
  if (req->model.empty()) {
    // The source's name would be the temp file's: use the upload's name.
    std::string stem = std::filesystem::path(filename).filename().string();
    req->model = stem.substr(0, stem.size() - suffix->size());
  }
  if (r.body_file.empty() || r.body_size == 0) {
    return RespondError(ex, absl::InvalidArgumentError("the request body (the model file) is empty"));
  }
  app::Context ctx = svc.ContextFor(ex, caller);
  auto path = app::NewUploadPath(ctx, *suffix);
  if (!path.ok()) return RespondError(ex, path.status());
  if (std::rename(r.body_file.c_str(), path->c_str()) != 0) {
    return RespondError(ex, absl::InternalError("cannot move the upload into the store's upload area"));
  }
  req->path = *path;
  // The ingest's progress goes to the event stream (ingest.progress).
  auto progress = State(svc).ingest_progress.Start(caller, req->model, filename);
  ctx.progress = progress.get();
  auto resp = app::Ingest(ctx, *req);
  app::RemoveUpload(*path);
  progress->Finish(resp.ok() ? resp->result.model + "@" + std::to_string(resp->result.number) : "", resp.ok() ? "" : std::string(resp.status().message()));
  if (!resp.ok()) return RespondError(ex, resp.status());
  json j = resp->ToJson();
  j["path"] = filename;  // the client's name, not the server's temp path
  RespondJson(ex, j, 201);
}

void HandleEventsStream(Service& svc, Exchange& ex, const Caller& caller) {
  auto q = QueryJson(ex.request(), {}, {"after"});
  if (!q.ok()) return RespondError(ex, q.status());
  int64_t after = q->value("after", int64_t{0});
  std::string last = ex.request().Header("last-event-id");
  if (!last.empty() && !absl::SimpleAtoi(last, &after)) {
    return RespondError(ex, absl::InvalidArgumentError("Last-Event-ID must be an event id (an integer)"));
  }
  app::Context ctx = svc.ContextFor(ex, caller);
  if (!ex.Begin(200, {{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}}, -1)) return;
  if (!ex.Write(": hartonomous outbox\n\n")) return ex.End();
  absl::Status st = app::FollowEvents(ctx, after, [&](const store::Event& e) {
    app::EventsResponse one;
    one.events.push_back(e);
    json j = one.ToJson();
    std::string data = (j.is_array() && !j.empty() ? j[0] : j).dump(-1, ' ', false, json::error_handler_t::replace);
    return ex.Write(absl::StrFormat("id: %d\nevent: %s\ndata: %s\n\n", e.id, e.kind, data)) && !svc.draining();
  }, std::chrono::milliseconds(200), [&, cursor = uint64_t{0}]() mutable {
    // Running ingests' progress (no id: Last-Event-ID stays the outbox's).
    for (const json& p : State(svc).ingest_progress.Changes(caller, &cursor)) {
      if (!ex.Write("event: ingest.progress\ndata: " + p.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"))
        return false;
    }
    return !svc.draining();
  });
  (void)st;
  ex.End();
}

}  // namespace

void AddRestRoutes(Service& svc) {
  Router& r = svc.router();
  r.Add({.method = "GET",
         .path = "/api/models",
         .operation_id = "listStoreModels",
         .summary = "Every model in the store (as `hart ls --json`).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {});
               if (!q.ok()) return RespondError(ex, q.status());
               Answer(ex, app::List(svc.ContextFor(ex, c), app::ListRequest{}));
             }});
  r.Add({.method = "GET",
         .path = "/api/models/{model}",
         .operation_id = "listVersions",
         .summary = "The versions of one model (as `hart ls MODEL --json`).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto req = app::ListRequest::FromJson({{"model", ex.request().params.at("model")}});
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::List(svc.ContextFor(ex, c), *req));
             }});
  r.Add({.method = "GET",
         .path = "/api/versions/{version}",
         .operation_id = "showVersion",
         .summary = "A version: header, files and tensors (as `hart show --json`). {version} is name or name@N.",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto req = app::ShowRequest::FromJson({{"version", ex.request().params.at("version")}});
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Show(svc.ContextFor(ex, c), *req));
             }});
  r.Add({.method = "GET",
         .path = "/api/versions/{version}/tensors",
         .operation_id = "listTensors",
         .summary = "A version's tensors with dtype, shape, size and stats.",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {}, {"max_stats_bytes"}, {"stats"});
               if (!q.ok()) return RespondError(ex, q.status());
               (*q)["version"] = ex.request().params.at("version");
               auto req = app::TensorsRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Tensors(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("stats", "boolean", "Also min, max, mean, std, l2, abs_max, zero_fraction, NaN/Inf counts"),
                          Q("max_stats_bytes", "integer",
                            "Stop reading tensor bytes for stats past this many (default 256 MiB); later "
                            "tensors get stats null and stats_skipped true")}});
  r.Add({.method = "GET",
         .path = "/api/versions/{version}/components",
         .operation_id = "listComponents",
         .summary = "A version's component tree (model, blocks, tensors) and its graph edges (contains, feeds, ties).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {"under", "edges"}, {"max_rows"}, {"with_edges"});
               if (!q.ok()) return RespondError(ex, q.status());
               if (q->contains("edges")) {
                 // A comma-separated list in the query string; an array in the request.
                 std::vector<std::string> kinds =
                     absl::StrSplit((*q)["edges"].get<std::string>(), ',', absl::SkipEmpty());
                 (*q)["edges"] = kinds;
               }
               (*q)["version"] = ex.request().params.at("version");
               auto req = app::ComponentsRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Components(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("under", "string", "A component id or name of this version: return only its subtree"),
                          Q("edges", "string", "Edge kinds to return, comma-separated: contains, feeds, ties (default all)"),
                          Q("with_edges", "boolean", "false: nodes only"),
                          Q("max_rows", "integer", "Cap on nodes and on edges, 1..1000000 (default 10000)")}});
  r.Add({.method = "DELETE",
         .path = "/api/versions/{version}",
         .operation_id = "deleteVersion",
         .summary = "Delete one version (as `hart rm --json`); force=true also when others descend from it.",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {}, {}, {"force"});
               if (!q.ok()) return RespondError(ex, q.status());
               (*q)["version"] = ex.request().params.at("version");
               auto req = app::RemoveRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Remove(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("force", "boolean", "Delete even when other versions descend from it")}});
  r.Add({.method = "GET",
         .path = "/api/versions/{version}/download",
         .operation_id = "downloadVersion",
         .summary = "The original file of a single-file version, rebuilt from its chunks; HTTP Range supported.",
         .tag = "transfer",
         .handler = [&svc](Exchange& ex,
                           const Caller& c) { ServeFile(svc, ex, c, ex.request().params.at("version"), ""); },
         .response_types = {"application/octet-stream"}});
  r.Add({.method = "GET",
         .path = "/api/versions/{version}/files/{file}",
         .operation_id = "downloadFile",
         .summary = "One original file of a version by name; HTTP Range supported.",
         .tag = "transfer",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               ServeFile(svc, ex, c, ex.request().params.at("version"), ex.request().params.at("file"));
             },
         .response_types = {"application/octet-stream"}});
  r.Add({.method = "GET",
         .path = "/api/diff",
         .operation_id = "diff",
         .summary = "Tensors added, removed and changed from a to b (as `hart diff --json`).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {"a", "b"});
               if (!q.ok()) return RespondError(ex, q.status());
               auto req = app::DiffRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Diff(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("a", "string", "Version reference", true), Q("b", "string", "Version reference", true)}});
  r.Add({.method = "GET",
         .path = "/api/stats",
         .operation_id = "stats",
         .summary = "Logical and physical bytes per model (as `hart stats --json`).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {});
               if (!q.ok()) return RespondError(ex, q.status());
               Answer(ex, app::Stats(svc.ContextFor(ex, c), app::StatsRequest{}));
             }});
  r.Add({.method = "GET",
         .path = "/api/runtime/models",
         .operation_id = "loadedModels",
         .summary = "The models loaded for generation: resident or streamed, resident and shared bytes, last use; "
                    "the memory budget, loads and evictions.",
         .tag = "runtime",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               // Every loaded model and what it shares with the others: Admin only (app/access.h).
               if (auto a = app::CheckAdmin(svc.ContextFor(ex, c), "the runtime's model list"); !a.ok())
                 return RespondError(ex, a);
               RespondJson(ex, State(svc).registry->Stats().ToJson());
             }});
  r.Add({.method = "GET",
         .path = "/api/search",
         .operation_id = "search",
         .summary = "Full-text search over names, metadata, cards, tensors, roles and layers.",
         .tag = "query",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {"q"}, {"k"});
               if (!q.ok()) return RespondError(ex, q.status());
               if (q->contains("q")) {
                 (*q)["query"] = (*q)["q"];
                 q->erase("q");
               }
               auto req = app::SearchRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Search(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("q", "string", "FTS5 query", true), Q("k", "integer", "Hits, 1..1000")}});
  r.Add({.method = "GET",
         .path = "/api/similar",
         .operation_id = "similar",
         .summary = "Nearest tensors to a tensor, or nearest versions to a version (as `hart similar --json`).",
         .tag = "query",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {"target"}, {"k"});
               if (!q.ok()) return RespondError(ex, q.status());
               auto req = app::SimilarRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Similar(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("target", "string", "model[@N] or model@N:tensor or a tensor id", true),
                          Q("k", "integer", "Matches, 1..1000")}});
  r.Add({.method = "POST",
         .path = "/api/plan",
         .operation_id = "plan",
         .summary = "What a selection of a version needs: closure, byte ranges, cost (as `hart plan --json`).",
         .tag = "query",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto body = ParseJsonBody(ex.request());
               if (!body.ok()) return RespondError(ex, body.status());
               auto req = app::PlanRequest::FromJson(*body);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Plan(svc.ContextFor(ex, c), *req));
             },
         .request_schema = {{"type", "object"},
                            {"required", {"version"}},
                            {"properties",
                             {{"version", {{"type", "string"}}},
                              {"sql", {{"type", "string"}}},
                              {"search", {{"type", "string"}}},
                              {"names", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                              {"closure", {{"type", "boolean"}}}}}}});
  r.Add({.method = "POST",
         .path = "/api/sql",
         .operation_id = "sql",
         .summary = "One read-only SQL statement through the MQE, with row and time caps.",
         .tag = "query",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto body = ParseJsonBody(ex.request());
               if (!body.ok()) return RespondError(ex, body.status());
               auto req = app::SqlRequest::FromJson(*body);
               if (!req.ok()) return RespondError(ex, req.status());
               // The server's caps bound what a client may ask for.
               const ServiceOptions& o = svc.options();
               req->write = false;
               req->single_statement = true;
               if (req->max_rows <= 0 || req->max_rows > o.sql_max_rows) req->max_rows = o.sql_max_rows;
               if (req->timeout_seconds <= 0 || req->timeout_seconds > o.sql_timeout_seconds) {
                 req->timeout_seconds = o.sql_timeout_seconds;
               }
               Answer(ex, app::Sql(svc.ContextFor(ex, c), *req));
             },
         .request_schema = {{"type", "object"},
                            {"required", {"sql"}},
                            {"properties",
                             {{"sql", {{"type", "string"}}},
                              {"max_rows", {{"type", "integer"}, {"minimum", 1}}},
                              {"timeout_seconds", {{"type", "number"}}}}}}});
  r.Add({.method = "POST",
         .path = "/api/load",
         .operation_id = "load",
         .summary = "Exactly a plan's tensors as a GGUF or safetensors file, streamed.",
         .tag = "transfer",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto body = ParseJsonBody(ex.request());
               if (!body.ok()) return RespondError(ex, body.status());
               auto req = app::LoadRequest::FromJson(*body);
               if (!req.ok()) return RespondError(ex, req.status());
               app::Context ctx = svc.ContextFor(ex, c);
               bool began = false;
               auto resp = app::LoadToSink(ctx, *req, [&](std::span<const uint8_t> b) -> absl::Status {
                 if (!began) {
                   began = true;
                   if (!ex.Begin(200, {{"content-type", "application/octet-stream"}}, -1)) {
                     return absl::CancelledError("client went away");
                   }
                 }
                 if (!ex.Write(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()))) {
                   return absl::CancelledError("client went away");
                 }
                 return absl::OkStatus();
               });
               if (!began) {
                 if (!resp.ok()) return RespondError(ex, resp.status());
                 ex.Begin(200, {{"content-type", "application/octet-stream"}}, 0);
               }
               ex.End();
             },
         .request_schema = {{"type", "object"},
                            {"required", {"version"}},
                            {"properties",
                             {{"version", {{"type", "string"}}},
                              {"sql", {{"type", "string"}}},
                              {"search", {{"type", "string"}}},
                              {"names", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                              {"closure", {{"type", "boolean"}}},
                              {"format", {{"type", "string"}, {"enum", {"auto", "safetensors", "gguf"}}}}}}},
         .response_types = {"application/octet-stream"}});
  r.Add({.method = "POST",
         .path = "/api/ingest",
         .operation_id = "ingest",
         .summary = "Upload a model file as a new version (body = the file; all or nothing).",
         .tag = "transfer",
         .handler = [&svc](Exchange& ex, const Caller& c) { HandleIngest(svc, ex, c); },
         .query_params = {Q("filename", "string", "The file's name; its suffix tells the format", true),
                          Q("model", "string", "Model name (default: the file name without suffix)"),
                          Q("license", "string", "License when the file names none"),
                          Q("parent", "string", "Parent version, model@N"),
                          Q("file_sha256", "boolean", "Also record the file's SHA-256")},
         .request_schema = {{"type", "string"}, {"format", "binary"}},
         .request_type = "application/octet-stream",
         .upload = true,
         .before_body = [&svc](const Request& r, const Caller& c) { return IngestBeforeBody(svc, r, c); }});
  r.Add({.method = "GET",
         .path = "/api/events",
         .operation_id = "events",
         .summary = "The outbox after an id (as `hart events`).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {}, {"after", "limit"});
               if (!q.ok()) return RespondError(ex, q.status());
               auto req = app::EventsRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Events(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("after", "integer", "Only events with a larger id"),
                          Q("limit", "integer", "At most this many, 1..10000")}});
  r.Add({.method = "GET",
         .path = "/api/events/stream",
         .operation_id = "eventsStream",
         .summary = "The outbox as server-sent events: every event after `after` (or Last-Event-ID), then new ones.",
         .tag = "store",
         .handler = [&svc](Exchange& ex, const Caller& c) { HandleEventsStream(svc, ex, c); },
         .query_params = {Q("after", "integer", "Start after this event id")},
         .response_types = {"text/event-stream"}});
  r.Add({.method = "POST",
         .path = "/api/verify",
         .operation_id = "verify",
         .summary = "Re-hash every chunk of the store (as `hart verify --json`).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               Answer(ex, app::Verify(svc.ContextFor(ex, c), app::VerifyRequest{}));
             }});
  // What the web UI draws of tensor values, computed here from stored bytes.
  r.Add({.method = "GET",
         .path = "/api/versions/{version}/histogram",
         .operation_id = "tensorHistogram",
         .summary = "A histogram of one tensor's values, decoded on the server.",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {"tensor"}, {"bins"});
               if (!q.ok()) return RespondError(ex, q.status());
               (*q)["version"] = ex.request().params.at("version");
               auto req = app::HistogramRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Histogram(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("tensor", "string", "Tensor name", true), Q("bins", "integer", "1..1024 (default 64)")}});
  r.Add({.method = "GET",
         .path = "/api/versions/{version}/heatmap",
         .operation_id = "tensorHeatmap",
         .summary = "Mean values of a 2-D slice of one tensor, at most 256 x 256 cells.",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto q = QueryJson(ex.request(), {"tensor"}, {"row", "rows", "col", "cols"});
               if (!q.ok()) return RespondError(ex, q.status());
               (*q)["version"] = ex.request().params.at("version");
               auto req = app::HeatmapRequest::FromJson(*q);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::Heatmap(svc.ContextFor(ex, c), *req));
             },
         .query_params = {Q("tensor", "string", "Tensor name", true),
                          Q("row", "integer", "First row (outermost dimension)"),
                          Q("rows", "integer", "Rows (default 64)"),
                          Q("col", "integer", "First column (the other dimensions flattened)"),
                          Q("cols", "integer", "Columns (default 256)")}});
  r.Add({.method = "POST",
         .path = "/api/diff/norms",
         .operation_id = "diffNorms",
         .summary = "Norms of the difference of same-named tensors of two versions (default: the changed ones).",
         .tag = "store",
         .handler =
             [&svc](Exchange& ex, const Caller& c) {
               auto body = ParseJsonBody(ex.request());
               if (!body.ok()) return RespondError(ex, body.status());
               auto req = app::DiffNormsRequest::FromJson(*body);
               if (!req.ok()) return RespondError(ex, req.status());
               Answer(ex, app::DiffNorms(svc.ContextFor(ex, c), *req));
             },
         .request_schema = {{"type", "object"},
                            {"required", {"a", "b"}},
                            {"properties",
                             {{"a", {{"type", "string"}}},
                              {"b", {{"type", "string"}}},
                              {"names", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                              {"max_bytes", {{"type", "integer"}}}}}}});
}

}  // namespace hart::serve

// The tool table: each tool is a name, a JSON schema for its arguments and
// one for its structured result, and a function that turns the arguments
// into a src/app request (read strictly by its FromJson: unknown fields and
// wrong types are errors naming the field), runs the use case and returns
// its JSON as the structured result. Tool failures are results with
// isError (so the model can read and correct them); only an unknown tool
// or malformed tools/call params are JSON-RPC errors.
#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "app/catalog.h"
#include "app/errors.h"
#include "app/generate.h"
#include "app/json_io.h"
#include "app/query.h"
#include "app/transfer.h"
#include "fmt/format.h"
#include "core/status.h"
#include "mcp/internal.h"

namespace hart::mcp {

using nlohmann::json;

struct Server::Tool {
  std::string name, title, description;
  json input, output;
  bool write = false;
  bool destructive = false;
  std::function<absl::StatusOr<json>(Server::Call&, const json&)> run;
};

namespace {

json Str(const char* d) { return {{"type", "string"}, {"description", d}}; }
json Int(const char* d, int64_t min, int64_t max) {
  return {{"type", "integer"}, {"description", d}, {"minimum", min}, {"maximum", max}};
}
json Obj(json props, std::vector<std::string> required = {}) {
  if (props.is_null()) props = json::object();
  json j = {{"type", "object"}, {"properties", std::move(props)}};
  if (!required.empty()) j["required"] = required;
  return j;
}
json Arr(const char* d) { return {{"type", "array"}, {"description", d}}; }

// `args` without the keys the tool itself consumed, for a strict FromJson.
json Without(json args, std::initializer_list<const char*> keys) {
  for (const char* k : keys) args.erase(k);
  return args;
}

absl::StatusOr<int64_t> OptInt(const json& args, const char* key, int64_t def, int64_t min, int64_t max) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return def;
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(fmt::format("argument '{}': expected an integer, got {}", key, app::JsonTypeName(*it)));
  }
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return absl::InvalidArgumentError(fmt::format("argument '{}': {} is out of range {}..{}", key, v, min, max));
  }
  return v;
}

template <typename T>
absl::StatusOr<json> AsJson(const absl::StatusOr<T>& r) {
  if (!r.ok()) return r.status();
  return r->ToJson();
}

// Long work's ProgressSink as notifications/progress, at most ~10 a second.
class ProgressToMcp : public ProgressSink {
 public:
  explicit ProgressToMcp(const Server::Call& c) : c_(c) {}
  void Begin(std::string_view label, uint64_t total, std::string_view) override {
    std::lock_guard l(mu_);
    label_ = std::string(label);
    total_ = total;
    done_ = 0;
  }
  void Advance(uint64_t n) override {
    std::lock_guard l(mu_);
    done_ += n;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    c_.Progress(static_cast<double>(done_), total_ ? std::optional<double>(total_) : std::nullopt, label_);
  }
  void End() override {}

 private:
  const Server::Call& c_;
  std::mutex mu_;
  std::string label_;
  uint64_t total_ = 0, done_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

absl::StatusOr<json> ListModels(Server::Call& c, const json& args) {
  ASSIGN_OR_RETURN(auto req, app::ListRequest::FromJson(args));
  ASSIGN_OR_RETURN(auto resp, app::List(c.ctx, req));
  if (resp.versions_of_model) return json{{"model", req.model}, {"versions", resp.ToJson()}};
  return json{{"models", resp.ToJson()}};
}

absl::StatusOr<json> DescribeModel(Server::Call& c, const json& args) {
  std::string ref;
  RETURN_IF_ERROR(app::FieldReader(args, "describe_model").String("model", &ref, true).Finish());
  ASSIGN_OR_RETURN(store::VersionRow v, app::ResolveVersion(c.ctx, ref));
  ASSIGN_OR_RETURN(auto versions, app::List(c.ctx, app::ListRequest{.model = v.model}));
  ASSIGN_OR_RETURN(auto show, app::Show(c.ctx, app::ShowRequest{.version = v.ref()}));
  app::ComponentsRequest creq;
  creq.version = v.ref();
  creq.with_edges = false;
  creq.max_rows = 5000;
  ASSIGN_OR_RETURN(auto comps, app::Components(c.ctx, creq));
  json blocks = json::array();
  size_t tensors = 0;
  for (const auto& n : comps.nodes) {
    if (n.kind == "tensor") {
      ++tensors;
      continue;
    }
    json b = {{"id", n.id}, {"kind", n.kind}, {"name", n.name}, {"nbytes", n.nbytes}};
    if (n.role) b["role"] = *n.role;
    if (n.layer) b["layer"] = *n.layer;
    blocks.push_back(std::move(b));
  }
  json lineage = json::array();
  std::optional<std::string> parent = v.parent;
  for (int i = 0; parent && i < 64; ++i) {
    lineage.push_back(*parent);
    auto p = app::ResolveVersion(c.ctx, *parent);
    if (!p.ok()) break;
    parent = p->parent;
  }
  json sj = show.ToJson();
  return json{{"model", v.model},
              {"version", sj["version"]},
              {"versions", versions.ToJson()},
              {"files", sj["files"]},
              {"license", v.license},
              {"architecture", v.architecture},
              {"logical_bytes", v.logical_bytes},
              {"tensors", v.tensors},
              {"lineage", lineage},
              {"components", blocks},
              {"components_truncated", comps.truncated}};
}

absl::StatusOr<json> SearchComponents(Server::Call& c, const json& args) {
  ASSIGN_OR_RETURN(auto req, app::SearchRequest::FromJson(args));
  ASSIGN_OR_RETURN(auto resp, app::Search(c.ctx, req));
  return json{{"hits", resp.ToJson()}};
}

absl::StatusOr<json> SimilarModels(Server::Call& c, const json& args) {
  ASSIGN_OR_RETURN(auto req, app::SimilarRequest::FromJson(args));
  ASSIGN_OR_RETURN(auto resp, app::Similar(c.ctx, req));
  return json{{"by_tensor", resp.by_tensor}, {"results", resp.ToJson()}};
}

absl::StatusOr<json> DiffVersions(Server::Call& c, const json& args) {
  ASSIGN_OR_RETURN(int64_t max_rows, OptInt(args, "max_rows", 200, 1, 100000));
  ASSIGN_OR_RETURN(auto req, app::DiffRequest::FromJson(Without(args, {"max_rows"})));
  ASSIGN_OR_RETURN(auto resp, app::Diff(c.ctx, req));
  json j = resp.ToJson();
  bool truncated = false;
  if (j.contains("rows") && j["rows"].is_array() && j["rows"].size() > static_cast<size_t>(max_rows)) {
    j["rows"].erase(j["rows"].begin() + max_rows, j["rows"].end());
    truncated = true;
  }
  j["truncated"] = truncated;
  return j;
}

absl::StatusOr<json> SqlQuery(Server::Call& c, const json& args) {
  const ServerOptions& o = c.server.options();
  json a = args;
  // The server's caps bound what a request may ask for.
  ASSIGN_OR_RETURN(int64_t rows, OptInt(args, "max_rows", o.sql_max_rows, 1, app::kMaxMaxRows));
  a["max_rows"] = std::min(rows, o.sql_max_rows);
  if (auto t = args.find("timeout_seconds"); t != args.end() && t->is_number()) {
    a["timeout_seconds"] = std::min(t->get<double>(), o.sql_timeout_seconds);
  } else if (t == args.end()) {
    a["timeout_seconds"] = o.sql_timeout_seconds;
  }
  ASSIGN_OR_RETURN(auto req, app::SqlRequest::FromJson(a));
  ASSIGN_OR_RETURN(auto resp, app::Sql(c.ctx, req));
  return resp.ToJson();
}

absl::StatusOr<json> PlanLoad(Server::Call& c, const json& args) {
  ASSIGN_OR_RETURN(auto req, app::PlanRequest::FromJson(args));
  req.plan.timeout_seconds = c.server.options().sql_timeout_seconds;
  ASSIGN_OR_RETURN(auto resp, app::Plan(c.ctx, req));
  json j = resp.ToJson();
  if (!j.is_object()) j = json{{"plan", j}};
  return j;
}

absl::StatusOr<json> Generate(Server::Call& c, const json& args) {
  const ServerOptions& o = c.server.options();
  app::CompletionRequest req;
  double temperature = 0;
  int64_t seed = -1;
  RETURN_IF_ERROR(app::FieldReader(args, "generate")
                      .String("model", &req.model, true)
                      .String("prompt", &req.prompt, true)
                      .Int("max_tokens", &req.params.max_tokens, false, 1, o.max_generate_tokens)
                      .Double("temperature", &temperature)
                      .Int("seed", &seed, false, 0, INT64_MAX)
                      .Strings("stop", &req.params.stop)
                      .Finish());
  if (req.params.max_tokens < 0) req.params.max_tokens = std::min<int64_t>(64, o.max_generate_tokens);
  req.params.temperature = static_cast<float>(temperature);  // default 0: greedy, reproducible
  if (seed >= 0) req.params.seed = static_cast<uint64_t>(seed);
  RETURN_IF_ERROR(app::Validate(req.params));
  // The model must be one this caller can see (the access rule lives in app/).
  if (!app::LooksLikePath(req.model) || c.server.options().remote) {
    RETURN_IF_ERROR(app::ResolveVersion(c.ctx, req.model).status());
  }
  std::shared_ptr<void> slot;
  if (o.generation_slot) {
    ASSIGN_OR_RETURN(slot, o.generation_slot(*c.ctx.cancel));
  }
  int64_t tokens = 0;
  app::GenerateControl ctl;
  ctl.cancel = c.ctx.cancel;
  ctl.engines = c.server.options().engines;
  double total = static_cast<double>(req.params.max_tokens);
  ctl.on_delta = [&](const app::StreamDelta& d) {
    ++tokens;
    // Replaced as the result's text is (app::ToJson: U+FFFD per bad byte),
    // so the pieces join to exactly that text, a cut-off last character too.
    bool alive = c.Progress(static_cast<double>(tokens), total, app::ValidUtf8(d.text));
    return alive && !Cancelled(c.ctx.cancel);
  };
  ASSIGN_OR_RETURN(auto resp, app::Complete(c.server.registry(), req, ctl));
  json j = app::ToJson(resp);
  j.erase("logprobs");
  return j;
}

absl::StatusOr<json> TensorStats(Server::Call& c, const json& args) {
  std::vector<std::string> names;
  app::TensorsRequest req;
  req.stats = true;
  RETURN_IF_ERROR(app::FieldReader(args, "tensor_stats")
                      .String("version", &req.version, true)
                      .Strings("names", &names)
                      .Int("max_stats_bytes", &req.max_stats_bytes, false, 0, app::kMaxStatsBytes)
                      .Finish());
  ASSIGN_OR_RETURN(store::VersionRow v, app::ResolveVersion(c.ctx, req.version));
  ASSIGN_OR_RETURN(auto resp, app::Tensors(c.ctx, req));
  json all = resp.ToJson();
  if (!names.empty()) {
    json kept = json::array();
    for (auto& t : all) {
      if (std::find(names.begin(), names.end(), t.value("name", "")) != names.end()) kept.push_back(t);
    }
    if (kept.empty()) {
      return absl::NotFoundError(fmt::format("no tensor of {} has any of the {} names given", v.ref(), names.size()));
    }
    all = std::move(kept);
  }
  return json{{"version", v.ref()}, {"tensors", all}};
}

absl::StatusOr<json> Ingest(Server::Call& c, const json& args) {
  std::string path, content, filename;
  json rest = Without(args, {"path", "content_base64", "filename"});
  if (args.contains("path")) {
    if (c.server.options().remote) {
      return absl::InvalidArgumentError(
          "argument 'path': a path on the server's disk is not accepted over HTTP; send the file as "
          "'content_base64' with 'filename'");
    }
    if (!args["path"].is_string()) return absl::InvalidArgumentError("argument 'path': expected a string");
    path = args["path"].get<std::string>();
  }
  RETURN_IF_ERROR(app::FieldReader(Without(args, {"path", "model", "license", "parent", "file_sha256"}), "ingest")
                      .String("content_base64", &content)
                      .String("filename", &filename)
                      .Finish());
  ASSIGN_OR_RETURN(auto req, app::IngestRequest::FromJson(rest));
  if (path.empty() == content.empty()) {
    return absl::InvalidArgumentError("ingest: give exactly one of 'path' (stdio only) and 'content_base64'");
  }
  ProgressToMcp progress(c);
  app::Context ctx = c.ctx;
  ctx.progress = &progress;
  if (!path.empty()) {
    req.path = path;
    ASSIGN_OR_RETURN(auto resp, app::Ingest(ctx, req));
    return resp.ToJson();
  }
  std::string suffix = std::filesystem::path(filename).extension().string();
  static const char* kKnown[] = {".safetensors", ".gguf", ".onnx", ".pt", ".pth", ".bin", ".ckpt"};
  if (std::none_of(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return suffix == k; })) {
    return absl::InvalidArgumentError(fmt::format(
        "argument 'filename': \"{}\" must end in .safetensors, .gguf, .onnx, .pt, .pth, .bin or .ckpt", filename));
  }
  std::string bytes;
  if (!absl::Base64Unescape(content, &bytes)) {
    return absl::InvalidArgumentError("argument 'content_base64': not valid base64");
  }
  if (req.model.empty()) req.model = std::filesystem::path(filename).stem().string();
  ASSIGN_OR_RETURN(std::string tmp, app::NewUploadPath(ctx, suffix));
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f.good()) {
      app::RemoveUpload(tmp);
      return absl::InternalError("ingest: cannot write the upload into the store's upload area");
    }
  }
  req.path = tmp;
  auto resp = app::Ingest(ctx, req);
  app::RemoveUpload(tmp);
  if (!resp.ok()) return resp.status();
  json j = resp->ToJson();
  j["path"] = filename;
  return j;
}

absl::StatusOr<json> DeleteVersion(Server::Call& c, const json& args) {
  ASSIGN_OR_RETURN(auto req, app::RemoveRequest::FromJson(args));
  if (req.version.find('@') == std::string::npos) {
    return absl::InvalidArgumentError("argument 'version': name one version as model@N");
  }
  return AsJson(app::Remove(c.ctx, req));
}

const std::vector<Server::Tool>& Tools() {
  static const std::vector<Server::Tool> tools = {
      {"list_models", "List models",
       "Every model in the store (name, versions, latest, bytes); with 'model', the versions of that model "
       "(number, parent, format, license, architecture, tensors, bytes).",
       Obj({{"model", Str("a model name: list its versions instead")}}),
       Obj({{"models", Arr("models")}, {"model", {{"type", "string"}}}, {"versions", Arr("versions of the model")}}),
       false, false, ListModels},
      {"describe_model", "Describe a model version",
       "One version in detail: its header and metadata, every version of the model, its files, license, "
       "lineage (parent chain), sizes and component tree above the tensors (blocks, layers).",
       Obj({{"model", Str("\"name\" (newest version) or \"name@N\"")}}, {"model"}),
       Obj({{"model", {{"type", "string"}}},
            {"version", {{"type", "object"}}},
            {"versions", Arr("every version")},
            {"files", Arr("original files")},
            {"lineage", Arr("parent, grandparent, ...")},
            {"components", Arr("blocks and other non-tensor components")}},
           {"model", "version", "versions", "lineage"}),
       false, false, DescribeModel},
      {"search_components", "Search models and components",
       "Full-text search (FTS5 syntax) over model names, metadata, model cards, tensor names, roles and layers.",
       Obj({{"query", Str("words or an FTS5 query, e.g. attn_q or \"blk 3\"")}, {"k", Int("most hits", 1, 1000)}},
           {"query"}),
       Obj({{"hits", Arr("best first: rank, kind, ref, component_id, name, snippet")}}, {"hits"}), false, false,
       SearchComponents},
      {"similar_models", "Find similar models or tensors",
       "A version (\"name[@N]\") gives the nearest versions by shared and similar tensors; a tensor (its id or "
       "\"name@N:tensor\") gives the nearest tensors.",
       Obj({{"target", Str("a version or a tensor")}, {"k", Int("how many", 1, 1000)}}, {"target"}),
       Obj({{"by_tensor", {{"type", "boolean"}}}, {"results", Arr("nearest first")}}, {"results"}), false, false,
       SimilarModels},
      {"diff_versions", "Diff two versions",
       "Tensors added, removed and changed from version a to version b, with a byte summary.",
       Obj({{"a", Str("the base version, name@N")},
            {"b", Str("the other version, name@N")},
            {"max_rows", Int("most rows returned (default 200)", 1, 100000)}},
           {"a", "b"}),
       Obj({{"a", {{"type", "string"}}},
            {"b", {{"type", "string"}}},
            {"rows", Arr("one per differing tensor")},
            {"summary", {{"type", "object"}}},
            {"truncated", {{"type", "boolean"}}}},
           {"rows", "summary"}),
       false, false, DiffVersions},
      {"sql_query", "Run one read-only SQL query",
       "Exactly one read-only SQL statement over the catalog views (models, versions, tensors, components, edges, "
       "search_text, tensor functions), run by the query engine under its read-only guard with row and time "
       "caps. Writes, ATTACH, PRAGMA, transactions and more than one statement are refused.",
       Obj({{"sql", Str("one SELECT (or WITH ... SELECT) statement")},
            {"max_rows", Int("row cap (the server's cap bounds it)", 1, app::kMaxMaxRows)},
            {"timeout_seconds", {{"type", "number"}, {"description", "time cap (the server's cap bounds it)"}}}},
           {"sql"}),
       Obj({{"columns", Arr("column names")},
            {"rows", Arr("one object per row")},
            {"truncated", {{"type", "boolean"}}}},
           {"columns", "rows", "truncated"}),
       false, false, SqlQuery},
      {"plan_load", "Plan a partial load",
       "What loading a selection of a version needs: the tensors (with their upstream dependencies when "
       "closure), the byte ranges to read and the cost.",
       Obj({{"version", Str("name or name@N")},
            {"names", {{"type", "array"}, {"items", {{"type", "string"}}}, {"description", "GLOB patterns"}}},
            {"search", Str("full-text query over tensor names, roles, layers")},
            {"sql", Str("a read-only query whose first column is component ids")},
            {"closure", {{"type", "boolean"}, {"description", "add upstream dependencies (default true)"}}}},
           {"version"}),
       Obj({}), false, false, PlanLoad},
      {"generate", "Generate a completion",
       "A completion of 'prompt' from a stored model. With a progressToken, each token arrives as a progress "
       "notification (its text in 'message'). Greedy by default (temperature 0).",
       Obj({{"model", Str("name or name@N")},
            {"prompt", Str("the text to continue")},
            {"max_tokens", Int("most new tokens (default 64)", 1, 1 << 20)},
            {"temperature", {{"type", "number"}, {"minimum", 0}}},
            {"seed", Int("sampling seed", 0, INT64_MAX)},
            {"stop", {{"type", "array"}, {"items", {{"type", "string"}}}}}},
           {"model", "prompt"}),
       Obj({{"model", {{"type", "string"}}},
            {"text", {{"type", "string"}}},
            {"finish_reason", {{"type", "string"}}},
            {"usage", {{"type", "object"}}}},
           {"model", "text", "finish_reason"}),
       false, false, Generate},
      {"tensor_stats", "Tensor statistics",
       "A version's tensors with their statistics (min, max, mean, std, ...) computed from the stored bytes, "
       "optionally only the tensors named.",
       Obj({{"version", Str("name or name@N")},
            {"names", {{"type", "array"}, {"items", {{"type", "string"}}}, {"description", "exact tensor names"}}},
            {"max_stats_bytes", Int("stop computing stats after this many tensor bytes", 0, app::kMaxStatsBytes)}},
           {"version"}),
       Obj({{"version", {{"type", "string"}}}, {"tensors", Arr("tensors with 'stats'")}}, {"version", "tensors"}),
       false, false, TensorStats},
      {"ingest", "Ingest a model",
       "Ingest one model file as a new version, all or nothing: 'path' (stdio only: a file on this machine) or "
       "'content_base64' with 'filename' (its suffix tells the format). Progress arrives as notifications.",
       Obj({{"path", Str("a model file or directory on the server's machine (stdio only)")},
            {"content_base64", Str("the file's bytes, base64")},
            {"filename", Str("the file's name, e.g. model.safetensors")},
            {"model", Str("the model name (default: the file name)")},
            {"license", Str("license when the file names none")},
            {"parent", Str("parent version name@N")},
            {"file_sha256", {{"type", "boolean"}}}}),
       Obj({{"model", {{"type", "string"}}}, {"number", {{"type", "integer"}}}}), true, false, Ingest},
      {"delete_version", "Delete a version",
       "Delete one version (name@N). A parent of other versions needs force (its children are relinked).",
       Obj({{"version", Str("name@N")}, {"force", {{"type", "boolean"}}}}, {"version"}),
       Obj({{"deleted", {{"type", "string"}}}}), true, true, DeleteVersion},
  };
  return tools;
}

bool Offered(const Server& srv, const Server::Tool& t, const app::Caller& caller) {
  if (!t.write) return true;
  return srv.options().enable_writes && caller.role != app::AccessRole::kReader;
}

}  // namespace

json ListTools(const Server& srv, const app::Caller& caller, const std::string& version) {
  bool modern = version != "2025-03-26";
  json list = json::array();
  for (const auto& t : Tools()) {
    if (!Offered(srv, t, caller)) continue;
    json j = {{"name", t.name}, {"description", t.description}, {"inputSchema", t.input}};
    j["annotations"] = {{"title", t.title},
                        {"readOnlyHint", !t.write},
                        {"destructiveHint", t.destructive},
                        {"idempotentHint", !t.write},
                        {"openWorldHint", false}};
    if (modern) {
      j["title"] = t.title;
      j["outputSchema"] = t.output;
    }
    list.push_back(std::move(j));
  }
  return {{"tools", list}};
}

absl::StatusOr<json> CallTool(Server::Call& call, const json& params) {
  auto name = params.find("name");
  if (name == params.end() || !name->is_string()) {
    return absl::InvalidArgumentError("tools/call: field 'name' must be a string");
  }
  json args = json::object();
  if (auto a = params.find("arguments"); a != params.end() && !a->is_null()) {
    if (!a->is_object()) return absl::InvalidArgumentError("tools/call: field 'arguments' must be an object");
    args = *a;
  }
  const Server::Tool* tool = nullptr;
  for (const auto& t : Tools()) {
    if (t.name == *name) tool = &t;
  }
  if (!tool || !Offered(call.server, *tool, call.ctx.caller)) {
    std::string why;
    if (tool && !call.server.options().enable_writes) why = " (write tools need the server started with --enable-writes)";
    else if (tool) why = " (the caller's role does not allow writes)";
    return absl::InvalidArgumentError(fmt::format("tools/call: unknown tool '{}'{}", name->get<std::string>(), why));
  }
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<json> r = tool->run(call, args);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  call.Log(r.ok() ? "debug" : "warning",
           {{"tool", tool->name}, {"ms", ms}, {"ok", r.ok()}, {"error", r.ok() ? "" : std::string(r.status().message())}});
  if (!r.ok()) {
    std::string text = fmt::format("{}: {}", std::string(app::ErrorType(r.status())), std::string(r.status().message()));
    return json{{"content", json::array({{{"type", "text"}, {"text", text}}})}, {"isError", true}};
  }
  json out = {{"content", json::array({{{"type", "text"}, {"text", app::DumpJson(*r)}}})}, {"isError", false}};
  if (call.version != "2025-03-26") out["structuredContent"] = std::move(*r);
  return out;
}

}  // namespace hart::mcp

// Resources (model cards, component trees, tensor tables, the store's
// statistics), their templates, the prompts, and argument completion. Each
// reads through the use cases of src/app/ with the request's context.
//
//   hart://store/stats
//   hart://models/{name}/{version}             the model card (JSON)
//   hart://models/{name}/{version}/components  the component tree
//   hart://models/{name}/{version}/tensors     the tensor table
//
// {name} is percent-encoded (a model name may hold any character).
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "app/catalog.h"
#include "app/json_io.h"
#include "fmt/format.h"
#include "core/status.h"
#include "mcp/internal.h"

namespace hart::mcp {

using nlohmann::json;

namespace {

constexpr const char* kModels = "hart://models/";
constexpr const char* kStats = "hart://store/stats";
constexpr size_t kPage = 100;

std::string Encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

bool Decode(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      *out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int v = 0;
    for (int k = 1; k <= 2; ++k) {
      char c = s[i + k];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return false;
    }
    if (v == 0) return false;
    *out += static_cast<char>(v);
    i += 2;
  }
  return true;
}

struct ParsedUri {
  bool stats = false;
  std::string model;
  int64_t number = 0;
  std::string part;  // "", "components", "tensors"
};

absl::StatusOr<ParsedUri> ParseUri(std::string_view uri) {
  ParsedUri p;
  if (uri == kStats) {
    p.stats = true;
    return p;
  }
  auto bad = [&] {
    return absl::NotFoundError(fmt::format(
        "unknown resource \"{}\": expected hart://store/stats or hart://models/{{name}}/{{version}}[/components|/tensors]",
        uri));
  };
  std::string_view prefix = kModels;
  if (uri.substr(0, prefix.size()) != prefix) return bad();
  std::vector<std::string> parts = absl::StrSplit(std::string(uri.substr(prefix.size())), '/');
  if (parts.size() < 2 || parts.size() > 3) return bad();
  if (!Decode(parts[0], &p.model) || p.model.empty()) return bad();
  if (!absl::SimpleAtoi(parts[1], &p.number) || p.number < 1) return bad();
  if (parts.size() == 3) {
    if (parts[2] != "components" && parts[2] != "tensors") return bad();
    p.part = parts[2];
  }
  return p;
}

std::string CardUri(const std::string& model, int64_t number) {
  return fmt::format("{}{}/{}", kModels, Encode(model), number);
}

// Every version ref, newest model list first, capped.
absl::StatusOr<std::vector<store::VersionRow>> AllVersions(const app::Context& ctx, size_t cap) {
  ASSIGN_OR_RETURN(auto models, app::List(ctx, app::ListRequest{}));
  std::vector<store::VersionRow> out;
  for (const auto& m : models.models) {
    auto vs = app::List(ctx, app::ListRequest{.model = m.name});
    if (!vs.ok()) continue;  // deleted meanwhile
    for (auto& v : vs->versions) {
      out.push_back(std::move(v));
      if (out.size() >= cap) return out;
    }
  }
  return out;
}

json TextContent(const std::string& uri, const json& j) {
  return {{"uri", uri}, {"mimeType", "application/json"}, {"text", app::DumpJson(j, 2)}};
}

absl::StatusOr<std::string> RequiredArg(const json& args, const char* prompt, const char* name) {
  auto it = args.find(name);
  if (it == args.end() || !it->is_string() || it->get<std::string>().empty()) {
    return absl::InvalidArgumentError(fmt::format("prompt '{}': argument '{}' is required (a string)", prompt, name));
  }
  return it->get<std::string>();
}

json UserText(std::string text) {
  return {{"role", "user"}, {"content", {{"type", "text"}, {"text", std::move(text)}}}};
}

}  // namespace

absl::Status CheckResourceUri(std::string_view uri) { return ParseUri(uri).status(); }

std::string ModelOfUri(std::string_view uri) {
  auto p = ParseUri(uri);
  return p.ok() ? p->model : std::string();
}

absl::StatusOr<json> ListResources(Server::Call& call, const json& params) {
  size_t offset = 0;
  if (auto c = params.find("cursor"); c != params.end()) {
    if (!c->is_string() || !absl::SimpleAtoi(c->get<std::string>(), &offset)) {
      return absl::InvalidArgumentError("resources/list: field 'cursor' is not a cursor this server gave");
    }
  }
  ASSIGN_OR_RETURN(auto versions, AllVersions(call.ctx, offset + kPage + 1));
  json list = json::array();
  if (offset == 0) {
    list.push_back({{"uri", kStats},
                    {"name", "store-stats"},
                    {"title", "Store statistics"},
                    {"description", "Logical and physical bytes per model, pack and catalog sizes"},
                    {"mimeType", "application/json"}});
  }
  for (size_t i = offset; i < versions.size() && i < offset + kPage; ++i) {
    const auto& v = versions[i];
    list.push_back({{"uri", CardUri(v.model, v.number)},
                    {"name", v.ref()},
                    {"title", fmt::format("Model card of {}", v.ref())},
                    {"description", fmt::format("{} {} ({}, {} tensors)", v.ref(), v.architecture, v.license, v.tensors)},
                    {"mimeType", "application/json"},
                    {"size", v.logical_bytes}});
  }
  json out = {{"resources", list}};
  if (versions.size() > offset + kPage) out["nextCursor"] = std::to_string(offset + kPage);
  return out;
}

json ListResourceTemplates() {
  auto t = [](const char* uri, const char* name, const char* title, const char* d) {
    return json{{"uriTemplate", uri}, {"name", name}, {"title", title}, {"description", d}, {"mimeType", "application/json"}};
  };
  return {{"resourceTemplates",
           {t("hart://models/{name}/{version}", "model-card", "Model card",
              "A version's header, metadata, license, lineage, files and every version of the model"),
            t("hart://models/{name}/{version}/components", "components", "Component tree",
              "A version's component tree (model, blocks, tensors) with its graph edges"),
            t("hart://models/{name}/{version}/tensors", "tensors", "Tensor table",
              "A version's tensors: name, dtype, shape, bytes, shared_with")}}};
}

absl::StatusOr<json> ReadResource(Server::Call& call, const json& params) {
  auto u = params.find("uri");
  if (u == params.end() || !u->is_string()) return absl::InvalidArgumentError("resources/read: field 'uri' must be a string");
  std::string uri = u->get<std::string>();
  ASSIGN_OR_RETURN(ParsedUri p, ParseUri(uri));
  json body;
  if (p.stats) {
    ASSIGN_OR_RETURN(auto s, app::Stats(call.ctx, app::StatsRequest{}));
    body = s.ToJson();
  } else {
    std::string ref = fmt::format("{}@{}", p.model, p.number);
    if (p.part.empty()) {
      ASSIGN_OR_RETURN(auto show, app::Show(call.ctx, app::ShowRequest{.version = ref}));
      ASSIGN_OR_RETURN(auto versions, app::List(call.ctx, app::ListRequest{.model = p.model}));
      json sj = show.ToJson();
      json lineage = json::array();
      std::optional<std::string> parent = show.version.parent;
      for (int i = 0; parent && i < 64; ++i) {
        lineage.push_back(*parent);
        auto pv = app::ResolveVersion(call.ctx, *parent);
        if (!pv.ok()) break;
        parent = pv->parent;
      }
      body = {{"ref", ref},
              {"version", sj["version"]},
              {"license", show.version.license},
              {"lineage", lineage},
              {"files", sj["files"]},
              {"tensor_count", show.tensors.size()},
              {"versions", versions.ToJson()},
              {"components_uri", CardUri(p.model, p.number) + "/components"},
              {"tensors_uri", CardUri(p.model, p.number) + "/tensors"}};
    } else if (p.part == "components") {
      app::ComponentsRequest req;
      req.version = ref;
      ASSIGN_OR_RETURN(auto c, app::Components(call.ctx, req));
      body = c.ToJson();
    } else {
      ASSIGN_OR_RETURN(auto t, app::Tensors(call.ctx, app::TensorsRequest{.version = ref}));
      body = {{"version", ref}, {"tensors", t.ToJson()}};
    }
  }
  return json{{"contents", json::array({TextContent(uri, body)})}};
}

json ListPrompts() {
  auto arg = [](const char* n, const char* d, bool req) {
    return json{{"name", n}, {"description", d}, {"required", req}};
  };
  return {{"prompts",
           {{{"name", "compare_versions"},
             {"title", "Compare two versions"},
             {"description", "Compare two model versions: what changed, by how much, and which to use"},
             {"arguments", {arg("a", "the first version, name@N", true), arg("b", "the second version, name@N", true)}}},
            {{"name", "find_changed_layers"},
             {"title", "Find the layers a fine-tune changed"},
             {"description", "Which layers and components a fine-tune changed relative to its base"},
             {"arguments",
              {arg("base", "the base version, name@N", true), arg("finetune", "the fine-tuned version, name@N", true)}}},
            {{"name", "pick_model_for_budget"},
             {"title", "Pick a model for a memory budget"},
             {"description", "Choose a stored model (or a partial load of one) that fits a memory budget"},
             {"arguments",
              {arg("budget", "memory budget, e.g. 2G or 512M", true), arg("task", "what the model is for", false)}}}}}};
}

absl::StatusOr<json> GetPrompt(Server::Call& call, const json& params) {
  auto n = params.find("name");
  if (n == params.end() || !n->is_string()) return absl::InvalidArgumentError("prompts/get: field 'name' must be a string");
  json args = json::object();
  if (auto a = params.find("arguments"); a != params.end() && !a->is_null()) {
    if (!a->is_object()) return absl::InvalidArgumentError("prompts/get: field 'arguments' must be an object");
    args = *a;
  }
  std::string name = n->get<std::string>();
  auto card = [&](const std::string& ref) -> absl::StatusOr<json> {
    ASSIGN_OR_RETURN(store::VersionRow v, app::ResolveVersion(call.ctx, ref));
    json p = {{"uri", CardUri(v.model, v.number)}};
    ASSIGN_OR_RETURN(json r, ReadResource(call, p));
    return json{{"role", "user"}, {"content", {{"type", "resource"}, {"resource", r["contents"][0]}}}};
  };
  if (name == "compare_versions") {
    ASSIGN_OR_RETURN(std::string a, RequiredArg(args, "compare_versions", "a"));
    ASSIGN_OR_RETURN(std::string b, RequiredArg(args, "compare_versions", "b"));
    ASSIGN_OR_RETURN(json ca, card(a));
    ASSIGN_OR_RETURN(json cb, card(b));
    return json{{"description", fmt::format("Compare {} and {}", a, b)},
                {"messages",
                 {UserText(fmt::format(
                      "Compare the model versions {} and {} stored in Hartonomous. Their model cards follow. Call "
                      "diff_versions with a=\"{}\" and b=\"{}\" to see which tensors were added, removed or changed "
                      "and how many bytes differ, and similar_models on each to see how close they are. Then say "
                      "what changed (architecture, license, size, layers touched), how large the change is, and "
                      "which version suits which use.",
                      a, b, a, b)),
                  ca, cb}}};
  }
  if (name == "find_changed_layers") {
    ASSIGN_OR_RETURN(std::string base, RequiredArg(args, "find_changed_layers", "base"));
    ASSIGN_OR_RETURN(std::string ft, RequiredArg(args, "find_changed_layers", "finetune"));
    ASSIGN_OR_RETURN(store::VersionRow vb, app::ResolveVersion(call.ctx, base));
    ASSIGN_OR_RETURN(store::VersionRow vf, app::ResolveVersion(call.ctx, ft));
    return json{{"description", fmt::format("Layers {} changed relative to {}", vf.ref(), vb.ref())},
                {"messages",
                 {UserText(fmt::format(
                     "Find which layers the fine-tune {1} changed relative to its base {0}. Call diff_versions with "
                     "a=\"{0}\" and b=\"{1}\"; group the changed tensors by layer (the number in names such as "
                     "blk.N or model.layers.N) and by role (attention q/k/v/o, feed-forward, norms, embeddings). "
                     "Use tensor_stats on a few changed tensors of both versions to say how much they moved. "
                     "Report the layers changed, the untouched ones, and whether this looks like a full fine-tune, "
                     "a LoRA merge on some projections, or a change of the embeddings or head only.",
                     vb.ref(), vf.ref()))}}};
  }
  if (name == "pick_model_for_budget") {
    ASSIGN_OR_RETURN(std::string budget, RequiredArg(args, "pick_model_for_budget", "budget"));
    std::string task = args.value("task", std::string("general text generation"));
    ASSIGN_OR_RETURN(auto models, app::List(call.ctx, app::ListRequest{}));
    return json{{"description", fmt::format("Pick a model for a {} budget", budget)},
                {"messages",
                 {UserText(fmt::format(
                      "Pick a model from the Hartonomous store for {} within a memory budget of {}. The store's "
                      "models (with the latest version's logical bytes) follow. Prefer the most capable model whose "
                      "weights fit; if none fits whole, use plan_load to price a partial load (e.g. names "
                      "[\"blk.0.*\"]) and say what would be left out. Use describe_model for architecture and license.",
                      task, budget)),
                  {{"role", "user"},
                   {"content",
                    {{"type", "resource"}, {"resource", TextContent("hart://models", models.ToJson())}}}}}}};
  }
  return absl::InvalidArgumentError(fmt::format("prompts/get: unknown prompt '{}'", name));
}

absl::StatusOr<json> CompleteArgument(Server::Call& call, const json& params) {
  auto ref = params.find("ref");
  auto arg = params.find("argument");
  if (ref == params.end() || !ref->is_object() || !ref->contains("type") || !(*ref)["type"].is_string()) {
    return absl::InvalidArgumentError("completion/complete: field 'ref' must be an object with a 'type'");
  }
  if (arg == params.end() || !arg->is_object() || !arg->contains("name") || !(*arg)["name"].is_string() ||
      !arg->contains("value") || !(*arg)["value"].is_string()) {
    return absl::InvalidArgumentError("completion/complete: field 'argument' must be {\"name\": string, \"value\": string}");
  }
  std::string type = (*ref)["type"], name = (*arg)["name"], value = (*arg)["value"];
  json context_args = json::object();
  if (auto c = params.find("context"); c != params.end() && c->is_object() && c->contains("arguments") &&
                                       (*c)["arguments"].is_object()) {
    context_args = (*c)["arguments"];
  }
  std::vector<std::string> candidates;
  if (type == "ref/prompt") {
    if (name == "budget") {
      candidates = {"256M", "512M", "1G", "2G", "4G", "8G", "16G", "32G", "64G"};
    } else if (name == "a" || name == "b" || name == "base" || name == "finetune") {
      ASSIGN_OR_RETURN(auto vs, AllVersions(call.ctx, 5000));
      for (const auto& v : vs) candidates.push_back(v.ref());
    }
  } else if (type == "ref/resource") {
    if (name == "name") {
      ASSIGN_OR_RETURN(auto models, app::List(call.ctx, app::ListRequest{}));
      for (const auto& m : models.models) candidates.push_back(m.name);
    } else if (name == "version") {
      std::string model = context_args.value("name", std::string());
      ASSIGN_OR_RETURN(auto vs, AllVersions(call.ctx, 5000));
      for (const auto& v : vs) {
        if (model.empty() || v.model == model) candidates.push_back(std::to_string(v.number));
      }
      std::sort(candidates.begin(), candidates.end());
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    }
  } else {
    return absl::InvalidArgumentError(fmt::format("completion/complete: unknown ref type '{}'", type));
  }
  std::vector<std::string> hits;
  for (auto& c : candidates) {
    if (absl::StartsWith(c, value)) hits.push_back(c);
  }
  size_t total = hits.size();
  if (hits.size() > 100) hits.resize(100);
  return json{{"completion", {{"values", hits}, {"total", total}, {"hasMore", total > hits.size()}}}};
}

}  // namespace hart::mcp

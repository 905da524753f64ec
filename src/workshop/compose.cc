#include "workshop/compose.h"

#include <map>
#include <regex>

#include "core/status.h"
#include "fmt/format.h"

namespace hart::workshop {
namespace {

// "blk.N.rest" -> (N, "rest"); -1 for tensors outside blocks.
std::pair<int64_t, std::string> SplitBlock(const std::string& name) {
  static const std::regex re(R"(^blk\.(\d+)\.(.+)$)");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return {-1, name};
  return {std::stoll(m[1].str()), m[2].str()};
}

int64_t BlockCount(const SourceModel& s) {
  int64_t n = 0;
  for (const store::TensorRow& t : s.tensors) n = std::max(n, SplitBlock(t.name).first + 1);
  return n;
}

std::string Arch(const SourceModel& s) {
  return s.header.metadata.GetString("general.architecture").value_or("");
}

// Hyper-parameters that must agree for blocks to be interchangeable.
absl::Status SameShapeParams(const SourceModel& base, const SourceModel& other, std::string_view field) {
  const std::string arch = Arch(base);
  if (Arch(other) != arch)
    return absl::InvalidArgumentError(fmt::format("{}: {} is architecture '{}', the base {} is '{}'",
                                                  field, other.version.ref(), Arch(other),
                                                  base.version.ref(), arch));
  for (std::string_view k : {"embedding_length", "feed_forward_length", "attention.head_count",
                             "attention.head_count_kv", "attention.key_length",
                             "attention.value_length", "rope.dimension_count"}) {
    const std::string key = fmt::format("{}.{}", arch, k);
    const formats::GgufValue* a = base.header.metadata.Find(key);
    const formats::GgufValue* b = other.header.metadata.Find(key);
    auto text = [](const formats::GgufValue* v) {
      if (!v) return std::string("absent");
      if (auto u = std::get_if<uint64_t>(&v->value)) return std::to_string(*u);
      if (auto i = std::get_if<int64_t>(&v->value)) return std::to_string(*i);
      return std::string("(array)");
    };
    if (text(a) != text(b))
      return absl::InvalidArgumentError(fmt::format("{}: {} has {} = {}, the base {} has {}", field,
                                                    other.version.ref(), key, text(b),
                                                    base.version.ref(), text(a)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Derivation> BuildCompose(store::Store& store, const nlohmann::json& spec) {
  if (!spec.is_object()) return absl::InvalidArgumentError("compose spec: not a JSON object");
  for (auto it = spec.begin(); it != spec.end(); ++it)
    if (it.key() != "base" && it.key() != "parts")
      return absl::InvalidArgumentError(fmt::format("compose spec: unknown field '{}'", it.key()));
  if (!spec.contains("base") || !spec["base"].is_string())
    return absl::InvalidArgumentError("compose spec: base: a version reference (\"model@N\") is required");
  if (!spec.contains("parts") || !spec["parts"].is_array() || spec["parts"].empty())
    return absl::InvalidArgumentError("compose spec: parts: a non-empty array is required");

  // Every version named, opened once, base first.
  std::vector<SourceModel> sources;
  std::map<std::string, size_t> by_ref;
  auto open = [&](const std::string& ref, const std::string& field) -> absl::StatusOr<size_t> {
    auto it = by_ref.find(ref);
    if (it != by_ref.end()) return it->second;
    auto s = OpenSource(store, ref);
    if (!s.ok()) return Annotate(s.status(), field);
    for (size_t i = 0; i < sources.size(); ++i)
      if (sources[i].version.id == s->version.id) return by_ref[ref] = i;
    sources.push_back(std::move(*s));
    return by_ref[ref] = sources.size() - 1;
  };
  ASSIGN_OR_RETURN(size_t base_i, open(spec["base"].get<std::string>(), "compose spec: base"));
  (void)base_i;
  struct Part {
    size_t src = 0;
    int64_t lo = -1, hi = -1;
    std::vector<std::string> tensors;
  };
  std::vector<Part> parts;
  const nlohmann::json& jparts = spec["parts"];
  for (size_t k = 0; k < jparts.size(); ++k) {
    const std::string field = fmt::format("compose spec: parts[{}]", k);
    const nlohmann::json& jp = jparts[k];
    if (!jp.is_object() || !jp.contains("from") || !jp["from"].is_string())
      return absl::InvalidArgumentError(field + ".from: a version reference is required");
    for (auto it = jp.begin(); it != jp.end(); ++it)
      if (it.key() != "from" && it.key() != "blocks" && it.key() != "tensors")
        return absl::InvalidArgumentError(fmt::format("{}: unknown field '{}'", field, it.key()));
    Part p;
    ASSIGN_OR_RETURN(p.src, open(jp["from"].get<std::string>(), field + ".from"));
    RETURN_IF_ERROR(SameShapeParams(sources[0], sources[p.src], field + ".from"));
    if (jp.contains("blocks")) {
      const nlohmann::json& b = jp["blocks"];
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer())
        return absl::InvalidArgumentError(field + ".blocks: [first, last] (inclusive) expected");
      p.lo = b[0].get<int64_t>();
      p.hi = b[1].get<int64_t>();
      const int64_t n = BlockCount(sources[p.src]);
      if (p.lo < 0 || p.hi < p.lo || p.hi >= n)
        return absl::InvalidArgumentError(fmt::format(
            "{}.blocks: [{}, {}] is out of bounds: {} has blocks 0..{}", field, p.lo, p.hi,
            sources[p.src].version.ref(), n - 1));
    }
    if (jp.contains("tensors")) {
      if (!jp["tensors"].is_array())
        return absl::InvalidArgumentError(field + ".tensors: an array of tensor names expected");
      for (const nlohmann::json& t : jp["tensors"]) {
        if (!t.is_string()) return absl::InvalidArgumentError(field + ".tensors: names must be strings");
        const std::string name = t.get<std::string>();
        const store::TensorRow* row = sources[p.src].Find(name);
        if (!row)
          return absl::InvalidArgumentError(fmt::format("{}.tensors: {} has no tensor '{}'", field,
                                                        sources[p.src].version.ref(), name));
        if (SplitBlock(name).first >= 0)
          return absl::InvalidArgumentError(fmt::format(
              "{}.tensors: '{}' is inside a block; take blocks with \"blocks\"", field, name));
        const store::TensorRow* b = sources[0].Find(name);
        if (!b)
          return absl::InvalidArgumentError(fmt::format("{}.tensors: the base {} has no tensor '{}' to replace",
                                                        field, sources[0].version.ref(), name));
        if (b->shape != row->shape)
          return absl::InvalidArgumentError(fmt::format("{}.tensors: '{}' is {} in {} but {} in the base",
                                                        field, name, nlohmann::json(row->shape).dump(),
                                                        sources[p.src].version.ref(),
                                                        nlohmann::json(b->shape).dump()));
        p.tensors.push_back(name);
      }
    }
    if (p.lo < 0 && p.tensors.empty())
      return absl::InvalidArgumentError(field + ": give blocks or tensors");
    parts.push_back(std::move(p));
  }

  const SourceModel& base = sources[0];
  Derivation d;
  d.method = "compose";
  d.metadata = base.header.metadata;
  d.alignment = base.header.alignment;
  std::erase_if(d.metadata.entries,
                [](const formats::GgufKV& kv) { return kv.key == "general.alignment"; });
  for (const SourceModel& s : sources) d.inputs.push_back(s.version.id);

  // Non-block tensors of the base, replaced where a part names them; the
  // blocks in part order, renumbered. Output order: the base's tensors
  // before its first block, the blocks, then the base's remaining tensors.
  std::map<std::string, TensorOrigin> replaced;
  for (const Part& p : parts)
    for (const std::string& name : p.tensors) replaced[name] = {sources[p.src].version.id, name};
  std::vector<OutputTensor> head, tail, blocks;
  bool seen_block = false;
  for (const store::TensorRow& t : base.tensors) {
    if (SplitBlock(t.name).first >= 0) {
      seen_block = true;
      continue;
    }
    OutputTensor o;
    o.name = t.name;
    auto r = replaced.find(t.name);
    const store::TensorRow* row = &t;
    if (r != replaced.end()) {
      for (const SourceModel& s : sources)
        if (s.version.id == r->second.version_id) row = s.Find(t.name);
      o.taken = r->second;
    } else {
      o.taken = TensorOrigin{base.version.id, t.name};
    }
    o.dtype = row->dtype;
    o.shape = row->shape;
    (seen_block ? tail : head).push_back(std::move(o));
  }
  int64_t out_block = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    const Part& p = parts[k];
    if (p.lo < 0) continue;
    const SourceModel& s = sources[p.src];
    for (int64_t b = p.lo; b <= p.hi; ++b, ++out_block) {
      for (const store::TensorRow& t : s.tensors) {
        auto [blk, rest] = SplitBlock(t.name);
        if (blk != b) continue;
        // The base's block 0 gives the shape every block's tensor must have.
        const store::TensorRow* ref = base.Find(fmt::format("blk.0.{}", rest));
        if (ref && ref->shape != t.shape)
          return absl::InvalidArgumentError(fmt::format(
              "compose spec: parts[{}]: '{}' of {} is {}, the base's blocks have {}", k, t.name,
              s.version.ref(), nlohmann::json(t.shape).dump(), nlohmann::json(ref->shape).dump()));
        OutputTensor o;
        o.name = fmt::format("blk.{}.{}", out_block, rest);
        o.dtype = t.dtype;
        o.shape = t.shape;
        o.taken = TensorOrigin{s.version.id, t.name};
        blocks.push_back(std::move(o));
      }
    }
  }
  if (out_block == 0) {
    out_block = BlockCount(base);  // only tensors replaced: the base's blocks stay
    for (const store::TensorRow& t : base.tensors)
      if (SplitBlock(t.name).first >= 0)
        blocks.push_back({t.name, t.dtype, t.shape, TensorOrigin{base.version.id, t.name}, {}});
  }
  for (auto* v : {&head, &blocks, &tail})
    for (OutputTensor& o : *v) d.tensors.push_back(std::move(o));

  const std::string arch = Arch(base);
  if (!arch.empty())
    SetMetadata(&d.metadata, arch + ".block_count", U32(static_cast<uint32_t>(out_block)));
  // Parameters: the spec with refs resolved, so a rebuild needs only ids.
  nlohmann::json params = spec;
  params["base"] = base.version.ref();
  for (size_t k = 0; k < parts.size(); ++k) params["parts"][k]["from"] = sources[parts[k].src].version.ref();
  d.parameters = params;
  return d;
}

}  // namespace hart::workshop

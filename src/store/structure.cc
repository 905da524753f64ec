#include "store/structure.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/status.h"
#include "store/db.h"

#include <sqlite3.h>

namespace hart::store {
namespace {

constexpr std::array<std::string_view, 19> kRoleNames = {
    "other", "embedding", "position_embedding", "token_type_embedding", "norm",
    "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_out",
    "ffn_gate", "ffn_up", "ffn_down", "ffn_gate_up",
    "router", "expert", "output", "rope_freqs", "pooler"};

// Where a tensor sits in the dataflow. Within a block, tensors of one stage
// feed the tensors of the next stage present.
enum class Slot : uint8_t {
  kNone,
  // model level, in order
  kEmbed, kEmbedNorm,
  // block level, in order
  kAttnNorm, kQ, kK, kV, kQkv, kQNorm, kKNorm, kAttnOut, kPostAttnNorm,
  kFfnNorm, kRouter, kGate, kUp, kGateUp, kDown, kPostFfnNorm,
  // model level, after the blocks
  kOutputNorm, kOutput,
};

int Stage(Slot s) {
  switch (s) {
    case Slot::kAttnNorm: return 0;
    case Slot::kQ: case Slot::kK: case Slot::kV: case Slot::kQkv: return 1;
    case Slot::kQNorm: case Slot::kKNorm: return 2;
    case Slot::kAttnOut: return 3;
    case Slot::kPostAttnNorm: return 4;
    case Slot::kFfnNorm: return 5;
    case Slot::kRouter: return 6;
    case Slot::kGate: case Slot::kUp: case Slot::kGateUp: return 7;
    case Slot::kDown: return 8;
    case Slot::kPostFfnNorm: return 9;
    default: return -1;
  }
}
constexpr int kStages = 10;

struct Rule {
  std::string_view pattern;  // matched against the lowercased name rest
  bool suffix_only;          // pattern must be the whole last component(s)
  Slot slot;
  Role role;
};

// Order matters: first match wins. Patterns are matched as substrings of the
// part of the name after the block prefix, with ".weight"/".bias" removed.
constexpr Rule kBlockRules[] = {
    // MoE routers and experts first: their names contain ffn_gate/gate.
    {"ffn_gate_inp", false, Slot::kRouter, Role::kRouter},
    {"block_sparse_moe.gate", true, Slot::kRouter, Role::kRouter},
    {"mlp.gate", true, Slot::kRouter, Role::kRouter},
    {"router", false, Slot::kRouter, Role::kRouter},
    // q/k norms before q/k.
    {"attn_q_norm", false, Slot::kQNorm, Role::kNorm},
    {"attn_k_norm", false, Slot::kKNorm, Role::kNorm},
    {"q_norm", false, Slot::kQNorm, Role::kNorm},
    {"k_norm", false, Slot::kKNorm, Role::kNorm},
    {"q_layernorm", false, Slot::kQNorm, Role::kNorm},
    {"k_layernorm", false, Slot::kKNorm, Role::kNorm},
    // norms
    {"post_attention_norm", false, Slot::kPostAttnNorm, Role::kNorm},
    {"post_ffw_norm", false, Slot::kPostFfnNorm, Role::kNorm},
    {"post_feedforward_layernorm", false, Slot::kPostFfnNorm, Role::kNorm},
    {"pre_feedforward_layernorm", false, Slot::kFfnNorm, Role::kNorm},
    // Llama-style HF checkpoints call the pre-FFN norm post_attention_layernorm;
    // gemma2 uses that name for a real post-attention norm (fixed up below).
    {"post_attention_layernorm", false, Slot::kFfnNorm, Role::kNorm},
    {"attn_norm", false, Slot::kAttnNorm, Role::kNorm},
    {"input_layernorm", false, Slot::kAttnNorm, Role::kNorm},
    {"ln_1", false, Slot::kAttnNorm, Role::kNorm},
    {"ffn_norm", false, Slot::kFfnNorm, Role::kNorm},
    {"ln_2", false, Slot::kFfnNorm, Role::kNorm},
    {"attn_output_norm", false, Slot::kPostAttnNorm, Role::kNorm},
    {"attention.output.layernorm", false, Slot::kPostAttnNorm, Role::kNorm},
    {"layer_output_norm", false, Slot::kPostFfnNorm, Role::kNorm},
    {"output.layernorm", false, Slot::kPostFfnNorm, Role::kNorm},
    // attention
    {"attn_qkv", false, Slot::kQkv, Role::kAttnQkv},
    {"qkv_proj", false, Slot::kQkv, Role::kAttnQkv},
    {"c_attn", false, Slot::kQkv, Role::kAttnQkv},
    {"query_key_value", false, Slot::kQkv, Role::kAttnQkv},
    {"wqkv", false, Slot::kQkv, Role::kAttnQkv},
    {"attn_q", false, Slot::kQ, Role::kAttnQ},
    {"q_proj", false, Slot::kQ, Role::kAttnQ},
    {"self.query", false, Slot::kQ, Role::kAttnQ},
    {"attn_k", false, Slot::kK, Role::kAttnK},
    {"k_proj", false, Slot::kK, Role::kAttnK},
    {"self.key", false, Slot::kK, Role::kAttnK},
    {"attn_v", false, Slot::kV, Role::kAttnV},
    {"v_proj", false, Slot::kV, Role::kAttnV},
    {"self.value", false, Slot::kV, Role::kAttnV},
    {"attn_output", false, Slot::kAttnOut, Role::kAttnOut},
    {"o_proj", false, Slot::kAttnOut, Role::kAttnOut},
    {"attn.c_proj", false, Slot::kAttnOut, Role::kAttnOut},
    {"attention.output.dense", false, Slot::kAttnOut, Role::kAttnOut},
    {"out_proj", false, Slot::kAttnOut, Role::kAttnOut},
    {"self_attn.dense", false, Slot::kAttnOut, Role::kAttnOut},
    // feed-forward
    {"gate_up_proj", false, Slot::kGateUp, Role::kFfnGateUp},
    {"ffn_gate", false, Slot::kGate, Role::kFfnGate},
    {"gate_proj", false, Slot::kGate, Role::kFfnGate},
    {"ffn_up", false, Slot::kUp, Role::kFfnUp},
    {"up_proj", false, Slot::kUp, Role::kFfnUp},
    {"c_fc", false, Slot::kUp, Role::kFfnUp},
    {"intermediate.dense", false, Slot::kUp, Role::kFfnUp},
    {"fc1", false, Slot::kUp, Role::kFfnUp},
    {"ffn_down", false, Slot::kDown, Role::kFfnDown},
    {"down_proj", false, Slot::kDown, Role::kFfnDown},
    {"mlp.c_proj", false, Slot::kDown, Role::kFfnDown},
    {"output.dense", false, Slot::kDown, Role::kFfnDown},
    {"fc2", false, Slot::kDown, Role::kFfnDown},
};

constexpr Rule kTopRules[] = {
    {"token_embd_norm", false, Slot::kEmbedNorm, Role::kNorm},
    {"embeddings.layernorm", false, Slot::kEmbedNorm, Role::kNorm},
    {"embed_norm", false, Slot::kEmbedNorm, Role::kNorm},
    {"token_embd", false, Slot::kEmbed, Role::kEmbedding},
    {"embed_tokens", false, Slot::kEmbed, Role::kEmbedding},
    {"tok_embeddings", false, Slot::kEmbed, Role::kEmbedding},
    {"word_embeddings", false, Slot::kEmbed, Role::kEmbedding},
    {"wte", false, Slot::kEmbed, Role::kEmbedding},
    {"position_embd", false, Slot::kEmbed, Role::kPositionEmbedding},
    {"position_embeddings", false, Slot::kEmbed, Role::kPositionEmbedding},
    {"wpe", false, Slot::kEmbed, Role::kPositionEmbedding},
    {"token_types", false, Slot::kEmbed, Role::kTokenTypeEmbedding},
    {"token_type_embeddings", false, Slot::kEmbed, Role::kTokenTypeEmbedding},
    {"rope_freqs", false, Slot::kNone, Role::kRopeFreqs},
    {"pooler", false, Slot::kNone, Role::kPooler},
    {"output_norm", false, Slot::kOutputNorm, Role::kNorm},
    {"ln_f", false, Slot::kOutputNorm, Role::kNorm},
    {"final_layernorm", false, Slot::kOutputNorm, Role::kNorm},
    {"model.norm", true, Slot::kOutputNorm, Role::kNorm},
    {"norm", true, Slot::kOutputNorm, Role::kNorm},
    {"lm_head", false, Slot::kOutput, Role::kOutput},
    {"output", true, Slot::kOutput, Role::kOutput},
    {"embed_out", false, Slot::kOutput, Role::kOutput},
};

constexpr std::string_view kKnownArchitectures[] = {
    "llama", "mistral", "qwen2", "qwen3", "qwen2moe", "qwen3moe", "gemma", "gemma2", "gemma3",
    "phi3", "gpt2", "bert", "mixtral", "nomic-bert", "starcoder2"};

struct Parsed {
  int layer = -1;
  int expert = -1;
  std::string block_prefix;  // "blk.3" / "model.layers.3"
  std::string rest;          // lowercased, without block prefix and weight/bias suffix
};

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Parsed Parse(std::string_view name) {
  Parsed p;
  std::vector<std::string> segs = absl::StrSplit(std::string(name), '.');
  size_t rest_from = 0;
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    std::string s = absl::AsciiStrToLower(segs[i]);
    if ((s == "blk" || s == "layers" || s == "layer" || s == "h" || s == "blocks" || s == "block") &&
        AllDigits(segs[i + 1]) && segs[i + 1].size() < 6) {
      p.layer = std::stoi(segs[i + 1]);
      std::vector<std::string> head(segs.begin(), segs.begin() + i + 2);
      p.block_prefix = absl::StrJoin(head, ".");
      rest_from = i + 2;
      break;
    }
  }
  std::vector<std::string> rest(segs.begin() + rest_from, segs.end());
  if (!rest.empty()) {
    std::string last = absl::AsciiStrToLower(rest.back());
    if (last == "weight" || last == "bias" || last == "scale" || last == "scales") rest.pop_back();
  }
  // Expert index: "experts.7" (HF) or "ffn_gate.7" (old GGUF per-expert).
  for (size_t i = 0; i + 1 < rest.size(); ++i) {
    if (AllDigits(rest[i + 1]) && rest[i + 1].size() < 6 &&
        (absl::AsciiStrToLower(rest[i]) == "experts" || absl::StartsWith(rest[i], "ffn_"))) {
      p.expert = std::stoi(rest[i + 1]);
      break;
    }
  }
  p.rest = absl::AsciiStrToLower(absl::StrJoin(rest, "."));
  return p;
}

const Rule* Match(std::string_view rest, const Rule* begin, const Rule* end) {
  for (const Rule* r = begin; r != end; ++r) {
    if (r->suffix_only) {
      if (rest == r->pattern ||
          (rest.size() > r->pattern.size() && rest.ends_with(r->pattern) &&
           rest[rest.size() - r->pattern.size() - 1] == '.'))
        return r;
    } else if (rest.find(r->pattern) != std::string_view::npos) {
      return r;
    }
  }
  return nullptr;
}

// Slot of an expert tensor from its projection name (w1 gate, w3 up, w2 down).
bool Has(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

Slot ExpertSlot(std::string_view rest) {
  if (Has(rest, "down") || Has(rest, "w2")) return Slot::kDown;
  if (Has(rest, "up") || Has(rest, "w3")) return Slot::kUp;
  return Slot::kGate;
}

// Prefix groups made for one unknown top-level tensor name, at most.
constexpr int kMaxPrefixGroups = 16;

}  // namespace

void LinkAll(const std::vector<int>& from, const std::vector<int>& to, EdgeKind kind,
             std::vector<EdgeSpec>& edges) {
  if (from.empty() || to.empty()) return;
  const uint64_t f = from.size(), t = to.size();
  if (f * t <= kDenseLinkFactor * (f + t) + kDenseLinkSlack) {
    for (int a : from)
      for (int b : to) edges.push_back({a, b, kind});
    return;
  }
  // Too many on both sides: through the first of each, f + t - 1 edges.
  for (int a : from) edges.push_back({a, to[0], kind});
  for (size_t j = 1; j < to.size(); ++j) edges.push_back({from[0], to[j], kind});
}

void TieStar(const std::vector<int>& nodes, std::vector<EdgeSpec>& edges) {
  for (size_t i = 1; i < nodes.size(); ++i) edges.push_back({nodes[0], nodes[i], EdgeKind::kTies});
}

std::string_view RoleName(Role r) { return kRoleNames[static_cast<size_t>(r)]; }

std::optional<Role> RoleFromName(std::string_view name) {
  for (size_t i = 0; i < kRoleNames.size(); ++i)
    if (kRoleNames[i] == name) return static_cast<Role>(i);
  return std::nullopt;
}

std::string_view ComponentKindName(ComponentKind k) {
  switch (k) {
    case ComponentKind::kModel: return "model";
    case ComponentKind::kBlock: return "block";
    case ComponentKind::kTensor: return "tensor";
  }
  return "tensor";
}

std::string_view EdgeKindName(EdgeKind k) {
  switch (k) {
    case EdgeKind::kContains: return "contains";
    case EdgeKind::kFeeds: return "feeds";
    case EdgeKind::kTies: return "ties";
  }
  return "feeds";
}

std::optional<EdgeKind> EdgeKindFromName(std::string_view name) {
  for (EdgeKind k : {EdgeKind::kContains, EdgeKind::kFeeds, EdgeKind::kTies})
    if (EdgeKindName(k) == name) return k;
  return std::nullopt;
}

Structure DeriveStructure(std::string_view architecture, std::string_view model_name,
                          const std::vector<StructureInput>& tensors) {
  Structure st;
  st.nodes.push_back({ComponentKind::kModel, std::string(model_name), -1, -1, Role::kOther, -1, -1, ""});

  // Group nodes, created on demand: name -> node index.
  std::map<std::string, int> groups;
  auto group = [&](const std::string& name, int parent, int layer, const std::string& sub) {
    auto it = groups.find(name);
    if (it != groups.end()) return it->second;
    int idx = static_cast<int>(st.nodes.size());
    st.nodes.push_back({ComponentKind::kBlock, name, parent, -1, Role::kOther, layer, -1, sub});
    groups.emplace(name, idx);
    return idx;
  };

  struct Placed {
    int node;
    Slot slot;
  };
  std::vector<Placed> placed;
  std::map<int, int> block_of_layer;  // layer -> block node
  std::string arch = absl::AsciiStrToLower(std::string(architecture));
  bool gemma = arch.rfind("gemma", 0) == 0;
  int recognized = 0;

  for (size_t i = 0; i < tensors.size(); ++i) {
    Parsed p = Parse(tensors[i].name);
    Slot slot = Slot::kNone;
    Role role = Role::kOther;
    int parent = 0;
    std::string sub;
    if (p.layer >= 0) {
      int block = group(p.block_prefix, 0, p.layer, "");
      block_of_layer[p.layer] = block;
      bool expert = p.expert >= 0 || Has(p.rest, "_exps") || Has(p.rest, "experts");
      const Rule* r = Match(p.rest, std::begin(kBlockRules), std::end(kBlockRules));
      if (expert && !(r && r->slot == Slot::kRouter)) {
        slot = ExpertSlot(p.rest);
        role = Role::kExpert;
        sub = "expert";
        std::string ffn = p.block_prefix + ".ffn";
        int ffn_node = group(ffn, block, p.layer, "ffn");
        parent = p.expert >= 0 ? group(ffn + ".expert." + std::to_string(p.expert), ffn_node, p.layer, "expert")
                               : ffn_node;
      } else if (r) {
        slot = r->slot;
        if (gemma && r->pattern == "post_attention_layernorm") slot = Slot::kPostAttnNorm;
        role = r->role;
        sub = Stage(slot) <= 4 ? "attn" : "ffn";
        parent = group(p.block_prefix + "." + sub, block, p.layer, sub);
      } else {
        parent = block;
      }
    } else {
      const Rule* r = Match(p.rest, std::begin(kTopRules), std::end(kTopRules));
      if (r) {
        slot = r->slot;
        role = r->role;
      } else {
        // Unknown top-level tensor: hang it under its dotted prefix groups,
        // at most kMaxPrefixGroups deep (a name of 10,000 dots would
        // otherwise make 10,000 groups of up to its whole length).
        const std::string& name = tensors[i].name;
        size_t dot = name.find('.');
        for (int depth = 0; dot != std::string::npos && depth < kMaxPrefixGroups; ++depth) {
          parent = group(name.substr(0, dot), parent, -1, "");
          dot = name.find('.', dot + 1);
        }
      }
    }
    if (role != Role::kOther) ++recognized;
    int idx = static_cast<int>(st.nodes.size());
    st.nodes.push_back({ComponentKind::kTensor, tensors[i].name, parent, static_cast<int>(i), role,
                        p.layer, p.expert, sub});
    placed.push_back({idx, slot});
  }

  for (size_t n = 1; n < st.nodes.size(); ++n)
    st.edges.push_back({st.nodes[n].parent, static_cast<int>(n), EdgeKind::kContains});

  // Dataflow. Per layer, tensors bucketed by stage; top-level by slot.
  std::map<int, std::array<std::vector<int>, kStages>> stages;  // layer -> stage -> nodes
  std::map<int, std::map<int, std::vector<int>>> experts;       // layer -> expert -> nodes (gate/up)
  std::vector<int> embed, embed_norm, out_norm, out;
  for (const Placed& pl : placed) {
    const ComponentNode& node = st.nodes[pl.node];
    switch (pl.slot) {
      case Slot::kEmbed: embed.push_back(pl.node); continue;
      case Slot::kEmbedNorm: embed_norm.push_back(pl.node); continue;
      case Slot::kOutputNorm: out_norm.push_back(pl.node); continue;
      case Slot::kOutput: out.push_back(pl.node); continue;
      case Slot::kNone: continue;
      default: break;
    }
    if (node.layer < 0) continue;
    int s = Stage(pl.slot);
    if (s >= 0) stages[node.layer][s].push_back(pl.node);
  }
  auto feeds = [&](const std::vector<int>& from, const std::vector<int>& to) {
    LinkAll(from, to, EdgeKind::kFeeds, st.edges);
  };
  std::vector<Slot> slots(st.nodes.size(), Slot::kNone);
  for (const Placed& pl : placed) slots[pl.node] = pl.slot;
  auto slot_of = [&](int node) { return slots[node]; };

  std::vector<int> prev = embed;
  if (!embed_norm.empty()) {
    feeds(embed, embed_norm);
    prev = embed_norm;
  }
  int prev_block = -1;
  for (auto& [layer, buckets] : stages) {
    int block = block_of_layer[layer];
    // Block-level chain: embedding -> blk.0 -> blk.1 -> ...
    if (prev_block >= 0) st.edges.push_back({prev_block, block, EdgeKind::kFeeds});
    else feeds(embed, {block});
    prev_block = block;
    for (int s = 0; s < kStages; ++s) {
      auto& cur = buckets[s];
      if (cur.empty()) continue;
      if (s == 2) {
        // q_norm after q, k_norm after k; attention output then reads the
        // normed q/k and the plain v (handled below).
        for (Slot norm : {Slot::kQNorm, Slot::kKNorm}) {
          Slot want = norm == Slot::kQNorm ? Slot::kQ : Slot::kK;
          std::vector<int> from, to;
          for (int q : buckets[1])
            if (slot_of(q) == want || slot_of(q) == Slot::kQkv) from.push_back(q);
          for (int n : cur)
            if (slot_of(n) == norm) to.push_back(n);
          feeds(from, to);
        }
        continue;
      }
      if (s == 3 && !buckets[2].empty()) {
        std::vector<int> from = buckets[2];
        for (int n : buckets[1])
          if (slot_of(n) == Slot::kV) from.push_back(n);
        feeds(from, cur);
        prev = cur;
        continue;
      }
      if (s == 8) {
        // down reads gate/up of its own expert (or the dense gate/up).
        std::map<int, std::pair<std::vector<int>, std::vector<int>>> by_expert;  // gate/up, down
        for (int g : buckets[7]) by_expert[st.nodes[g].expert].first.push_back(g);
        for (int d : cur) by_expert[st.nodes[d].expert].second.push_back(d);
        for (const auto& [e, gd] : by_expert) feeds(gd.first, gd.second);
        prev = cur;
        continue;
      }
      if (s == 7 && !buckets[6].empty()) {
        // Experts read the routed, normed activations: router and ffn norm.
        std::vector<int> from = buckets[6];
        from.insert(from.end(), buckets[5].begin(), buckets[5].end());
        feeds(from, cur);
        prev = cur;
        continue;
      }
      feeds(prev, cur);
      prev = cur;
    }
  }
  if (prev_block >= 0 && !out_norm.empty()) feeds({prev_block}, out_norm);
  if (!out_norm.empty()) {
    feeds(prev, out_norm);
    prev = out_norm;
  }
  feeds(prev, out);

  // Ties: identical bytes of an embedding and output head, or of any two
  // large tensors (small ones, such as freshly initialised norms, match by
  // chance and are not ties).
  constexpr Digest kZero{};
  std::map<Digest, std::vector<int>> by_hash;
  for (const Placed& pl : placed) {
    const ComponentNode& n = st.nodes[pl.node];
    if (tensors[n.tensor].sha256 == kZero) continue;
    by_hash[tensors[n.tensor].sha256].push_back(pl.node);
  }
  // n identical tensors are joined as a star to the first of them (n - 1
  // edges), never pairwise: 2,000 copies of one zero-initialised matrix
  // would otherwise make 1,999,000 edges.
  for (auto& [h, nodes] : by_hash) {
    if (nodes.size() < 2) continue;
    if (tensors[st.nodes[nodes[0]].tensor].nbytes >= kMinTieBytes) {
      TieStar(nodes, st.edges);
      continue;
    }
    // Small: only an embedding and an output head are tied; every output
    // to the first embedding, every other embedding to the first output.
    std::vector<int> emb, outs;
    for (int n : nodes) {
      if (st.nodes[n].role == Role::kEmbedding) emb.push_back(n);
      if (st.nodes[n].role == Role::kOutput) outs.push_back(n);
    }
    if (emb.empty() || outs.empty()) continue;
    auto tie = [&](int a, int b) { st.edges.push_back({std::min(a, b), std::max(a, b), EdgeKind::kTies}); };
    for (int o : outs) tie(emb[0], o);
    for (size_t i = 1; i < emb.size(); ++i) tie(emb[i], outs[0]);
  }

  st.layers = static_cast<int>(block_of_layer.size());
  st.known_architecture =
      std::find(std::begin(kKnownArchitectures), std::end(kKnownArchitectures), arch) !=
          std::end(kKnownArchitectures) ||
      (!tensors.empty() && recognized * 2 >= static_cast<int>(tensors.size()));
  return st;
}

absl::StatusOr<std::vector<int64_t>> InsertStructure(sqlite3* db, int64_t version_id,
                                                     const Structure& st,
                                                     const std::vector<TensorRowData>& tensor_rows) {
  ASSIGN_OR_RETURN(Stmt ins, Stmt::Prepare(db,
      "INSERT INTO component(version_id, parent_id, kind, name, role, layer, dtype, shape, nbytes, sha256) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  std::vector<int64_t> ids(st.nodes.size());
  std::vector<int64_t> tensor_ids(tensor_rows.size());
  // Subtree bytes of group nodes, summed bottom-up (children follow parents).
  std::vector<uint64_t> bytes(st.nodes.size(), 0);
  for (size_t n = st.nodes.size(); n-- > 0;) {
    const ComponentNode& node = st.nodes[n];
    if (node.kind == ComponentKind::kTensor) bytes[n] += tensor_rows[node.tensor].nbytes;
    if (node.parent >= 0) bytes[node.parent] += bytes[n];
  }
  for (size_t n = 0; n < st.nodes.size(); ++n) {
    const ComponentNode& node = st.nodes[n];
    if (node.parent >= 0 && static_cast<size_t>(node.parent) >= n)
      return absl::InternalError("structure nodes out of order");
    ins.Bind(1, version_id);
    if (node.parent >= 0) ins.Bind(2, ids[node.parent]);
    else ins.BindNull(2);
    ins.Bind(3, ComponentKindName(node.kind)).Bind(4, node.name);
    if (node.kind == ComponentKind::kTensor) ins.Bind(5, RoleName(node.role));
    else if (!node.op_type.empty()) ins.Bind(5, node.op_type);
    else ins.BindNull(5);
    if (node.layer >= 0) ins.Bind(6, int64_t{node.layer});
    else ins.BindNull(6);
    if (node.kind == ComponentKind::kTensor) {
      const TensorRowData& t = tensor_rows[node.tensor];
      ins.Bind(7, t.dtype).Bind(8, t.shape_json).BindBlob(10, t.sha256);
    } else {
      ins.BindNull(7).BindNull(8).BindNull(10);
    }
    ins.Bind(9, static_cast<int64_t>(bytes[n]));
    RETURN_IF_ERROR(ins.Run());
    ids[n] = sqlite3_last_insert_rowid(db);
    if (node.kind == ComponentKind::kTensor) tensor_ids[node.tensor] = ids[n];
  }
  ASSIGN_OR_RETURN(Stmt edge, Stmt::Prepare(db,
      "INSERT OR IGNORE INTO edge(src, dst, kind) VALUES(?, ?, ?)"));
  for (const EdgeSpec& e : st.edges) {
    edge.Bind(1, ids[e.src]).Bind(2, ids[e.dst]).Bind(3, EdgeKindName(e.kind));
    RETURN_IF_ERROR(edge.Run());
  }
  return tensor_ids;
}

}  // namespace hart::store

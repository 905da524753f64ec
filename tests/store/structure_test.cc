#include "store/structure.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace hart::store {
namespace {

std::vector<StructureInput> Inputs(const std::vector<std::string>& names) {
  std::vector<StructureInput> v;
  for (const auto& n : names) v.push_back({n, Digest{}, 1 << 20});
  return v;
}

const ComponentNode& Node(const Structure& s, const std::string& name) {
  for (const auto& n : s.nodes)
    if (n.name == name) return n;
  ADD_FAILURE() << "no node " << name;
  static ComponentNode none;
  return none;
}

int Index(const Structure& s, const std::string& name) {
  for (size_t i = 0; i < s.nodes.size(); ++i)
    if (s.nodes[i].name == name) return static_cast<int>(i);
  return -1;
}

bool HasEdge(const Structure& s, const std::string& a, const std::string& b, EdgeKind k) {
  int ia = Index(s, a), ib = Index(s, b);
  for (const auto& e : s.edges)
    if (e.src == ia && e.dst == ib && e.kind == k) return true;
  return false;
}

std::vector<std::string> GgufLlama(int layers) {
  std::vector<std::string> v = {"token_embd.weight"};
  for (int l = 0; l < layers; ++l)
    for (const char* t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                          "ffn_gate", "ffn_up", "ffn_down"})
      v.push_back("blk." + std::to_string(l) + "." + t + ".weight");
  v.push_back("output_norm.weight");
  v.push_back("output.weight");
  return v;
}

TEST(Structure, GgufLlamaRolesLayersAndDataflow) {
  Structure s = DeriveStructure("llama", "m", Inputs(GgufLlama(2)));
  EXPECT_TRUE(s.known_architecture);
  EXPECT_EQ(s.layers, 2);
  EXPECT_EQ(Node(s, "token_embd.weight").role, Role::kEmbedding);
  EXPECT_EQ(Node(s, "blk.1.attn_q.weight").role, Role::kAttnQ);
  EXPECT_EQ(Node(s, "blk.1.attn_q.weight").layer, 1);
  EXPECT_EQ(Node(s, "blk.0.ffn_down.weight").role, Role::kFfnDown);
  EXPECT_EQ(Node(s, "blk.0.attn_norm.weight").role, Role::kNorm);
  EXPECT_EQ(Node(s, "output.weight").role, Role::kOutput);
  // Tree: tensor -> blk.0.attn -> blk.0 -> model.
  const auto& q = Node(s, "blk.0.attn_q.weight");
  EXPECT_EQ(s.nodes[q.parent].name, "blk.0.attn");
  EXPECT_EQ(s.nodes[s.nodes[q.parent].parent].name, "blk.0");
  EXPECT_TRUE(HasEdge(s, "blk.0", "blk.0.attn", EdgeKind::kContains));
  // Dataflow.
  EXPECT_TRUE(HasEdge(s, "token_embd.weight", "blk.0.attn_norm.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0.attn_norm.weight", "blk.0.attn_k.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0.attn_v.weight", "blk.0.attn_output.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0.attn_output.weight", "blk.0.ffn_norm.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0.ffn_up.weight", "blk.0.ffn_down.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0.ffn_down.weight", "blk.1.attn_norm.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.1.ffn_down.weight", "output_norm.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "output_norm.weight", "output.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0", "blk.1", EdgeKind::kFeeds));
  EXPECT_FALSE(HasEdge(s, "blk.0.attn_q.weight", "blk.0.ffn_down.weight", EdgeKind::kFeeds));
}

TEST(Structure, HuggingFaceQwen3WithQkNormsAndBiases) {
  std::vector<std::string> names = {"model.embed_tokens.weight"};
  for (const char* t : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
                        "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.q_norm.weight",
                        "self_attn.k_norm.weight", "self_attn.o_proj.weight",
                        "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                        "mlp.down_proj.weight"})
    names.push_back(std::string("model.layers.0.") + t);
  names.push_back("model.norm.weight");
  names.push_back("lm_head.weight");
  Structure s = DeriveStructure("qwen3", "q", Inputs(names));
  EXPECT_EQ(Node(s, "model.layers.0.self_attn.q_proj.bias").role, Role::kAttnQ);
  EXPECT_EQ(Node(s, "model.layers.0.self_attn.q_norm.weight").role, Role::kNorm);
  EXPECT_EQ(Node(s, "model.norm.weight").role, Role::kNorm);
  EXPECT_EQ(Node(s, "lm_head.weight").role, Role::kOutput);
  EXPECT_TRUE(HasEdge(s, "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_norm.weight",
                      EdgeKind::kFeeds));
  EXPECT_FALSE(HasEdge(s, "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_norm.weight",
                       EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "model.layers.0.self_attn.k_norm.weight", "model.layers.0.self_attn.o_proj.weight",
                      EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
                      EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.up_proj.weight",
                      EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "model.norm.weight", "lm_head.weight", EdgeKind::kFeeds));
}

TEST(Structure, MixtralExpertsAndRouter) {
  std::vector<std::string> names = {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                                    "model.layers.0.self_attn.o_proj.weight",
                                    "model.layers.0.post_attention_layernorm.weight",
                                    "model.layers.0.block_sparse_moe.gate.weight"};
  for (int e = 0; e < 2; ++e)
    for (const char* w : {"w1", "w2", "w3"})
      names.push_back("model.layers.0.block_sparse_moe.experts." + std::to_string(e) + "." + w + ".weight");
  Structure s = DeriveStructure("llama", "mx", Inputs(names));
  EXPECT_EQ(Node(s, "model.layers.0.block_sparse_moe.gate.weight").role, Role::kRouter);
  const auto& w2 = Node(s, "model.layers.0.block_sparse_moe.experts.1.w2.weight");
  EXPECT_EQ(w2.role, Role::kExpert);
  EXPECT_EQ(w2.expert, 1);
  EXPECT_EQ(s.nodes[w2.parent].name, "model.layers.0.ffn.expert.1");
  EXPECT_TRUE(HasEdge(s, "model.layers.0.block_sparse_moe.gate.weight",
                      "model.layers.0.block_sparse_moe.experts.0.w1.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "model.layers.0.block_sparse_moe.experts.1.w3.weight",
                      "model.layers.0.block_sparse_moe.experts.1.w2.weight", EdgeKind::kFeeds));
  EXPECT_FALSE(HasEdge(s, "model.layers.0.block_sparse_moe.experts.0.w3.weight",
                       "model.layers.0.block_sparse_moe.experts.1.w2.weight", EdgeKind::kFeeds));
}

TEST(Structure, GgufStackedExperts) {
  Structure s = DeriveStructure("qwen3moe", "m", Inputs({"blk.0.ffn_norm.weight", "blk.0.ffn_gate_inp.weight",
                                                         "blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight",
                                                         "blk.0.ffn_down_exps.weight"}));
  EXPECT_EQ(Node(s, "blk.0.ffn_gate_inp.weight").role, Role::kRouter);
  EXPECT_EQ(Node(s, "blk.0.ffn_down_exps.weight").role, Role::kExpert);
  EXPECT_TRUE(HasEdge(s, "blk.0.ffn_gate_inp.weight", "blk.0.ffn_up_exps.weight", EdgeKind::kFeeds));
  EXPECT_TRUE(HasEdge(s, "blk.0.ffn_up_exps.weight", "blk.0.ffn_down_exps.weight", EdgeKind::kFeeds));
}

TEST(Structure, Gpt2AndBertNames) {
  Structure g = DeriveStructure("gpt2", "g", Inputs({"transformer.wte.weight", "transformer.wpe.weight",
                                                     "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight",
                                                     "transformer.h.0.attn.c_proj.weight", "transformer.h.0.ln_2.weight",
                                                     "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight",
                                                     "transformer.ln_f.weight"}));
  EXPECT_EQ(Node(g, "transformer.wpe.weight").role, Role::kPositionEmbedding);
  EXPECT_EQ(Node(g, "transformer.h.0.attn.c_attn.weight").role, Role::kAttnQkv);
  EXPECT_EQ(Node(g, "transformer.h.0.attn.c_proj.weight").role, Role::kAttnOut);
  EXPECT_EQ(Node(g, "transformer.h.0.mlp.c_proj.weight").role, Role::kFfnDown);
  EXPECT_EQ(Node(g, "transformer.ln_f.weight").role, Role::kNorm);
  Structure b = DeriveStructure("bert", "b", Inputs({"bert.embeddings.word_embeddings.weight",
                                                     "bert.encoder.layer.0.attention.self.query.weight",
                                                     "bert.encoder.layer.0.attention.output.dense.weight",
                                                     "bert.encoder.layer.0.attention.output.LayerNorm.weight",
                                                     "bert.encoder.layer.0.intermediate.dense.weight",
                                                     "bert.encoder.layer.0.output.dense.weight"}));
  EXPECT_EQ(Node(b, "bert.encoder.layer.0.attention.self.query.weight").role, Role::kAttnQ);
  EXPECT_EQ(Node(b, "bert.encoder.layer.0.attention.output.dense.weight").role, Role::kAttnOut);
  EXPECT_EQ(Node(b, "bert.encoder.layer.0.output.dense.weight").role, Role::kFfnDown);
  EXPECT_EQ(Node(b, "bert.encoder.layer.0.intermediate.dense.weight").role, Role::kFfnUp);
  EXPECT_EQ(Node(b, "bert.encoder.layer.0.attention.output.LayerNorm.weight").role, Role::kNorm);
}

TEST(Structure, UnknownArchitectureGetsPrefixTree) {
  Structure s = DeriveStructure("", "x", Inputs({"encoder.conv.a.weight", "encoder.conv.b.weight", "head.w"}));
  EXPECT_FALSE(s.known_architecture);
  const auto& a = Node(s, "encoder.conv.a.weight");
  EXPECT_EQ(s.nodes[a.parent].name, "encoder.conv.a");
  EXPECT_EQ(s.nodes[s.nodes[a.parent].parent].name, "encoder.conv");
}

TEST(Structure, TiesOnlyForIdenticalLargeTensors) {
  std::vector<StructureInput> in = Inputs({"token_embd.weight", "output.weight", "blk.0.attn_norm.weight",
                                           "blk.1.attn_norm.weight"});
  Digest same{};
  same[0] = 7;
  in[0].sha256 = same;
  in[1].sha256 = same;
  Digest ones{};
  ones[0] = 9;
  in[2].sha256 = in[3].sha256 = ones;
  in[2].nbytes = in[3].nbytes = 8192;
  Structure s = DeriveStructure("llama", "m", in);
  EXPECT_TRUE(HasEdge(s, "token_embd.weight", "output.weight", EdgeKind::kTies));
  EXPECT_FALSE(HasEdge(s, "blk.0.attn_norm.weight", "blk.1.attn_norm.weight", EdgeKind::kTies));
}

TEST(Structure, NamesRoundTrip) {
  for (int r = 0; r <= static_cast<int>(Role::kPooler); ++r)
    EXPECT_EQ(RoleFromName(RoleName(static_cast<Role>(r))), static_cast<Role>(r));
  EXPECT_FALSE(RoleFromName("bogus").has_value());
  EXPECT_EQ(EdgeKindFromName("ties"), EdgeKind::kTies);
}

}  // namespace
}  // namespace hart::store

// StructureFromGraph: the component tree and edges of a model whose file
// carries its operator graph (ONNX), instead of guessing them from names.
#include <map>
#include <set>

#include "fmt/format.h"
#include "store/structure.h"

namespace hart::store {

Structure StructureFromGraph(std::string_view model_name,
                             const std::vector<formats::GraphNode>& graph,
                             const std::vector<StructureInput>& tensors) {
  Structure st;
  st.nodes.push_back({ComponentKind::kModel, std::string(model_name), -1, -1, Role::kOther, -1, -1, "", ""});
  st.known_architecture = true;

  // Operators first (all children of the model), so every tensor's parent
  // precedes it.
  std::set<std::string> used;
  std::vector<int> op_node(graph.size());
  for (size_t i = 0; i < graph.size(); ++i) {
    const formats::GraphNode& g = graph[i];
    std::string base = g.name.empty() ? fmt::format("{}_{}", g.op_type, i) : g.name;
    std::string name = "node:" + base;
    if (!used.insert(name).second) {
      name = fmt::format("node:{}#{}", base, i);
      used.insert(name);
    }
    std::string op = g.domain.empty() || g.domain == "ai.onnx" ? g.op_type : g.domain + ":" + g.op_type;
    op_node[i] = static_cast<int>(st.nodes.size());
    st.nodes.push_back({ComponentKind::kBlock, std::move(name), 0, -1, Role::kOther, -1, -1, "", std::move(op)});
  }

  std::map<std::string_view, int> tensor_of;  // initializer name -> input index
  for (size_t t = 0; t < tensors.size(); ++t) tensor_of.emplace(tensors[t].name, static_cast<int>(t));
  std::map<std::string_view, std::vector<int>> producers;  // value -> op nodes
  for (size_t i = 0; i < graph.size(); ++i)
    for (const std::string& v : graph[i].outputs)
      if (!v.empty()) producers[v].push_back(op_node[i]);

  std::vector<std::vector<int>> consumers(tensors.size());
  std::set<std::pair<int, int>> feeds;
  for (size_t i = 0; i < graph.size(); ++i)
    for (const std::string& v : graph[i].inputs) {
      if (v.empty()) continue;  // an omitted optional input
      auto p = producers.find(v);
      if (p != producers.end())
        for (int src : p->second)
          if (src != op_node[i]) feeds.insert({src, op_node[i]});
      auto t = tensor_of.find(v);
      if (t != tensor_of.end()) {
        auto& c = consumers[t->second];
        if (c.empty() || c.back() != op_node[i]) c.push_back(op_node[i]);
      }
    }
  // Initializers of a node's subgraphs (If/Loop/Scan bodies) feed that node.
  for (size_t i = 0; i < graph.size(); ++i)
    for (const std::string& v : graph[i].subgraph_tensors) {
      auto t = tensor_of.find(v);
      if (t == tensor_of.end()) continue;
      auto& c = consumers[t->second];
      if (c.empty() || c.back() != op_node[i]) c.push_back(op_node[i]);
    }

  std::vector<int> tensor_node(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    int parent = consumers[t].empty() ? 0 : consumers[t].front();
    tensor_node[t] = static_cast<int>(st.nodes.size());
    st.nodes.push_back({ComponentKind::kTensor, tensors[t].name, parent, static_cast<int>(t), Role::kOther, -1, -1, "", ""});
  }

  for (size_t n = 1; n < st.nodes.size(); ++n)
    st.edges.push_back({st.nodes[n].parent, static_cast<int>(n), EdgeKind::kContains});
  for (size_t t = 0; t < tensors.size(); ++t)
    for (int op : consumers[t]) st.edges.push_back({tensor_node[t], op, EdgeKind::kFeeds});
  for (const auto& [a, b] : feeds) st.edges.push_back({a, b, EdgeKind::kFeeds});

  // Ties: large tensors with identical bytes (small ones match by chance).
  constexpr Digest kZero{};
  std::map<Digest, std::vector<int>> by_hash;
  for (size_t t = 0; t < tensors.size(); ++t)
    if (tensors[t].sha256 != kZero && tensors[t].nbytes >= kMinTieBytes)
      by_hash[tensors[t].sha256].push_back(tensor_node[t]);
  for (const auto& [h, nodes] : by_hash) TieStar(nodes, st.edges);  // n - 1 edges, not n(n - 1) / 2
  return st;
}

}  // namespace hart::store

// The published tokenizer test vectors of /work/shared/testdata/llama-vocab
// (llama.cpp's ggml-vocab-NAME.gguf with .inp / .out), shared by the GGUF and
// tokenizer.json tests.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "gtest/gtest.h"

namespace hart::runtime::testing {

inline std::string VocabDir() { return std::string(HART_SOURCE_DIR) + "/../shared/testdata/llama-vocab"; }

inline std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct VectorCase {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp holds the strings separated by "\n__ggml_vocab_test__\n" (the file
// ends with one); .out one line of ids per string.
inline std::vector<VectorCase> ReadVectors(const std::string& name) {
  const std::string base = VocabDir() + "/ggml-vocab-" + name + ".gguf";
  const std::string inp = Slurp(base + ".inp");
  const std::string out = Slurp(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    size_t next = inp.find(sep, pos);
    if (next == std::string::npos) next = inp.size();
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VectorCase> cases;
  std::istringstream lines(out);
  std::string line;
  for (const std::string& t : texts) {
    if (!std::getline(lines, line)) break;
    VectorCase c{t, {}};
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << name << ": .inp and .out disagree";
  return cases;
}

inline std::string Escaped(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20) o += fmt::format("\\x{:02x}", c);
    else o += static_cast<char>(c);
  }
  return o;
}

}  // namespace hart::runtime::testing

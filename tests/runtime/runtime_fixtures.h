// Shared helpers of the runtime tests: generating tiny models with
// tests/fixtures/make_tiny_llama.py and reading their expected logits.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/temp_dir.h"

namespace hart::runtime::testing {

inline std::string FixtureRoot() { return hart::testing::ProcessTempDir("hart_runtime"); }

// Runs the generator into FixtureRoot()/name with `args`; returns the directory.
inline std::string MakeFixture(const std::string& name, const std::string& args) {
  std::string dir = FixtureRoot() + "/" + name;
  std::string cmd = fmt::format("/usr/bin/python3 {}/tests/fixtures/make_tiny_llama.py '{}' {}",
                                HART_SOURCE_DIR, dir, args);
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  return dir;
}

struct Expected {
  std::vector<int32_t> tokens;
  int64_t vocab = 0;
  std::vector<float> logits;  // [tokens, vocab]
};

inline Expected ReadExpected(const std::string& dir) {
  Expected e;
  std::ifstream js(dir + "/expected.json");
  nlohmann::json j = nlohmann::json::parse(js, nullptr, false);
  if (j.is_discarded()) return e;
  e.tokens = j["tokens"].get<std::vector<int32_t>>();
  e.vocab = j["vocab"].get<int64_t>();
  e.logits.resize(e.tokens.size() * e.vocab);
  std::ifstream bin(dir + "/logits.bin", std::ios::binary);
  bin.read(reinterpret_cast<char*>(e.logits.data()), static_cast<std::streamsize>(e.logits.size() * 4));
  return e;
}

}  // namespace hart::runtime::testing

// grammar_bench: the cost of one structured-output mask step (runtime/grammar)
// over a real vocabulary, against the naive way measured in the same run.
//
//   grammar_bench VOCAB.gguf [--steps N]
//
// For each grammar state (the start of an object, inside a string value,
// inside a number, a key of a free-form object) it times GrammarProcessor::Apply
// (a walk of the token trie that stops at the first byte the grammar
// refuses) and the baseline that feeds every token's bytes to the automaton
// from scratch (vocab x length), and checks both allow the same tokens.
// Prints one JSON line per state: vocab size, allowed tokens, microseconds
// per step of each, and the speed-up.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/grammar/json_grammar.h"
#include "runtime/grammar/token_mask.h"
#include "runtime/tokenizer.h"

namespace g = hart::runtime::grammar;
using nlohmann::json;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: grammar_bench VOCAB.gguf [--steps N]\n");
    return 2;
  }
  int steps = 20;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--steps") steps = std::atoi(argv[i + 1]);
  auto tok = hart::runtime::Tokenizer::FromGgufFile(argv[1]);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto ix = g::TokenIndex::FromTokenizer(**tok);
  const double index_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const json object = json::parse(R"({"type":"object","properties":{"name":{"type":"string"},
      "age":{"type":"integer"}},"required":["name","age"]})");
  struct Case {
    const char* name;
    std::shared_ptr<const g::JsonGrammar> grammar;
    std::string prefix;
  };
  const Case cases[] = {
      {"object_start", *g::JsonGrammar::FromSchema(object), ""},
      {"in_string", *g::JsonGrammar::FromSchema(object), "{\"age\":12,\"name\":\"ab"},
      {"in_number", *g::JsonGrammar::FromSchema(object), "{\"age\":12"},
      {"free_key", g::JsonGrammar::AnyObject(), "{\"k"},
  };
  std::vector<float> logits(ix->size());
  for (const Case& c : cases) {
    g::GrammarProcessor p(c.grammar, ix, false, -1);
    g::State state = c.grammar->Start(), tmp;
    if (!c.grammar->AdvanceBytes(&state, c.prefix, &tmp)) return 1;
    // Reach the state through one-byte tokens.
    for (char ch : c.prefix) {
      int32_t id = -1;
      for (int32_t i = 0; i < ix->size() && id < 0; ++i)
        if (ix->kind(i) == g::TokenIndex::kText && ix->bytes(i) == std::string(1, ch)) id = i;
      if (id < 0 || !p.Accept(id).ok()) {
        std::fprintf(stderr, "no one-byte token for '%c'\n", ch);
        return 1;
      }
    }
    auto a = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
      std::fill(logits.begin(), logits.end(), 0.f);
      if (!p.Apply(logits).ok()) return 1;
    }
    const double trie_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count() / steps;
    const std::vector<int32_t> allowed = p.Allowed();
    // Baseline: every token's bytes from the state, one token at a time.
    std::vector<int32_t> naive;
    a = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
      naive.clear();
      g::State st, scratch;
      for (int32_t i = 0; i < ix->size(); ++i) {
        if (ix->kind(i) != g::TokenIndex::kText || ix->bytes(i).empty()) continue;
        st = state;
        if (c.grammar->AdvanceBytes(&st, ix->bytes(i), &scratch)) naive.push_back(i);
      }
    }
    const double naive_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count() / steps;
    const bool same = naive == allowed;
    std::printf("%s\n", json({{"vocab", argv[1]}, {"tokens", ix->size()}, {"state", c.name},
                              {"allowed", allowed.size()}, {"trie_us", trie_us}, {"naive_us", naive_us},
                              {"speedup", naive_us / trie_us}, {"same_mask", same}, {"index_ms", index_ms}})
                            .dump()
                            .c_str());
    if (!same) return 1;
  }
  return 0;
}

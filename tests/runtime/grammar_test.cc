// runtime/grammar: JSON Schema compiled to a byte-level pushdown automaton,
// and the token mask over vocabularies of single bytes, of multi-symbol
// tokens, of tokens that split UTF-8 characters and of SentencePiece-style
// pieces with a leading space. A "model" here picks uniformly at random
// among the tokens the mask allows (whatever it wants, the constraint must
// hold); every output must parse and validate (tests/runtime/json_schema_validator.h).
#include <filesystem>
#include <random>

#include "gtest/gtest.h"
#include "runtime/grammar/json_grammar.h"
#include "runtime/grammar/token_mask.h"
#include "tests/runtime/json_schema_validator.h"
#include "tests/runtime/vocab_vectors.h"

namespace hart::runtime::grammar {
namespace {

using nlohmann::json;

std::shared_ptr<const TokenIndex> ByteVocab() {
  std::vector<std::string> bytes;
  std::vector<TokenIndex::Kind> kinds;
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, static_cast<char>(b))), kinds.push_back(TokenIndex::kText);
  bytes.push_back(""), kinds.push_back(TokenIndex::kEog);
  return std::make_shared<TokenIndex>(bytes, kinds);
}

// Single bytes plus merged pieces spanning several grammar symbols, pieces
// with a leading space, the two halves of "é" as separate tokens, and a
// control token that must never be allowed.
std::shared_ptr<const TokenIndex> MergedVocab() {
  std::vector<std::string> bytes;
  std::vector<TokenIndex::Kind> kinds;
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, static_cast<char>(b))), kinds.push_back(TokenIndex::kText);
  for (const char* t : {"{\"", "\":", "\":\"", "\",\"", "\"}", "},{", "]}", "[{", "true", "false,", "null",
                        "name", "age", " {", " \"", " true", "12", "3.5e", "-0", "red\"", "\\u00e9", "\\ud800",
                        "\"\xC3", "\xA9\"", "é", "}]}", ",\"", " "}) {
    bytes.push_back(t), kinds.push_back(TokenIndex::kText);
  }
  bytes.push_back("<|ctrl|>"), kinds.push_back(TokenIndex::kBanned);
  bytes.push_back(""), kinds.push_back(TokenIndex::kEog);
  return std::make_shared<TokenIndex>(bytes, kinds);
}

// Samples like a model at temperature 1 with random logits.
struct Sampled {
  std::string text;
  bool ended = false;  // finished (complete), not cut by the budget
  int64_t tokens = 0;
};
Sampled Sample(std::shared_ptr<const JsonGrammar> g, std::shared_ptr<const TokenIndex> ix, uint64_t seed,
           int64_t budget, bool strip = false) {
  GrammarProcessor p(g, ix, strip, budget);
  std::mt19937_64 rng(seed);
  Sampled r;
  std::vector<float> logits(ix->size());
  while (r.tokens < budget && !p.Finished()) {
    std::normal_distribution<float> nd(0, 2);
    for (float& l : logits) l = nd(rng);
    absl::Status st = p.Apply(logits);
    EXPECT_TRUE(st.ok()) << st << " after " << p.text();
    if (!st.ok()) break;
    // Softmax sampling over what is left.
    std::vector<double> w(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) w[i] = std::isinf(logits[i]) ? 0 : std::exp(logits[i]);
    std::discrete_distribution<int32_t> dd(w.begin(), w.end());
    const int32_t id = dd(rng);
    EXPECT_TRUE(p.Accept(id).ok());
    ++r.tokens;
    if (ix->kind(id) == TokenIndex::kEog) break;
  }
  r.text = p.text();
  r.ended = p.Finished();
  return r;
}

TEST(JsonGrammar, RandomSamplingAlwaysValidatesAcrossSchemasAndSeeds) {
  int checked = 0;
  for (const json& schema : hart::testing::TestSchemas()) {
    auto g = JsonGrammar::FromSchema(schema);
    ASSERT_TRUE(g.ok()) << g.status() << " " << schema.dump();
    for (auto vocab : {ByteVocab(), MergedVocab()}) {
      for (uint64_t seed = 1; seed <= 12; ++seed) {
        Sampled r = Sample(*g, vocab, seed, 120);
        ASSERT_TRUE(r.ended) << schema.dump() << " seed " << seed << ": " << r.text;
        json v = json::parse(r.text, nullptr, false);
        ASSERT_FALSE(v.is_discarded()) << r.text;
        EXPECT_EQ(hart::testing::ValidateJson(v, schema, schema), "") << r.text;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(hart::testing::TestSchemas().size()) * 2 * 12);
}

TEST(JsonGrammar, AnyObjectIsAnObjectAndBudgetClosesIt) {
  auto g = JsonGrammar::AnyObject();
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    for (int64_t budget : {2, 7, 40}) {
      Sampled r = Sample(g, MergedVocab(), seed, budget);
      ASSERT_TRUE(r.ended) << "budget " << budget << ": " << r.text;
      EXPECT_LE(r.tokens, budget);
      json v = json::parse(r.text, nullptr, false);
      ASSERT_TRUE(v.is_object()) << r.text;
    }
  }
}

TEST(JsonGrammar, MaskAllowsExactlyTheTokensThatContinue) {
  auto g = JsonGrammar::FromSchema(json::parse(R"({"type":"object","properties":{"name":{"type":"string"}},
                                                   "required":["name"],"additionalProperties":false})"));
  ASSERT_TRUE(g.ok());
  auto ix = MergedVocab();
  GrammarProcessor p(*g, ix, false, -1);
  std::vector<float> logits(ix->size(), 0);
  ASSERT_TRUE(p.Apply(logits).ok());
  std::set<std::string> allowed;
  for (int32_t id : p.Allowed()) allowed.insert(ix->bytes(id));
  EXPECT_EQ(allowed, (std::set<std::string>{"{", "{\""}));  // not " {", "}", EOG or the control token
  // Through a multi-symbol token, then the key by pieces.
  auto id_of = [&](const std::string& s) {
    for (int32_t i = 0; i < ix->size(); ++i)
      if (ix->bytes(i) == s && ix->kind(i) == TokenIndex::kText) return i;
    return -1;
  };
  ASSERT_TRUE(p.Accept(id_of("{\"")).ok());
  ASSERT_TRUE(p.Accept(id_of("name")).ok());
  ASSERT_TRUE(p.Apply(logits).ok());
  allowed.clear();
  for (int32_t id : p.Allowed()) allowed.insert(ix->bytes(id));
  EXPECT_EQ(allowed, (std::set<std::string>{"\"", "\":", "\":\""}));
  ASSERT_TRUE(p.Accept(id_of("\":\"")).ok());
  // Inside the string: the halves of é only in order; \ud800 never.
  ASSERT_TRUE(p.Apply(logits).ok());
  auto ids = p.Allowed();
  auto has = [&](const std::string& s) { return std::count(ids.begin(), ids.end(), id_of(s)) > 0; };
  EXPECT_TRUE(has("\xC3"));
  EXPECT_FALSE(has("\xA9"));
  EXPECT_FALSE(has("\xA9\""));
  EXPECT_TRUE(has("\\u00e9"));
  EXPECT_FALSE(has("\\ud800"));
  EXPECT_FALSE(has("\n"));
  EXPECT_FALSE(has("<|ctrl|>"));
  EXPECT_FALSE(p.Accept(id_of("\xA9")).ok());  // a continuation byte with no lead
}

TEST(JsonGrammar, SplitUtf8AndEndOfGeneration) {
  auto g = JsonGrammar::FromSchema(json::parse(R"({"type":"object","properties":{"s":{"type":"string"}},"required":["s"]})"));
  ASSERT_TRUE(g.ok());
  auto ix = MergedVocab();
  auto id_of = [&](const std::string& s) {
    for (int32_t i = 0; i < ix->size(); ++i)
      if (ix->bytes(i) == s && ix->kind(i) == TokenIndex::kText) return i;
    return -1;
  };
  const int32_t eog = ix->size() - 1;
  GrammarProcessor p(*g, ix, false, -1);
  std::vector<float> logits(ix->size(), 0);
  for (const char* t : {"{\"", "s", "\":", "\"\xC3"}) ASSERT_TRUE(p.Accept(id_of(t)).ok()) << t;
  ASSERT_TRUE(p.Apply(logits).ok());
  auto ids = p.Allowed();
  EXPECT_EQ(std::count(ids.begin(), ids.end(), eog), 0);  // not complete yet
  EXPECT_EQ(std::count(ids.begin(), ids.end(), id_of("\xA9\"")), 1);
  ASSERT_TRUE(p.Accept(id_of("\xA9\"")).ok());
  EXPECT_FALSE(p.Finished());
  ASSERT_TRUE(p.Accept(id_of("}")).ok());
  EXPECT_TRUE(p.Finished());
  EXPECT_EQ(json::parse(p.text())["s"], "é");
}

TEST(JsonGrammar, LeadingSpaceOfTheFirstPieceIsStripped) {
  // With strip_first_space, " {" is "{" for the first token and " true" is "true".
  auto g = JsonGrammar::FromSchema(json::parse(R"({"type":"boolean"})"));
  ASSERT_TRUE(g.ok());
  auto ix = MergedVocab();
  GrammarProcessor p(*g, ix, /*strip_first_space=*/true, -1);
  std::vector<float> logits(ix->size(), 0);
  ASSERT_TRUE(p.Apply(logits).ok());
  std::set<std::string> allowed;
  for (int32_t id : p.Allowed()) allowed.insert(ix->bytes(id));
  EXPECT_TRUE(allowed.count(" true"));
  EXPECT_TRUE(allowed.count("true"));
  EXPECT_FALSE(allowed.count(" "));
  EXPECT_FALSE(allowed.count(" {"));
  // Without stripping, a leading space is not JSON this grammar writes.
  GrammarProcessor q(*g, ix, false, -1);
  ASSERT_TRUE(q.Apply(logits).ok());
  for (int32_t id : q.Allowed()) EXPECT_NE(ix->bytes(id)[0], ' ');
}

TEST(JsonGrammar, NumbersAtTheTopEndOnlyWhenComplete) {
  auto g = JsonGrammar::FromSchema(json::parse(R"({"type":"number"})"));
  ASSERT_TRUE(g.ok());
  State s = (*g)->Start(), tmp;
  EXPECT_FALSE((*g)->CanEnd(s));
  ASSERT_TRUE((*g)->AdvanceBytes(&s, "-1.", &tmp));
  EXPECT_FALSE((*g)->CanEnd(s));
  ASSERT_TRUE((*g)->AdvanceBytes(&s, "5e+3", &tmp));
  EXPECT_TRUE((*g)->CanEnd(s));
  EXPECT_FALSE((*g)->Done(s));  // more digits could follow
  State t = (*g)->Start();
  EXPECT_FALSE((*g)->AdvanceBytes(&t, "01", &tmp));
  auto i = JsonGrammar::FromSchema(json::parse(R"({"type":"integer"})"));
  State u = (*i)->Start();
  EXPECT_FALSE((*i)->AdvanceBytes(&u, "1.5", &tmp));
}

TEST(JsonGrammar, UnsupportedFeaturesNameTheSchemaPath) {
  struct Case {
    const char* schema;
    const char* want;
  };
  const Case cases[] = {
      {R"({"type":"string","pattern":"^a"})", "schema #: 'pattern' is not supported"},
      {R"({"type":"object","properties":{"a":{"type":"integer","minimum":2}}})", "#/properties/a: 'minimum'"},
      {R"({"type":"string","minLength":3,"maxLength":2})", "#/maxLength: less than minLength"},
      {R"({"oneOf":[{"type":"string"},{"type":"string","maxLength":2}]})", "#/oneOf: branches 0 and 1 may both match"},
      {R"({"oneOf":[{"type":"integer"},{"type":"number"}]})", "#/oneOf: branches 0 and 1"},
      {R"({"oneOf":[{"type":"object","properties":{"k":{"const":1}},"required":["k"]},
          {"type":"object","properties":{"k":{"enum":[2,1]}},"required":["k"]}]})", "branches 0 and 1"},
      {R"({"type":"array","prefixItems":[{"type":"null"}],"items":false,"minItems":2})", "#/minItems: more items"},
      {R"({"type":"array","prefixItems":[{"type":"null"}],"maxItems":40})", "at most 32 positions"},
      {R"({"type":"object","properties":{"d":{"type":"string","format":"date"}}})", "#/properties/d: 'format'"},
      {R"({"type":"array","items":[{"type":"string"}]})", "#/items: tuple items"},
      {R"({"type":"wat"})", "#/type: unknown type 'wat'"},
      {R"({"$ref":"#/$defs/missing"})", "'#/$defs/missing' does not resolve"},
      {R"({"$ref":"http://x/y"})", "only local references"},
      {R"({"type":"object","required":["x"]})", "'x' is not in properties"},
      {R"({"type":"array","minItems":3,"maxItems":2})", "#/maxItems: less than minItems"},
      {R"({"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}},"required":["c"]}},
          "$ref":"#/$defs/n"})", "no finite value"},
      {R"(false)", "allows no value"},
      {R"({"anyOf":[]})", "#/anyOf: expected a non-empty array"},
  };
  for (const Case& c : cases) {
    auto g = JsonGrammar::FromSchema(json::parse(c.schema));
    ASSERT_FALSE(g.ok()) << c.schema;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(g.status().message()).find(c.want), std::string::npos) << g.status() << " want " << c.want;
  }
}

// Real vocabularies (../shared/testdata/llama-vocab): SentencePiece with
// its U+2581 spaces and <0xXX> byte tokens, byte-level BPE. The text the
// tokenizer decodes from the sampled ids is exactly what the grammar
// accepted, and it validates.
TEST(JsonGrammar, RealTokenizersDecodeToValidJson) {
  const std::vector<json> schemas = hart::testing::TestSchemas();
  for (const char* name : {"llama-spm", "gpt-2", "phi-3", "deepseek-llm"}) {
    const std::string path = testing::VocabDir() + "/ggml-vocab-" + name + ".gguf";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
    auto tok = Tokenizer::FromGgufFile(path);
    ASSERT_TRUE(tok.ok()) << tok.status();
    auto ix = TokenIndex::FromTokenizer(**tok);
    for (size_t k : {0, 3, 7, 9, 10}) {
      auto g = JsonGrammar::FromSchema(schemas[k]);
      ASSERT_TRUE(g.ok());
      for (uint64_t seed = 1; seed <= 1; ++seed) {
        const bool strip = (*tok)->StripsLeadingSpaceAfter({});
        GrammarProcessor p(*g, ix, strip, 60);
        std::mt19937_64 rng(seed * 7919 + k);
        std::vector<int32_t> ids;
        std::vector<float> logits(ix->size());
        while (ids.size() < 60 && !p.Finished()) {
          for (float& l : logits) l = static_cast<float>(rng() >> 40);
          ASSERT_TRUE(p.Apply(logits).ok()) << name << ": " << p.text();
          int32_t best = 0;
          for (int32_t i = 1; i < ix->size(); ++i)
            if (logits[i] > logits[best]) best = i;
          ASSERT_TRUE(p.Accept(best).ok());
          if (ix->kind(best) == TokenIndex::kEog) break;
          ids.push_back(best);
        }
        ASSERT_TRUE(p.Finished()) << name << ": " << p.text();
        StreamDecoder dec(**tok);
        std::string text;
        for (int32_t id : ids) text += dec.Push(id);
        text += dec.Flush();
        EXPECT_EQ(text, p.text()) << name;
        json v = json::parse(text, nullptr, false);
        ASSERT_FALSE(v.is_discarded()) << name << ": " << text;
        EXPECT_EQ(hart::testing::ValidateJson(v, schemas[k], schemas[k]), "") << name << ": " << text;
      }
    }
  }
}

// tool_choice auto where the call is the whole reply (mistral here: "[" or
// the tag, then an array of calls): undecided, only tokens that keep the
// reply a text, a start of the tag or a valid start of the call; a reply
// that opens the call is constrained to its end and then Finished.
TEST(JsonGrammar, OpeningGrammarConstrainsAReplyThatOpensACall) {
  JsonGrammar::Builder b;
  auto args = b.Schema(json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})"));
  ASSERT_TRUE(args.ok());
  const uint32_t call = b.Object({{"name", b.Literal("\"f\"")}, {"arguments", *args}});
  auto g = b.Build(b.Array(call, 1, -1));
  ASSERT_TRUE(g.ok()) << g.status();
  auto ix = MergedVocab();
  auto id_of = [&](const std::string& s) {
    for (int32_t i = 0; i < ix->size(); ++i)
      if (ix->bytes(i) == s && ix->kind(i) == TokenIndex::kText) return i;
    return -1;
  };
  const int32_t eog = ix->size() - 1;
  auto piece = [&](int32_t id) { return id == ix->size() - 2 ? std::string("<|ctrl|>") : ix->bytes(id); };
  std::vector<float> logits(ix->size(), 0);
  auto allowed = [&](OpeningGrammarProcessor& p, const std::string& t) {
    std::fill(logits.begin(), logits.end(), 0.f);
    EXPECT_TRUE(p.Apply(logits).ok());
    const int32_t id = t == "EOG" ? eog : id_of(t);
    return !std::isinf(logits[id]);
  };
  {
    OpeningGrammarProcessor p(*g, ix, "[TC]", "[", piece, false, -1);
    EXPECT_TRUE(allowed(p, "["));
    EXPECT_TRUE(allowed(p, "[{"));
    EXPECT_TRUE(allowed(p, " {"));  // "{" opens no call here: text
    EXPECT_TRUE(allowed(p, "EOG"));
    ASSERT_TRUE(p.Accept(id_of(" ")).ok());  // leading whitespace decides nothing
    ASSERT_TRUE(p.Accept(id_of("[")).ok());
    EXPECT_FALSE(p.active());
    EXPECT_TRUE(allowed(p, "{"));
    EXPECT_TRUE(allowed(p, "T"));      // maybe the tag
    EXPECT_FALSE(allowed(p, "x"));     // neither the tag nor a call
    EXPECT_FALSE(allowed(p, "]}"));
    EXPECT_FALSE(allowed(p, "EOG"));   // not ended on a bare "["
    ASSERT_TRUE(p.Accept(id_of("{")).ok());
    EXPECT_TRUE(p.active());
    EXPECT_FALSE(allowed(p, "}"));
    for (const char* t : {"\"", "name", "\":", "\"", "f", "\",\"", "a", "r", "g", "u", "m", "e", "n", "t", "s",
                          "\":", "{\"", "a", "\":", "12", "}", "}", "]"})
      ASSERT_TRUE(p.Accept(id_of(t)).ok()) << t;
    EXPECT_TRUE(p.Finished());
  }
  {
    // Text: nothing masked once the first visible character is not an opener.
    OpeningGrammarProcessor p(*g, ix, "[TC]", "[", piece, false, -1);
    ASSERT_TRUE(p.Accept(id_of("name")).ok());
    EXPECT_TRUE(allowed(p, "["));
    EXPECT_TRUE(allowed(p, "x"));
    ASSERT_TRUE(p.Accept(id_of("[")).ok());
    EXPECT_FALSE(p.active());
    EXPECT_FALSE(p.Finished());
  }
}

// tool_choice auto: free text until "<tool_call>", then only a call of the
// grammar until it is complete, then free text again.
TEST(JsonGrammar, TriggeredGrammarConstrainsOnlyWhatFollowsTheTrigger) {
  JsonGrammar::Builder b;
  auto args = b.Schema(json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})"));
  ASSERT_TRUE(args.ok());
  const uint32_t call = b.Object({{"name", b.Literal("\"f\"")}, {"arguments", *args}});
  auto g = b.Build(b.Union({b.Sequence({b.Literal("\n"), call}), call}));
  ASSERT_TRUE(g.ok()) << g.status();
  auto ix = MergedVocab();
  TriggeredGrammarProcessor p(*g, ix, "<tool_call>", [&](int32_t id) { return ix->bytes(id); }, false, -1);
  std::vector<float> logits(ix->size(), 0);
  auto free = [&]() {
    std::fill(logits.begin(), logits.end(), 0.f);
    EXPECT_TRUE(p.Apply(logits).ok());
    return std::none_of(logits.begin(), logits.end(), [](float l) { return std::isinf(l); });
  };
  for (char c : std::string("ok <tool_call")) {
    EXPECT_TRUE(free());
    ASSERT_TRUE(p.Accept(static_cast<uint8_t>(c)).ok());
  }
  ASSERT_TRUE(p.Accept('>').ok());
  ASSERT_TRUE(p.active());
  std::mt19937_64 rng(3);
  std::string after;
  while (p.active()) {
    for (float& l : logits) l = static_cast<float>(rng() >> 40);
    ASSERT_TRUE(p.Apply(logits).ok());
    int32_t best = 0;
    for (int32_t i = 1; i < ix->size(); ++i)
      if (logits[i] > logits[best]) best = i;
    ASSERT_TRUE(p.Accept(best).ok());
    after += ix->bytes(best);
    ASSERT_LT(after.size(), 400u);
  }
  json v = json::parse(after, nullptr, false);
  ASSERT_TRUE(v.is_object()) << after;
  EXPECT_EQ(v["name"], "f");
  EXPECT_TRUE(v["arguments"]["a"].is_number_integer()) << after;
  EXPECT_TRUE(free());  // the model closes the call itself
}

TEST(LogitBias, BansAndBoosts) {
  LogitBiasProcessor p({{1, -100.f}, {2, 5.f}, {99, 3.f}});
  std::vector<float> l = {0, 0, 0};
  ASSERT_TRUE(p.Apply(l).ok());
  EXPECT_TRUE(std::isinf(l[1]) && l[1] < 0);
  EXPECT_EQ(l[2], 5.f);
  EXPECT_EQ(l[0], 0.f);
}

}  // namespace
}  // namespace hart::runtime::grammar

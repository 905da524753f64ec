// Tokenizers shared between the models of one registry (runtime::
// TokenizerCache): versions whose weights carry the same tokenizer inputs
// (a fine-tune and its base; the same llama2.c or Hugging Face tokenizer
// files under another path) hold one Tokenizer object, counted once in the
// registry's tokenizer bytes; the last model to go frees it. Models whose
// vocabularies differ get their own. The digest covers exactly what the
// tokenizer is built from (tokenizer.* keys, not the architecture or
// general.*). One tokenizer encodes from several threads at once as it does
// alone, and Tokenizer::memory_bytes() is checked against the heap that
// building real vocabularies takes (glibc's mallinfo2).
#include <malloc.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "app/models.h"
#include "formats/gguf.h"
#include "gtest/gtest.h"
#include "runtime/tokenizer_cache.h"
#include "runtime/weight_source.h"
#include "store/store.h"
#include "tests/runtime/finetune_fixture.h"
#include "tests/runtime/ingest_fixture.h"
#include "tests/runtime/runtime_fixtures.h"
#include "tests/runtime/vocab_vectors.h"

namespace hart::app {
namespace {

namespace fs = std::filesystem;
namespace rt = hart::runtime;

using rt::testing::Slurp;

void Spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A copy of `in` with the GGUF string `from` (length-prefixed, so only a
// metadata string matches) replaced by `to` of the same length.
void PatchGgufString(const std::string& in, const std::string& out, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string bytes = Slurp(in);
  const uint64_t n = from.size();
  const std::string key = std::string(reinterpret_cast<const char*>(&n), 8) + from;
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos) << from << " in " << in;
  bytes.replace(at + 8, n, to);
  Spit(out, bytes);
}

class TokenizerShare : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string root = rt::testing::FixtureRoot();
    const std::string base = rt::testing::MakeFixture("tok_base", "--type f32 --layers 2") + "/model.gguf";
    std::vector<std::pair<std::string, std::string>> files = {{"base", base}};
    for (auto [name, tensor] : {std::pair{"ft-a", "ffn_down"}, std::pair{"ft-b", "attn_q"}}) {
      const std::string path = root + "/tok_" + name + ".gguf";
      auto n = rt::testing::WriteFineTune(base, path,
                                          [&](const std::string& t) { return t.find(tensor) != std::string::npos; });
      ASSERT_TRUE(n.ok()) << n.status();
      files.emplace_back(name, path);
    }
    // Another vocabulary (token 0 spelled otherwise), same weights.
    PatchGgufString(base, root + "/tok_vocab.gguf", "<unk>", "<UNK>");
    files.emplace_back("vocab", root + "/tok_vocab.gguf");
    // Another general.name (not a tokenizer key), same tokenizer.
    PatchGgufString(base, root + "/tok_named.gguf", "tiny-llama", "tiny-LLAMA");
    files.emplace_back("named", root + "/tok_named.gguf");

    const std::string dir = root + "/tok_store";
    ASSERT_TRUE(store::Store::Init(dir).ok());
    auto st = store::Store::Open(dir);
    ASSERT_TRUE(st.ok()) << st.status();
    store_ = new std::shared_ptr<store::Store>(std::move(*st));
    for (const auto& [name, path] : files) {
      auto r = rt::testing::IngestGguf(**store_, path, name);
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  static void TearDownTestSuite() { delete store_; }

  static RegistryOptions Options() {
    RegistryOptions o;
    o.load.max_context = 32;
    o.allow_paths = true;
    return o;
  }
  static const LoadedModelInfo* Find(const RegistryStats& st, const std::string& ref) {
    for (const auto& m : st.models)
      if (m.ref == ref) return &m;
    return nullptr;
  }

  static std::shared_ptr<store::Store>* store_;
};
std::shared_ptr<store::Store>* TokenizerShare::store_ = nullptr;

TEST_F(TokenizerShare, FineTunesOfOneBaseHoldOneTokenizerCountedOnce) {
  ModelRegistry reg(*store_, Options());
  auto base = reg.Get("base");
  ASSERT_TRUE(base.ok()) << base.status();
  const rt::Tokenizer* tok = (*base)->tokenizer.get();
  ASSERT_NE(tok, nullptr);
  const uint64_t bytes = tok->memory_bytes();
  EXPECT_GT(bytes, 259u * 32);  // 259 tokens, each a text, a piece and an index node at least
  RegistryStats st = reg.Stats();
  EXPECT_EQ(st.tokenizer_bytes, bytes);
  EXPECT_EQ(st.tokenizer_saved_bytes, 0u);
  EXPECT_EQ(st.tokenizers, 1u);
  EXPECT_FALSE((*base)->residency().tokenizer_shared);

  auto a = reg.Get("ft-a");
  auto b = reg.Get("ft-b");
  auto named = reg.Get("named");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(named.ok()) << named.status();
  // The same object, not an equal copy.
  EXPECT_EQ((*a)->tokenizer.get(), tok);
  EXPECT_EQ((*b)->tokenizer.get(), tok);
  EXPECT_EQ((*named)->tokenizer.get(), tok);
  st = reg.Stats();
  EXPECT_EQ(st.tokenizer_bytes, bytes);
  EXPECT_EQ(st.tokenizer_saved_bytes, 3 * bytes);
  EXPECT_EQ(st.tokenizers, 1u);
  ASSERT_EQ(st.models.size(), 4u);
  for (const auto& m : st.models) {
    EXPECT_EQ(m.residency.tokenizer_bytes, bytes) << m.ref;
    EXPECT_TRUE(m.residency.tokenizer_shared) << m.ref;
  }
  const nlohmann::json j = st.ToJson();
  EXPECT_EQ(j["tokenizer_bytes"], bytes);
  EXPECT_EQ(j["tokenizer_saved_bytes"], 3 * bytes);
  EXPECT_EQ(j["models"][0]["tokenizer_bytes"], bytes);
  EXPECT_EQ(j["models"][0]["tokenizer_shared"], true);

  // Each model still tokenizes as the base does.
  EXPECT_EQ((*a)->tokenizer->Encode("Once upon a time", true), tok->Encode("Once upon a time", true));

  // Unloading models keeps the tokenizer while one holds it; the last frees it.
  std::weak_ptr<const rt::Tokenizer> weak = (*base)->tokenizer;
  named->reset();
  b->reset();
  ASSERT_TRUE(reg.Unload("named"));
  ASSERT_TRUE(reg.Unload("ft-b"));
  base->reset();
  ASSERT_TRUE(reg.Unload("base"));
  EXPECT_FALSE(weak.expired());
  st = reg.Stats();
  EXPECT_EQ(st.tokenizer_bytes, bytes);
  EXPECT_EQ(st.tokenizer_saved_bytes, 0u);
  EXPECT_FALSE(Find(st, "ft-a@1")->residency.tokenizer_shared);
  a->reset();
  ASSERT_TRUE(reg.Unload("ft-a"));
  EXPECT_TRUE(weak.expired());
  st = reg.Stats();
  EXPECT_EQ(st.tokenizer_bytes, 0u);
  EXPECT_EQ(st.tokenizers, 0u);

  // Loaded again, it is built again (a new object) and counted again.
  auto again = reg.Get("ft-b");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(reg.Stats().tokenizer_bytes, (*again)->tokenizer->memory_bytes());
}

TEST_F(TokenizerShare, ModelsWithDifferentVocabulariesGetTheirOwn) {
  ModelRegistry reg(*store_, Options());
  auto base = reg.Get("base");
  auto other = reg.Get("vocab");
  ASSERT_TRUE(base.ok()) << base.status();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE((*base)->tokenizer.get(), (*other)->tokenizer.get());
  EXPECT_EQ((*base)->tokenizer->TokenText(0), "<unk>");
  EXPECT_EQ((*other)->tokenizer->TokenText(0), "<UNK>");
  const RegistryStats st = reg.Stats();
  EXPECT_EQ(st.tokenizers, 2u);
  EXPECT_EQ(st.tokenizer_bytes, (*base)->tokenizer->memory_bytes() + (*other)->tokenizer->memory_bytes());
  EXPECT_EQ(st.tokenizer_saved_bytes, 0u);
  EXPECT_FALSE((*base)->residency().tokenizer_shared);
  EXPECT_FALSE((*other)->residency().tokenizer_shared);

  // A model loaded without a registry builds its own.
  auto alone = LoadModel("base", *store_, ModelLoadOptions{.max_context = 32});
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_NE((*alone)->tokenizer.get(), (*base)->tokenizer.get());
}

// The digest covers what FromGguf reads and nothing else.
TEST_F(TokenizerShare, GgufDigestCoversExactlyTheTokenizerKeys) {
  auto md = formats::ReadGgufMetadata(rt::testing::FixtureRoot() + "/tok_base/model.gguf");
  ASSERT_TRUE(md.ok()) << md.status();
  const std::string d0 = rt::GgufTokenizerDigest(*md);
  EXPECT_EQ(d0.size(), 64u);
  auto with = [&](const std::function<void(formats::GgufMetadata&)>& change) {
    formats::GgufMetadata m = *md;
    change(m);
    return rt::GgufTokenizerDigest(m);
  };
  auto entry = [](formats::GgufMetadata& m, const std::string& key) -> formats::GgufValue& {
    for (auto& kv : m.entries)
      if (kv.key == key) return kv.value;
    m.entries.push_back({key, {}});
    return m.entries.back().value;
  };
  // Not read by the tokenizer: the same digest.
  EXPECT_EQ(with([&](auto& m) { entry(m, "general.name").value = std::string("a fine-tune"); }), d0);
  EXPECT_EQ(with([&](auto& m) { entry(m, "llama.block_count").value = uint64_t{99}; }), d0);
  // Read by it: another digest.
  EXPECT_NE(with([&](auto& m) { entry(m, "tokenizer.ggml.bos_token_id").value = uint64_t{2}; }), d0);
  EXPECT_NE(with([&](auto& m) { entry(m, "tokenizer.ggml.add_bos_token").value = false; }), d0);
  EXPECT_NE(with([&](auto& m) {
              m.entries.push_back({"tokenizer.chat_template", {formats::GgufType::kString, std::string("{{x}}")}});
            }),
            d0);
  EXPECT_NE(with([&](auto& m) {
              auto& toks = std::get<formats::GgufArray>(entry(m, "tokenizer.ggml.tokens").value);
              std::get<std::string>(toks.items[3].value).push_back('x');
            }),
            d0);
  // A score's value, not only its presence.
  EXPECT_NE(with([&](auto& m) {
              auto& scores = std::get<formats::GgufArray>(entry(m, "tokenizer.ggml.scores").value);
              scores.items[5].value = 0.5;
            }),
            d0);
  // general.name enters only as "is phi-3" (its added tokens strip spaces).
  EXPECT_NE(with([&](auto& m) { entry(m, "general.name").value = std::string("Phi-3 mini"); }), d0);
}

// llama2.c checkpoints and Hugging Face directories: the same tokenizer
// files under other paths share; other tokenizer files do not.
TEST_F(TokenizerShare, FileModelsShareByTheirTokenizerFiles) {
  const std::string root = rt::testing::FixtureRoot();
  const std::string tiny = std::string(HART_SOURCE_DIR) + "/../shared/testdata/tinystories";
  if (!fs::exists(tiny + "/stories260K.bin")) GTEST_SKIP() << "no " << tiny;
  fs::create_directories(root + "/l2c_copy");
  fs::copy_file(tiny + "/stories260K.bin", root + "/l2c_copy/stories260K.bin", fs::copy_options::overwrite_existing);
  fs::copy_file(tiny + "/tok512.bin", root + "/l2c_copy/tok512.bin", fs::copy_options::overwrite_existing);

  const std::string hf = rt::testing::MakeFixture("tok_hf", "--format hf --layers 1");
  fs::copy(hf, root + "/tok_hf_copy", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  fs::copy(hf, root + "/tok_hf_cfg", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::string cfg = Slurp(root + "/tok_hf_cfg/tokenizer_config.json");
  const size_t at = cfg.find("\"add_bos_token\": true");
  ASSERT_NE(at, std::string::npos) << cfg;
  cfg.replace(at, 21, "\"add_bos_token\": false");
  Spit(root + "/tok_hf_cfg/tokenizer_config.json", cfg);

  ModelRegistry reg(nullptr, Options());
  auto get = [&](const std::string& path) {
    auto m = reg.Get(path);
    EXPECT_TRUE(m.ok()) << path << ": " << m.status();
    return m.ok() ? *m : nullptr;
  };
  auto l1 = get(tiny + "/stories260K.bin"), l2 = get(root + "/l2c_copy/stories260K.bin");
  auto h1 = get(hf), h2 = get(root + "/tok_hf_copy"), h3 = get(root + "/tok_hf_cfg");
  ASSERT_TRUE(l1 && l2 && h1 && h2 && h3);
  EXPECT_EQ(l1->tokenizer.get(), l2->tokenizer.get());
  EXPECT_EQ(l1->tokenizer->vocab_size(), 512);
  EXPECT_EQ(h1->tokenizer.get(), h2->tokenizer.get());
  EXPECT_NE(h1->tokenizer.get(), h3->tokenizer.get());
  EXPECT_TRUE(h1->tokenizer->add_bos_default());
  EXPECT_FALSE(h3->tokenizer->add_bos_default());
  EXPECT_NE(l1->tokenizer.get(), h1->tokenizer.get());
  const RegistryStats st = reg.Stats();
  EXPECT_EQ(st.tokenizers, 3u);
  EXPECT_EQ(st.tokenizer_bytes, l1->tokenizer->memory_bytes() + h1->tokenizer->memory_bytes() +
                                    h3->tokenizer->memory_bytes());
  EXPECT_EQ(st.tokenizer_saved_bytes, l1->tokenizer->memory_bytes() + h1->tokenizer->memory_bytes());

  // The inputs' digests say the same, without a registry.
  auto digest = [](const std::string& path) -> std::string {
    auto src = rt::OpenFileWeights(path);
    EXPECT_TRUE(src.ok()) << path << ": " << src.status();
    if (!src.ok()) return "";
    auto in = rt::ReadTokenizerInputs(**src);
    EXPECT_TRUE(in.ok()) << path << ": " << in.status();
    return in.ok() ? in->digest : "";
  };
  EXPECT_EQ(digest(hf), digest(root + "/tok_hf_copy"));
  EXPECT_NE(digest(hf), digest(root + "/tok_hf_cfg"));
  EXPECT_EQ(digest(tiny + "/stories260K.bin"), digest(root + "/l2c_copy/stories260K.bin"));
}

// Several threads encode and decode with one shared tokenizer at once and
// get what one thread gets alone: real vocabularies (byte-level BPE with an
// ICU pre-tokenizer, SentencePiece, WordPiece) over their test strings.
TEST(TokenizerThreads, ConcurrentEncodeMatchesSerial) {
  rt::TokenizerCache cache;
  for (const char* name : {"deepseek-llm", "llama-spm", "bert-bge"}) {
    const std::string path = rt::testing::VocabDir() + "/ggml-vocab-" + name + ".gguf";
    if (!fs::exists(path + ".inp")) GTEST_SKIP() << "no " << path;
    auto md = formats::ReadGgufMetadata(path);
    ASSERT_TRUE(md.ok()) << md.status();
    rt::TokenizerInputs in;
    in.gguf = &*md;
    in.origin = path;
    in.digest = rt::GgufTokenizerDigest(*md);
    auto tok = cache.Get(in);
    ASSERT_TRUE(tok.ok()) << tok.status();
    const auto cases = rt::testing::ReadVectors(name);
    ASSERT_GT(cases.size(), 30u);
    std::vector<std::vector<int32_t>> serial;
    std::vector<std::string> decoded;
    for (const auto& c : cases) {
      serial.push_back((*tok)->Encode(c.text, true, true));
      decoded.push_back((*tok)->Decode(serial.back()));
    }
    constexpr int kThreads = 4, kRounds = 3;
    std::vector<int> mismatches(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int r = 0; r < kRounds; ++r)
          for (size_t i = 0; i < cases.size(); ++i) {
            // Each thread starts at another string, so different texts run at once.
            const size_t k = (i + static_cast<size_t>(t) * cases.size() / kThreads) % cases.size();
            const auto ids = (*tok)->Encode(cases[k].text, true, true);
            if (ids != serial[k] || (*tok)->Decode(ids) != decoded[k]) mismatches[t]++;
          }
      });
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << name << ": thread " << t;
  }
}

// Threads asking the cache for one tokenizer at once all get one object,
// counted once, though several may have built it.
TEST(TokenizerThreads, ConcurrentGetsOfOneDigestGetOneTokenizer) {
  const std::string path = rt::testing::VocabDir() + "/ggml-vocab-llama-spm.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << "no " << path;
  auto md = formats::ReadGgufMetadata(path);
  ASSERT_TRUE(md.ok()) << md.status();
  rt::TokenizerInputs in;
  in.gguf = &*md;
  in.origin = path;
  in.digest = rt::GgufTokenizerDigest(*md);
  rt::TokenizerCache cache;
  constexpr int kThreads = 4;
  std::vector<rt::TokenizerCache::Handle> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      auto h = cache.Get(in);
      if (h.ok()) got[t] = *h;
    });
  for (auto& th : threads) th.join();
  ASSERT_NE(got[0], nullptr);
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(got[t].get(), got[0].get()) << "thread " << t;
  EXPECT_EQ(cache.tokenizers(), 1u);
  EXPECT_EQ(cache.bytes(), got[0]->memory_bytes());
  got.clear();
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(cache.tokenizers(), 0u);
}

// memory_bytes() against what building the tokenizer keeps on the heap.
TEST(TokenizerMemory, EstimateMatchesTheHeap) {
  for (const char* name : {"deepseek-llm", "llama-spm", "gpt-2", "bert-bge"}) {
    const std::string path = rt::testing::VocabDir() + "/ggml-vocab-" + name + ".gguf";
    if (!fs::exists(path)) GTEST_SKIP() << "no " << path;
    auto md = formats::ReadGgufMetadata(path);
    ASSERT_TRUE(md.ok()) << md.status();
    // Once first, so ICU's data and lazily built tables are not counted.
    ASSERT_TRUE(rt::Tokenizer::FromGguf(*md, path).ok());
    malloc_trim(0);
    const struct mallinfo2 m0 = mallinfo2();
    auto tok = rt::Tokenizer::FromGguf(*md, path);
    ASSERT_TRUE(tok.ok()) << tok.status();
    const struct mallinfo2 m1 = mallinfo2();
    const double heap = static_cast<double>(m1.uordblks + m1.hblkhd) - static_cast<double>(m0.uordblks + m0.hblkhd);
    const double est = static_cast<double>((*tok)->memory_bytes());
    EXPECT_NEAR(est, heap, 0.03 * heap + 64 * 1024)
        << name << ": estimate " << est / (1 << 20) << " MiB, heap grew by " << heap / (1 << 20) << " MiB";
  }
}

}  // namespace
}  // namespace hart::app

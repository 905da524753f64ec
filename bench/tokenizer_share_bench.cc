// tokenizer_share_bench: what a base model plus fine-tunes of it cost in
// tokenizer memory when loaded together, with tokenizers shared by the
// digest of their inputs (the model registry, runtime::TokenizerCache)
// against each model building its own (LoadModel without a tokenizer cache,
// as the registry did before). Weights are shared by digest in both modes
// (one ResidentCache), so the difference is the tokenizers, plus (since the
// registry releases them after load) the GGUF vocabulary arrays each
// model's weight source held.
//
//   tokenizer_share_bench VOCAB.gguf WORK_DIR --step prepare --fixture TINY.gguf [--finetunes N]
//   tokenizer_share_bench VOCAB.gguf WORK_DIR --step measure --mode shared|own
//
// prepare: TINY, a tiny llama (bench/tokenizer_share_bench.sh makes it with
// tests/fixtures/make_tiny_llama.py: q8_0, 2 layers, tied embeddings),
// given VOCAB's real tokenizer (its tokenizer.* metadata,
// the embedding resized to its vocabulary), N fine-tunes of it (attn_q of
// every layer changed, tests/runtime/finetune_fixture.h), all ingested into
// a fresh store under WORK_DIR. measure (one mode per process, so RSS is
// this mode's alone): loads the base, then each fine-tune, and prints one
// JSON line: RSS growth (/proc/self/statm) of the base and of each
// fine-tune, the tokenizer bytes each model reports, the distinct ones
// summed, the parsed GGUF metadata the sources still hold
// (runtime::GgufMetadataBytes, summed), and in shared mode the registry's
// own figures.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/memory_usage.h"
#include "../tests/runtime/finetune_fixture.h"
#include "app/models.h"
#include "formats/gguf.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace {

using namespace hart;
namespace fs = std::filesystem;

int Fail(const std::string& what, const absl::Status& st) {
  std::fprintf(stderr, "tokenizer_share_bench: %s: %s\n", what.c_str(), std::string(st.message()).c_str());
  return 1;
}

absl::Status Prepare(const std::string& vocab, const std::string& fixture, const std::string& work, int n_ft) {
  auto src = formats::ReadGguf(fixture);
  if (!src.ok()) return src.status();
  auto md = formats::ReadGgufMetadata(fixture);
  if (!md.ok()) return md.status();
  auto vmd = formats::ReadGgufMetadata(vocab);
  if (!vmd.ok()) return vmd.status();
  formats::GgufMetadata out;
  for (const auto& kv : md->entries)
    if (!kv.key.starts_with("tokenizer.")) out.entries.push_back(kv);
  for (const auto& kv : vmd->entries)
    if (kv.key.starts_with("tokenizer.")) out.entries.push_back(kv);
  const auto tokens = vmd->GetArray("tokenizer.ggml.tokens");
  if (tokens == nullptr) return absl::InvalidArgumentError(vocab + ": no tokenizer.ggml.tokens");
  const uint64_t n_vocab = tokens->items.size();
  std::vector<formats::TensorDesc> tensors = src->tensors;
  std::vector<uint8_t> embd;
  size_t embd_index = tensors.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& t = tensors[i];
    if (t.name != "token_embd.weight") continue;
    if (t.dtype != DType::kQ8_0) return absl::InvalidArgumentError("token_embd.weight: not q8_0");
    const uint64_t dim = t.shape.back();
    t.shape = Shape{n_vocab, dim};
    t.nbytes = n_vocab * dim / 32 * 34;
    embd.resize(t.nbytes);
    std::mt19937_64 rng(7);
    for (uint64_t b = 0; b < t.nbytes; b += 34) {
      embd[b] = 0x00, embd[b + 1] = 0x20;  // f16 scale 2^-7
      for (int k = 0; k < 32; ++k) embd[b + 2 + k] = static_cast<uint8_t>(rng());
    }
    embd_index = i;
  }
  if (embd_index == tensors.size()) return absl::InvalidArgumentError("no token_embd.weight");
  const std::string base = work + "/base.gguf";
  auto bytes = [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
    if (i == embd_index) return std::span<const uint8_t>(embd);
    return src->TensorBytes(i);
  };
  if (auto s = formats::WriteGguf(base, out, tensors, bytes); !s.ok()) return s;
  std::vector<std::pair<std::string, std::string>> models = {{"base", base}};
  const uint8_t patterns[] = {0x5a, 0x33, 0x0f, 0x66, 0x3c, 0x71, 0x1e, 0x4b};
  for (int i = 0; i < n_ft; ++i) {
    const std::string path = work + "/ft" + std::to_string(i + 1) + ".gguf";
    auto d = runtime::testing::WriteFineTune(
        base, path, [](const std::string& t) { return t.find("attn_q") != std::string::npos; }, patterns[i % 8]);
    if (!d.ok()) return d.status();
    models.emplace_back("ft" + std::to_string(i + 1), path);
  }
  const std::string dir = work + "/store";
  fs::remove_all(dir);
  if (auto s = store::Store::Init(dir); !s.ok()) return s;
  auto st = store::Store::Open(dir);
  if (!st.ok()) return st.status();
  for (const auto& [name, path] : models) {
    auto m = formats::ReadGguf(path);
    if (!m.ok()) return m.status();
    store::IngestOptions io;
    io.model = name;
    io.progress = false;
    io.license = "mit";
    if (auto r = (*st)->Ingest(*m, io); !r.ok()) return r.status();
    fs::remove(path);
  }
  std::ofstream(work + "/prepared.json") << nlohmann::json{{"finetunes", n_ft}, {"vocab", n_vocab}}.dump();
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: tokenizer_share_bench VOCAB.gguf WORK_DIR --step prepare|measure [--mode shared|own] "
                 "[--finetunes N]\n");
    return 1;
  }
  const std::string vocab = argv[1], work = argv[2];
  std::string step = "measure", mode = "shared", fixture;
  int n_ft = 3;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--step") step = argv[i + 1];
    if (a == "--mode") mode = argv[i + 1];
    if (a == "--finetunes") n_ft = std::stoi(argv[i + 1]);
    if (a == "--fixture") fixture = argv[i + 1];
  }
  fs::create_directories(work);
  if (step == "prepare") {
    if (auto s = Prepare(vocab, fixture, work, n_ft); !s.ok()) return Fail("prepare", s);
    return 0;
  }
  std::ifstream in(work + "/prepared.json");
  const nlohmann::json prep = nlohmann::json::parse(in, nullptr, false);
  if (prep.is_discarded()) return Fail(work, absl::NotFoundError("run --step prepare first"));
  n_ft = prep["finetunes"].get<int>();
  auto opened = store::Store::Open(work + "/store");
  if (!opened.ok()) return Fail(work, opened.status());
  std::shared_ptr<store::Store> st = std::move(*opened);

  app::RegistryOptions ro;
  ro.load.max_context = 64;
  app::ModelRegistry reg(st, ro);
  app::ModelLoadOptions lo = ro.load;
  lo.cache = std::make_shared<runtime::ResidentCache>();  // weights shared in both modes
  std::vector<std::shared_ptr<const app::LoadedModel>> held;
  auto load = [&](const std::string& ref) -> absl::Status {
    auto m = mode == "shared" ? reg.Get(ref) : app::LoadModel(ref, st, lo);
    if (!m.ok()) return m.status();
    held.push_back(*m);
    return absl::OkStatus();
  };
  const uint64_t rss0 = hart::RssBytes();
  if (auto s = load("base"); !s.ok()) return Fail("base", s);
  // Signed: freed heap reused by the next load can leave RSS lower than before.
  auto growth = [](uint64_t from) { return static_cast<int64_t>(hart::RssBytes()) - static_cast<int64_t>(from); };
  const int64_t rss_base = growth(rss0);
  std::vector<int64_t> rss_ft;
  for (int i = 0; i < n_ft; ++i) {
    const uint64_t before = hart::RssBytes();
    if (auto s = load("ft" + std::to_string(i + 1)); !s.ok()) return Fail("ft", s);
    rss_ft.push_back(growth(before));
  }
  uint64_t per_model_sum = 0, distinct = 0, metadata_sum = 0;
  std::set<const runtime::Tokenizer*> seen;
  for (const auto& m : held) {
    // The parsed GGUF metadata each model's weight source still holds (the
    // registry releases the vocabulary arrays after load).
    if (const auto* md = m->source->gguf_metadata()) metadata_sum += runtime::GgufMetadataBytes(*md);
    per_model_sum += m->tokenizer->memory_bytes();
    if (seen.insert(m->tokenizer.get()).second) distinct += m->tokenizer->memory_bytes();
  }
  nlohmann::json out = {{"mode", mode},
                        {"vocab", prep["vocab"]},
                        {"vocab_file", vocab},
                        {"finetunes", n_ft},
                        {"tokenizer_bytes_one", held[0]->tokenizer->memory_bytes()},
                        {"tokenizer_bytes_per_model_sum", per_model_sum},
                        {"tokenizer_bytes_distinct", distinct},
                        {"tokenizers", seen.size()},
                        {"rss_growth_base", rss_base},
                        {"rss_growth_finetunes", rss_ft},
                        {"gguf_metadata_bytes_sum", metadata_sum},
                        {"rss_growth_all", growth(rss0)}};
  if (mode == "shared") {
    const app::RegistryStats s = reg.Stats();
    out["registry"] = {{"resident_bytes", s.resident_bytes},
                       {"tokenizer_bytes", s.tokenizer_bytes},
                       {"tokenizer_saved_bytes", s.tokenizer_saved_bytes},
                       {"tokenizers", s.tokenizers}};
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

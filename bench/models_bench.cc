// models_bench: resident memory of a base model plus fine-tunes of it,
// loaded together in one model registry (what `hart serve` holds), against
// the base alone, measured from the registry's accounting and from this
// process's RSS (/proc/self/statm) in the same run.
//
//   models_bench BASE.gguf WORK_DIR [--finetunes N] [--tensors attn_q,attn_v]
//                [--step prepare|measure|all]
//
// --step prepare writes and ingests only; measure loads from the store a
// prepare left (so the measured part can hold an idle machine briefly).
// Writes N fine-tunes of BASE (tests/runtime/finetune_fixture.h: the named
// tensors of every layer changed, each fine-tune with other values, as a
// LoRA merged into q and v would), ingests base and fine-tunes into a fresh
// store under WORK_DIR, then loads the base, then each fine-tune, and prints
// one JSON line: the accounting and the RSS growth of the base alone and of
// all together, their ratios, what per-model accounting (each model all its
// tensors, as before the resident cache) would have said, and one greedy
// completion per model (the shared copies compute).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/memory_usage.h"
#include "../tests/runtime/finetune_fixture.h"
#include "app/generate.h"
#include "app/models.h"
#include "formats/gguf.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace {

using namespace hart;
namespace fs = std::filesystem;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int Fail(const std::string& what, const absl::Status& st) {
  std::fprintf(stderr, "models_bench: %s: %s\n", what.c_str(), std::string(st.message()).c_str());
  return 1;
}

// Writes the fine-tunes (models[1..]) and ingests base and fine-tunes into
// a fresh store at `dir`; returns what the report repeats.
absl::StatusOr<nlohmann::json> Prepare(const std::string& base, const std::string& work, const std::string& dir,
                                       const std::vector<std::string>& kinds,
                                       std::vector<std::pair<std::string, std::string>>& models) {
  std::vector<uint64_t> diffs;
  const uint8_t patterns[] = {0x5a, 0x33, 0x0f, 0x66, 0x3c, 0x71, 0x1e, 0x4b};
  for (size_t i = 1; i < models.size(); ++i) {
    const std::string path = work + "/" + models[i].first + ".gguf";
    auto d = runtime::testing::WriteFineTune(
        base, path,
        [&](const std::string& t) {
          for (const auto& k : kinds)
            if (t.find(k) != std::string::npos) return true;
          return false;
        },
        patterns[(i - 1) % 8]);
    if (!d.ok()) return d.status();
    diffs.push_back(*d);
    models[i].second = path;
  }
  fs::remove_all(dir);
  if (auto s = store::Store::Init(dir); !s.ok()) return s;
  auto st = store::Store::Open(dir);
  if (!st.ok()) return st.status();
  const double t0 = Now();
  uint64_t base_bytes = 0;
  for (const auto& [name, path] : models) {
    auto src = formats::ReadGguf(path);
    if (!src.ok()) return src.status();
    store::IngestOptions io;
    io.model = name;
    io.progress = false;
    io.license = "mit";
    if (auto r = (*st)->Ingest(*src, io); !r.ok()) return r.status();
    if (name == "base")
      for (const auto& t : src->tensors) base_bytes += t.nbytes;
    else
      fs::remove(path);  // the store has it now
  }
  return nlohmann::json{{"base_bytes", base_bytes}, {"finetune_changed_bytes", diffs}, {"ingest_s", Now() - t0}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: models_bench BASE.gguf WORK_DIR [--finetunes N] [--tensors a,b]\n");
    return 1;
  }
  const std::string base = argv[1], work = argv[2];
  int n_ft = 3;
  std::string step = "all";
  std::vector<std::string> kinds = {"attn_q", "attn_v"};
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--finetunes") n_ft = std::stoi(argv[i + 1]);
    if (a == "--step") step = argv[i + 1];
    if (a == "--tensors") {
      kinds.clear();
      std::stringstream ss(argv[i + 1]);
      for (std::string k; std::getline(ss, k, ',');) kinds.push_back(k);
    }
  }
  fs::create_directories(work);
  std::vector<std::pair<std::string, std::string>> models = {{"base", base}};
  for (int i = 0; i < n_ft; ++i) models.emplace_back("ft" + std::to_string(i + 1), "");
  const std::string dir = work + "/store";
  nlohmann::json prep;
  if (step != "measure") {
    auto p = Prepare(base, work, dir, kinds, models);
    if (!p.ok()) return Fail("prepare", p.status());
    prep = *p;
    std::ofstream(work + "/prepared.json") << prep.dump();
    if (step == "prepare") return 0;
  } else {
    std::ifstream in(work + "/prepared.json");
    prep = nlohmann::json::parse(in, nullptr, false);
    if (prep.is_discarded()) return Fail(work + "/prepared.json", absl::NotFoundError("run --step prepare first"));
  }
  auto opened = store::Store::Open(dir);
  if (!opened.ok()) return Fail(dir, opened.status());
  std::shared_ptr<store::Store> st = std::move(*opened);

  app::RegistryOptions ro;
  ro.load.max_context = 64;
  app::ModelRegistry reg(st, ro);
  const uint64_t rss0 = hart::RssBytes();
  double t = Now();
  auto b = reg.Get("base");
  if (!b.ok()) return Fail("base", b.status());
  const double load_base_s = Now() - t;
  const uint64_t rss_base = hart::RssBytes() - rss0;
  const uint64_t acct_base = reg.Stats().resident_bytes;
  t = Now();
  for (int i = 0; i < n_ft; ++i) {
    auto m = reg.Get("ft" + std::to_string(i + 1));
    if (!m.ok()) return Fail("ft", m.status());
  }
  const double load_ft_s = Now() - t;
  const uint64_t rss_all = hart::RssBytes() - rss0;
  const app::RegistryStats all = reg.Stats();
  uint64_t per_model_sum = 0;
  for (const auto& m : all.models) per_model_sum += m.residency.resident_bytes;

  nlohmann::json completions = nlohmann::json::object();
  for (const auto& [name, path] : models) {
    app::CompletionRequest req{.model = name, .prompt = "Once upon a time"};
    req.params.max_tokens = 4;
    req.params.temperature = 0;
    auto r = app::Complete(reg, req);
    if (!r.ok()) return Fail(name, r.status());
    completions[name] = {{"tokens", r->usage.completion_tokens},
                         {"text_bytes", r->text.size()},
                         {"decode_tok_s", r->stats.decode_tok_s()}};
  }
  nlohmann::json out = {
      {"model", base},
      {"finetunes", n_ft},
      {"changed_tensors", kinds},
      {"base_bytes", prep["base_bytes"]},
      {"finetune_changed_bytes", prep["finetune_changed_bytes"]},
      {"ingest_s", prep["ingest_s"]},
      {"load_base_s", load_base_s},
      {"load_finetunes_s", load_ft_s},
      {"accounting_base", acct_base},
      {"accounting_all", all.resident_bytes},
      {"accounting_ratio", static_cast<double>(all.resident_bytes) / static_cast<double>(acct_base)},
      {"per_model_sum", per_model_sum},
      {"per_model_sum_ratio", static_cast<double>(per_model_sum) / static_cast<double>(acct_base)},
      {"rss_growth_base", rss_base},
      {"rss_growth_all", rss_all},
      {"rss_ratio", static_cast<double>(rss_all) / static_cast<double>(rss_base)},
      {"completions", completions}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

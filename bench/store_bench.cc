// NinaDB benchmarks, each against a baseline measured in the same run:
//   ingest   vs single-core SHA-256 of the same file (page cache warm)
//   export   vs `cp` of the original file
//   dedup    base + 3 fine-tunes (10% of tensors changed each) + one that
//            appends 256 rows to the embedding: physical bytes / base bytes
//   catalog  bytes of catalog.sqlite per tensor row
// Usage: store_bench [--dir DIR] [--size-mib N]   (default /tmp, 2200 MiB)
#include <sys/resource.h>
#include <sys/time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "formats/model_source.h"
#include "formats/safetensors.h"
#include "store/store.h"

namespace fs = std::filesystem;
using hart::formats::TensorDesc;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void Die(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "store_bench: %s: %s\n", what, std::string(hart::Msg(s)).c_str());
    std::exit(1);
  }
}

// A llama-shaped list of F16 tensors: embedding [vocab, dim], per layer
// q,k,v,o [dim, dim], gate/up [ffn, dim], down [dim, ffn], two norms.
struct Spec {
  std::string name;
  hart::Shape shape;
};

std::vector<Spec> LlamaSpecs(uint64_t vocab, uint64_t dim, uint64_t ffn, int layers) {
  std::vector<Spec> v;
  v.push_back({"model.embed_tokens.weight", {vocab, dim}});
  for (int l = 0; l < layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"})
      v.push_back({p + n + ".weight", {dim, dim}});
    v.push_back({p + "mlp.gate_proj.weight", {ffn, dim}});
    v.push_back({p + "mlp.up_proj.weight", {ffn, dim}});
    v.push_back({p + "mlp.down_proj.weight", {dim, ffn}});
    v.push_back({p + "input_layernorm.weight", {dim}});
    v.push_back({p + "post_attention_layernorm.weight", {dim}});
  }
  v.push_back({"model.norm.weight", {dim}});
  return v;
}

void Fill(std::vector<uint8_t>& buf, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t n = buf.size() / 8 * 8;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    std::memcpy(&buf[i], &x, 8);
  }
}

// Writes a safetensors file whose tensor i has bytes from seed seeds[i].
void WriteModel(const std::string& path, const std::vector<Spec>& specs,
                const std::vector<uint64_t>& seeds) {
  std::vector<TensorDesc> tensors;
  for (const auto& s : specs) {
    TensorDesc t;
    t.name = s.name;
    t.dtype = hart::DType::kF16;
    t.shape = s.shape;
    uint64_t n = 1;
    for (auto d : s.shape) n *= d;
    t.nbytes = n * 2;
    tensors.push_back(t);
  }
  std::vector<uint8_t> buf;
  auto bytes = [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
    buf.resize(tensors[i].nbytes);
    Fill(buf, seeds[i]);
    return std::span<const uint8_t>(buf);
  };
  Die(hart::formats::WriteSafetensors(path, tensors, {{"license", "apache-2.0"}}, bytes), "write model");
}

std::unique_ptr<hart::store::Store> FreshStore(const std::string& dir) {
  fs::remove_all(dir);
  Die(hart::store::Store::Init(dir), "init");
  auto st = hart::store::Store::Open(dir);
  Die(st.status(), "open");
  return std::move(*st);
}

hart::store::IngestResult Ingest(hart::store::Store& store, const std::string& path, const std::string& model,
                                 bool file_sha256 = false) {
  auto src = hart::formats::OpenModel(path);
  Die(src.status(), "open model");
  hart::store::IngestOptions o;
  o.model = model;
  o.progress = false;
  o.file_sha256 = file_sha256;
  auto r = store.Ingest(*src, o);
  Die(r.status(), "ingest");
  return *r;
}

void DropOutput(const std::string& p) { fs::remove(p); }

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  uint64_t size_mib = 2200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--size-mib")) size_mib = std::strtoull(argv[i + 1], nullptr, 10);
  }
  hart::Progress::SetEnabled(false);
  std::string work = dir + "/hart-store-bench";
  fs::remove_all(work);
  fs::create_directories(work);
  std::printf("store_bench: work dir %s, %zu threads\n", work.c_str(), hart::ThreadPool::Default().size());

  // ---- ingest vs sha256 -------------------------------------------------
  // dim 2048, ffn 8192: a layer is 2048*2048*4*2 + 8192*2048*3*2 = 128 MiB.
  const uint64_t dim = 2048, ffn = 8192, vocab = 32000;
  int layers = static_cast<int>(std::max<uint64_t>(1, (size_mib - vocab * dim * 2 / (1 << 20)) / 128));
  auto specs = LlamaSpecs(vocab, dim, ffn, layers);
  std::vector<uint64_t> seeds(specs.size());
  for (size_t i = 0; i < seeds.size(); ++i) seeds[i] = i + 1;
  std::string big = work + "/big.safetensors";
  WriteModel(big, specs, seeds);
  auto map = hart::MappedFile::Open(big);
  Die(map.status(), "map");
  uint64_t fsize = (*map)->size();
  volatile uint64_t sink = 0;
  for (uint64_t i = 0; i < fsize; i += 4096) sink += (*map)->bytes()[i];  // warm the page cache
  double t0 = Now();
  auto d = hart::Sha256((*map)->bytes());
  double sha_s = Now() - t0;
  sink += d[0];
  double sha_gbs = fsize / sha_s / 1e9;

  // Best of two ingests into a fresh store: on these VMs the first fill of
  // freshly freed guest memory (tmpfs packs) can cost the host's faults,
  // doubling the system time of one run; both times are printed.
  std::unique_ptr<hart::store::Store> store;
  hart::store::IngestResult r;
  double ingest_s = 1e9, ingest_cpu = 0, first_s = 0;
  for (int rep = 0; rep < 2; ++rep) {
    store.reset();
    store = FreshStore(work + "/store");
    double c0 = CpuSeconds();
    t0 = Now();
    r = Ingest(*store, big, "big");
    double s = Now() - t0, cpu = CpuSeconds() - c0;
    if (rep == 0) first_s = s;
    if (s < ingest_s) ingest_s = s, ingest_cpu = cpu;
  }
  double ingest_gbs = fsize / ingest_s / 1e9;
  std::printf("\n== ingest (%s file, %d layers, page cache warm; best of 2, first %.2f s)\n",
              hart::HumanBytes(fsize).c_str(), layers, first_s);
  std::printf("  sha256, 1 core      %7.2f GB/s   (%.2f s)\n", sha_gbs, sha_s);
  std::printf("  hart ingest         %7.2f GB/s   (%.2f s, %.2f cores busy)\n", ingest_gbs, ingest_s, ingest_cpu / ingest_s);
  std::printf("  ratio ingest/sha256 %7.2f x     (target >= 0.70)\n", ingest_gbs / sha_gbs);
  {
    // The same ingest also recording each file's plain SHA-256: one more
    // serial pass, so it can never beat the one-core baseline.
    auto s2 = FreshStore(work + "/store-sha");
    t0 = Now();
    Ingest(*s2, big, "big", /*file_sha256=*/true);
    double s2_s = Now() - t0;
    std::printf("  ingest --file-sha256 %6.2f GB/s   (%.2f s, ratio %.2f x)\n", fsize / s2_s / 1e9, s2_s,
                fsize / s2_s / 1e9 / sha_gbs);
    s2.reset();
    fs::remove_all(work + "/store-sha");
  }

  // ---- export vs cp -----------------------------------------------------
  std::string out = work + "/export.safetensors", cp_out = work + "/cp.safetensors";
  double best_exp = 1e9, best_cp = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    DropOutput(out);
    DropOutput(cp_out);
    t0 = Now();
    Die(store->Export(r.version_id, out, false, false), "export");
    best_exp = std::min(best_exp, Now() - t0);
    t0 = Now();
    std::string cmd = "cp --reflink=never '" + big + "' '" + cp_out + "'";
    if (std::system(cmd.c_str()) != 0) Die(absl::InternalError("cp failed"), "cp");
    best_cp = std::min(best_cp, Now() - t0);
  }
  auto exp_map = hart::MappedFile::Open(out);
  Die(exp_map.status(), "map export");
  bool same = hart::Sha256((*exp_map)->bytes()) == d;
  std::printf("\n== export (best of 3)\n");
  std::printf("  cp                  %7.2f GB/s   (%.2f s)\n", fsize / best_cp / 1e9, best_cp);
  std::printf("  hart export         %7.2f GB/s   (%.2f s)  byte-identical: %s\n", fsize / best_exp / 1e9, best_exp, same ? "yes" : "NO");
  std::printf("  ratio export/cp     %7.2f x     (target >= 0.80)\n", best_cp / best_exp);
  exp_map->reset();
  DropOutput(out);
  DropOutput(cp_out);
  map->reset();
  fs::remove(big);
  store.reset();
  fs::remove_all(work + "/store");

  // ---- dedup ------------------------------------------------------------
  // A smaller model (dim 1024, 8 layers), 3 fine-tunes each changing a
  // different 10% of the tensors, and one appending 256 rows to the embedding.
  auto dspecs = LlamaSpecs(32000, 1024, 4096, 8);
  std::vector<uint64_t> base_seeds(dspecs.size());
  for (size_t i = 0; i < dspecs.size(); ++i) base_seeds[i] = 1000 + i;
  auto dstore = FreshStore(work + "/dstore");
  std::string base = work + "/base.safetensors";
  WriteModel(base, dspecs, base_seeds);
  auto base_r = Ingest(*dstore, base, "base");
  uint64_t base_bytes = base_r.logical_bytes;
  size_t n = dspecs.size(), tenth = std::max<size_t>(1, n / 10);
  for (int ft = 0; ft < 3; ++ft) {
    auto s = base_seeds;
    for (size_t k = 0; k < tenth; ++k) s[(ft * tenth + k * 3 + 1) % n] += 7777 * (ft + 1);
    std::string p = work + "/ft" + std::to_string(ft) + ".safetensors";
    WriteModel(p, dspecs, s);
    Ingest(*dstore, p, "ft" + std::to_string(ft));
    fs::remove(p);
  }
  {
    // Embedding grown by 256 rows: same bytes for the old rows, new rows after.
    auto grown = dspecs;
    grown[0].shape[0] += 256;
    std::vector<TensorDesc> tensors;
    for (const auto& sp : grown) {
      TensorDesc t;
      t.name = sp.name;
      t.dtype = hart::DType::kF16;
      t.shape = sp.shape;
      t.nbytes = 2;
      for (auto dd : sp.shape) t.nbytes *= dd;
      tensors.push_back(t);
    }
    std::vector<uint8_t> buf;
    auto bytes = [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
      buf.resize(tensors[i].nbytes);
      if (i == 0) {
        std::vector<uint8_t> old(dspecs[0].shape[0] * dspecs[0].shape[1] * 2);
        Fill(old, base_seeds[0]);
        std::vector<uint8_t> extra(buf.size() - old.size());
        Fill(extra, 424242);
        std::memcpy(buf.data(), old.data(), old.size());
        std::memcpy(buf.data() + old.size(), extra.data(), extra.size());
      } else {
        Fill(buf, base_seeds[i]);
      }
      return std::span<const uint8_t>(buf);
    };
    std::string p = work + "/grown.safetensors";
    Die(hart::formats::WriteSafetensors(p, tensors, {{"license", "apache-2.0"}}, bytes), "write grown");
    Ingest(*dstore, p, "grown");
    fs::remove(p);
  }
  auto stats = dstore->Stats();
  Die(stats.status(), "stats");
  std::printf("\n== dedup (base %s, %zu tensors; 3 fine-tunes x %zu changed tensors; +256 embedding rows)\n",
              hart::HumanBytes(base_bytes).c_str(), n, tenth);
  std::printf("  logical bytes       %s\n", hart::HumanBytes(stats->total.logical_bytes).c_str());
  std::printf("  physical bytes      %s\n", hart::HumanBytes(stats->total.physical_bytes).c_str());
  std::printf("  physical / base     %7.3f x     (target <= 1.35)\n", double(stats->total.physical_bytes) / base_bytes);
  std::printf("  dedup ratio         %7.2f x\n", stats->total.dedup_ratio);
  std::printf("\n== catalog\n");
  std::printf("  catalog bytes       %s for %llu tensor rows: %.0f bytes per tensor\n",
              hart::HumanBytes(stats->catalog_bytes).c_str(), (unsigned long long)stats->total.tensors,
              double(stats->catalog_bytes) / std::max<uint64_t>(1, stats->total.tensors));
  fs::remove(base);
  dstore.reset();
  fs::remove_all(work);
  return sink == 12345678 ? 1 : 0;
}

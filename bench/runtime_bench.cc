// runtime_bench: decode speed of the runtime against the bound the hardware
// sets, measured in the same process.
//
//   runtime_bench MODEL.gguf [--budget SIZE|--budget-frac F|--budget-min] [--cold]
//                 [--tokens N] [--threads N] [--store DIR --ref MODEL[@N]]
//                 [--cgroup NAME] [--readers N] [--read-op SIZE]
//
// --store: the weights come from that NinaDB version (ingested from the same
// MODEL.gguf), the file still gives the storage bound. --cgroup: once the
// budget is known the process moves itself into a fresh memory cgroup (v1:
// /sys/fs/cgroup/memory/NAME-PID) capped at budget + KV cache + 100 MiB, the
// cap the targets name, and removes it on exit; a message and no cap where
// the cgroup cannot be written.
//
// Prints one JSON line:
//  - mem_read_gbs: multithreaded read bandwidth over a buffer of the model's
//    size (the memory bound is that over the bytes one token reads): the
//    median of three sets, one before the model loads and two after decode
//    (each the best of three passes over a freshly allocated buffer), with
//    the sets in mem_read_gbs_sets; this VM's figure swings between runs;
//  - kernels: the SIMD path of the matrix kernels (KernelPath());
//  - storage_read_gbs (with --cold): sequential O_DIRECT read bandwidth of
//    the model file, 8 MiB reads one at a time like `dd iflag=direct bs=8M`
//    (the storage bound is that over the bytes streamed per token);
//  - decode_tok_s, the bound and their ratio; peak RSS, budget, KV cache.
// Each configuration runs in its own process so peak RSS is its own;
// bench/runtime_bench.sh drives the set.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "core/progress.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "nlohmann/json.hpp"
#include "runtime/generate.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/weight_source.h"
#include "store/store.h"

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Read bandwidth of memory: every thread sums its share of a buffer of
// `bytes` (its pages faulted in first, untimed), best of three passes.
double MemReadGBs(uint64_t bytes, hart::ThreadPool& pool) {
  std::vector<uint64_t> buf(bytes / 8, 1);
  const size_t parts = pool.size() * 4, per = buf.size() / parts;
  std::vector<uint64_t> sums(parts);
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    auto t0 = Clock::now();
    pool.ParallelFor(parts, [&](size_t p) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const uint64_t* b = buf.data() + p * per;
      for (size_t i = 0; i + 4 <= per; i += 4) s0 += b[i], s1 += b[i + 1], s2 += b[i + 2], s3 += b[i + 3];
      sums[p] = s0 + s1 + s2 + s3;
    });
    best = std::max(best, static_cast<double>(parts * per * 8) / Seconds(t0) / 1e9);
  }
  return best;
}

// Sequential O_DIRECT read of the file in 8 MiB requests, one in flight,
// best of three passes: the page cache plays no part, so no pass needs a
// cache drop and none is helped by one before it.
double StorageReadGBs(const std::string& path) {
  auto fd = hart::OpenFile(path, O_RDONLY | O_DIRECT);
  if (!fd.ok()) return 0;
  constexpr size_t kBuf = 8 << 20;
  void* raw = nullptr;
  if (::posix_memalign(&raw, 4096, kBuf) != 0) return 0;
  std::unique_ptr<uint8_t, void (*)(void*)> buf(static_cast<uint8_t*>(raw), std::free);
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    uint64_t total = 0;
    auto t0 = Clock::now();
    for (;;) {
      ssize_t n = ::pread(fd->get(), buf.get(), kBuf, static_cast<off_t>(total));
      if (n <= 0) break;
      total += static_cast<uint64_t>(n);
    }
    best = std::max(best, total / Seconds(t0) / 1e9);
  }
  return best;
}

// A memory cgroup (v1) of its own, capped at `limit`; "" where the cgroup
// file system cannot be written (not root, cgroup v2, a container).
std::string JoinMemoryCgroup(const std::string& name, uint64_t limit) {
  const std::string dir = "/sys/fs/cgroup/memory/" + name + "-" + std::to_string(::getpid());
  auto write = [](const std::string& path, const std::string& v) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    bool ok = std::fputs(v.c_str(), f) >= 0;
    return std::fclose(f) == 0 && ok;
  };
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return "";
  if (!write(dir + "/memory.limit_in_bytes", std::to_string(limit)) ||
      !write(dir + "/cgroup.procs", std::to_string(::getpid()))) {
    ::rmdir(dir.c_str());
    return "";
  }
  return dir;
}

uint64_t ReadNumber(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  unsigned long long v = 0;
  if (std::fscanf(f, "%llu", &v) != 1) v = 0;
  std::fclose(f);
  return v;
}

// read_bytes of /proc/self/io: bytes this process caused to be fetched
// from storage (0 where the kernel doesn't keep it).
uint64_t ProcIoReadBytes() {
  FILE* f = std::fopen("/proc/self/io", "r");
  if (!f) return 0;
  char key[64];
  unsigned long long v = 0, found = 0;
  while (std::fscanf(f, "%63s %llu", key, &v) == 2)
    if (std::string_view(key) == "read_bytes:") found = v;
  std::fclose(f);
  return found;
}

void LeaveCgroup(const std::string& dir) {
  if (dir.empty()) return;
  if (FILE* f = std::fopen("/sys/fs/cgroup/memory/cgroup.procs", "w")) {
    std::fprintf(f, "%d", ::getpid());
    std::fclose(f);
  }
  ::rmdir(dir.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: runtime_bench MODEL.gguf [--budget SIZE|--budget-frac F|--budget-min] "
                         "[--cold] [--tokens N] [--threads N] [--store DIR --ref REF] [--cgroup NAME] "
                         "[--readers N] [--read-op SIZE]\n");
    return 1;
  }
  std::string path = argv[1], budget_arg, store_dir, ref, cgroup, read_op;
  double budget_frac = 0;
  bool budget_min = false, cold = false;
  int tokens = 32, threads = 0, readers = 0;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--budget") budget_arg = next();
    else if (a == "--budget-frac") budget_frac = std::stod(next());
    else if (a == "--budget-min") budget_min = true;
    else if (a == "--cold") cold = true;
    else if (a == "--tokens") tokens = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--store") store_dir = next();
    else if (a == "--ref") ref = next();
    else if (a == "--cgroup") cgroup = next();
    else if (a == "--readers") readers = std::stoi(next());
    else if (a == "--read-op") read_op = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 1;
    }
  }
  namespace rt = hart::runtime;
  auto fail = [](const absl::Status& st) {
    std::fprintf(stderr, "%s\n", std::string(hart::Msg(st)).c_str());
    return 1;
  };
  hart::ThreadPool pool(threads);
  absl::StatusOr<std::unique_ptr<rt::WeightSource>> src;
  if (!store_dir.empty()) {
    auto st = hart::store::Store::Open(store_dir);
    if (!st.ok()) return fail(st.status());
    src = rt::OpenStoreWeights(std::shared_ptr<hart::store::Store>(std::move(*st)), ref);
  } else {
    src = rt::OpenFileWeights(path);
  }
  if (!src.ok()) return fail(src.status());
  nlohmann::json out;
  out["model"] = path;
  out["source"] = store_dir.empty() ? "file" : "store " + store_dir + " " + ref;
  out["threads"] = pool.size();
  out["isa"] = rt::KernelPath();

  // Budgets relative to the model need its size: a mapped probe load gives it.
  uint64_t weight_bytes = 0, min_budget = 0, kv_bytes = 0;
  {
    auto probe = rt::Model::Load(src->get(), rt::ModelOptions{.max_context = tokens + 8, .pool = &pool});
    if (!probe.ok()) return fail(probe.status());
    weight_bytes = (*probe)->weight_bytes_per_pass();
    min_budget = (*probe)->min_budget();
    kv_bytes = (*probe)->kv_cache_bytes();
  }
  rt::ModelOptions mo{.max_context = tokens + 8, .pool = &pool};
  if (!budget_arg.empty()) hart::ParseBytes(budget_arg, &mo.stream.budget);
  if (budget_frac > 0) mo.stream.budget = std::max<uint64_t>(min_budget, weight_bytes * budget_frac);
  if (budget_min) mo.stream.budget = min_budget;
  mo.stream.drop_page_cache = cold;
  mo.stream.readers = readers;
  if (!read_op.empty()) hart::ParseBytes(read_op, &mo.stream.read_op_bytes);
  if (cold) {
    out["storage_read_gbs"] = StorageReadGBs(path);
    (*src)->DropPageCache();
  }
  std::string cg;
  if (!cgroup.empty()) {
    const uint64_t cap = mo.stream.budget + kv_bytes + (100ull << 20);
    cg = JoinMemoryCgroup(cgroup, cap);
    if (cg.empty()) {
      std::fprintf(stderr, "runtime_bench: no memory cgroup (cannot write /sys/fs/cgroup/memory); running uncapped\n");
      out["cgroup_cap"] = nullptr;
    } else {
      out["cgroup_cap"] = cap;
    }
  }
  std::vector<double> mem_sets;
  if (!cold) mem_sets.push_back(MemReadGBs(weight_bytes, pool));

  auto model = rt::Model::Load(src->get(), mo);
  if (!model.ok()) {
    LeaveCgroup(cg);
    return fail(model.status());
  }
  rt::Model& m = **model;
  // Warm-up pass (maps or reads the pinned weights once), then the timed run.
  std::vector<int32_t> prompt = {1, 450, 4996, 17354, 1701, 432, 17204, 975};
  std::vector<float> logits;
  if (!cold) {
    (void)m.Forward(prompt, false, &logits);
    m.Reset();
  }
  rt::Sampler greedy(rt::SamplerOptions{.temperature = 0});
  std::vector<int32_t> generated;
  const uint64_t io_before = ProcIoReadBytes();
  auto st = rt::GenerateFromTokens(m, nullptr, prompt, rt::GenerateOptions{.n_predict = tokens}, greedy,
                                   [&](int32_t id, std::string_view) {
                                     generated.push_back(id);
                                     return true;
                                   });
  if (!st.ok()) {
    LeaveCgroup(cg);
    return fail(st.status());
  }
  out["tokens"] = generated;
  // What actually came from storage (kernel readahead and direct reads
  // alike), per generated token: the page cache's share shows as the gap to
  // streamed_bytes_per_token.
  out["storage_bytes_per_token"] = (ProcIoReadBytes() - io_before) / std::max<size_t>(1, generated.size());
  out["weight_bytes_per_token"] = st->weight_bytes_per_token;
  out["streamed_bytes_per_token"] = st->streamed_bytes_per_token;
  out["decode_tok_s"] = st->decode_tok_s();
  out["prefill_tok_s"] = st->prefill_tok_s();
  out["peak_rss"] = st->peak_rss_bytes;
  out["budget"] = mo.stream.budget;
  out["resident_weights"] = st->streamer.resident_bytes;
  out["slots"] = st->streamer.slots;
  out["direct_io"] = st->streamer.direct_io;
  out["kv_cache"] = m.kv_cache_bytes();
  out["io_wait_s"] = st->streamer.wait_seconds;
  if (!cg.empty()) out["cgroup_max_usage"] = ReadNumber(cg + "/memory.max_usage_in_bytes");
  if (!cold) {
    // After decode, with the model's pages released: a fresh buffer gets
    // fresh physical pages each time, one source of the swing.
    model->reset();
    for (int set = 0; set < 2; ++set) mem_sets.push_back(MemReadGBs(weight_bytes, pool));
    out["mem_read_gbs_sets"] = mem_sets;
    std::sort(mem_sets.begin(), mem_sets.end());
    out["mem_read_gbs"] = mem_sets[mem_sets.size() / 2];
  }
  if (cold) {
    double bound = out["storage_read_gbs"].get<double>() * 1e9 / std::max<uint64_t>(1, st->streamed_bytes_per_token);
    out["storage_bound_tok_s"] = bound;
    out["fraction_of_bound"] = st->decode_tok_s() / bound;
    out["rss_limit"] = mo.stream.budget + m.kv_cache_bytes() + (100ull << 20);
  } else {
    double bound = out["mem_read_gbs"].get<double>() * 1e9 / st->weight_bytes_per_token;
    out["memory_bound_tok_s"] = bound;
    out["fraction_of_bound"] = st->decode_tok_s() / bound;
  }
  model->reset();
  LeaveCgroup(cg);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

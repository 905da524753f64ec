// Kernel throughput against the machine's memory read bandwidth, measured in
// the same run with the same threads.
//
//   kernels_bench [--threads N] [--isa portable|avx2|avx512] [--portable] [--no-model]
//                 [--prefill] [--in-cache] [--batch [LAYERS]] [--attention]
//
// The wall-clock parts run on the best ISA the CPU has, or the --isa one
// (--portable is --isa portable); the in-cache table shows every ISA.
//
// 1. Read bandwidth: every thread sums its share of a 1 GiB buffer.
// 2. Decode matvec: y = W x for W [2048, 8192] of each weight type. Several
//    copies of W (>= 512 MiB in all) are used in turn so the weights come from
//    DRAM, as in decode, not from the last-level cache.
// 3. A llama-3.2-1B-shaped decode step (16 layers of q/k/v/o/gate/up/down plus
//    the 128256-row output matrix) in Q4_K and Q8_0: time per token against
//    model bytes / read bandwidth, the bound a decode step cannot beat.
// 4. With --prefill: the same [2048, 8192] matrix against 64 tokens, GFLOP/s.
// 0. First (alone with --in-cache): kernel speed per core in thread CPU time
//    with the weights in L2, which holds even on a loaded machine where the
//    wall-clock figures do not; for each ISA one token and four tokens per
//    weight row (the batched decode step), as token-weight GB/s.
// 5. With --batch (alone: no other part but 0): the batched decode step of
//    continuous batching, the llama-3.2-1B shape cut to LAYERS layers (4, as
//    bench/batch_bench.sh) plus the output matrix, Q8_0, Q8_0 packed (Q8_0p:
//    PackRows's layout, as the server holds resident Q8_0 weights), Q4_0 and Q4_0p, at 1, 2, 4
//    and 8 tokens per step: tokens/s against the 1-token step of the same run.
// 6. With --attention (alone, without part 0): attention per decode token of
//    the llama-3.2-1B shape (16 layers, 32 query heads over 8 KV heads of 64)
//    at contexts 128, 512 and 2048, one thread, CPU time: the portable
//    reference against the kernel of the ISA (attention.h) in the same run,
//    and what the softmax's exps would cost as scalar std::exp calls (the
//    AVX2 kernel's own exp is vectorized), against the kernel's time; then
//    one core's read rate of a KV head's rows in the cache layout against a
//    sequential read (the bound of long contexts).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "runtime/attention.h"
#include "runtime/kernels.h"
#include "runtime/kernels_internal.h"

namespace hart::runtime {
namespace {

using Clock = std::chrono::steady_clock;
using internal::Isa;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Random weights of type t whose scale fields are sane halves (random bytes
// there would be NaN/inf and could hit slow paths).
std::vector<uint8_t> RandomWeights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  const DTypeInfo& info = Info(t);
  const size_t blocks = static_cast<size_t>(rows * cols / info.block_size);
  std::vector<uint8_t> w(blocks * info.type_size);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= w.size(); i += 8) {
    const uint64_t r = rng();
    std::memcpy(w.data() + i, &r, 8);
  }
  const uint16_t small = F32ToF16(0.01f);
  auto put = [&](size_t off, uint16_t v) { std::memcpy(w.data() + off, &v, 2); };
  for (size_t b = 0; b < blocks; ++b) {
    const size_t o = b * info.type_size;
    switch (t) {
      case DType::kF32: {
        const float f = static_cast<float>(static_cast<int32_t>(rng() % 2001) - 1000) * 1e-3f;
        std::memcpy(w.data() + o, &f, 4);
        break;
      }
      case DType::kF16: put(o, F32ToF16(static_cast<float>(rng() % 2001) * 1e-3f - 1.0f)); break;
      case DType::kBF16: put(o, static_cast<uint16_t>(0x3C00 + rng() % 0x200)); break;
      case DType::kQ4_0:
      case DType::kQ8_0: put(o, small); break;
      case DType::kQ4_K:
      case DType::kQ5_K: put(o, small), put(o + 2, small); break;
      case DType::kQ6_K: put(o + 208, small); break;
      default: break;
    }
  }
  return w;
}

double MeasureReadBandwidth(ThreadPool& pool, size_t bytes) {
  std::vector<uint64_t> buf(bytes / 8);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = i;
  const size_t parts = pool.size() * 8;
  std::vector<uint64_t> sums(parts);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    pool.ParallelFor(parts, [&](size_t p) {
      const size_t n = buf.size() / parts;
      const uint64_t* s = buf.data() + p * n;
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (size_t i = 0; i + 4 <= n; i += 4) a0 += s[i], a1 += s[i + 1], a2 += s[i + 2], a3 += s[i + 3];
      sums[p] = a0 + a1 + a2 + a3;
    });
    const double gbs = static_cast<double>(bytes) / Seconds(t0, Clock::now()) / 1e9;
    best = std::max(best, gbs);
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  if (total == 42) std::printf(" ");  // keep the sums alive
  return best;
}

struct Result {
  double seconds_per_call;
  double bytes_per_call;
};

// Runs MatMul over `mats` in turn until at least min_seconds have passed.
Result TimeMatMuls(Isa isa, const std::vector<WeightMatrix>& mats, int64_t n_tokens,
                   ThreadPool& pool, double min_seconds) {
  int64_t max_cols = 0, max_rows = 0;
  double bytes = 0;
  for (const auto& m : mats) {
    max_cols = std::max(max_cols, m.cols), max_rows = std::max(max_rows, m.rows);
    bytes += static_cast<double>(*ByteSize(m.dtype, static_cast<uint64_t>(m.rows * m.cols)));
  }
  std::vector<float> x(static_cast<size_t>(n_tokens * max_cols)), y(static_cast<size_t>(n_tokens * max_rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  for (float& v : x) v = dist(rng);
  for (const auto& m : mats) internal::MatMulIsa(isa, m, x.data(), y.data(), n_tokens, pool);  // warm up
  int64_t rounds = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  do {
    for (const auto& m : mats) internal::MatMulIsa(isa, m, x.data(), y.data(), n_tokens, pool);
    ++rounds;
    elapsed = Seconds(t0, Clock::now());
  } while (elapsed < min_seconds);
  return {elapsed / static_cast<double>(rounds * static_cast<int64_t>(mats.size())),
          bytes / static_cast<double>(mats.size())};
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Kernel speed without memory or scheduler effects: one thread, a [256, 2048]
// matrix that stays in L2, timed in thread CPU time. A decode matvec can only
// be bandwidth-bound if this times the thread count exceeds the bandwidth.
void InCacheBench(ThreadPool& one, const std::vector<Isa>& isas) {
  const int64_t rows = 256, cols = 2048;
  std::printf("\nin-cache kernel speed, 1 thread, [256, 2048], token-weight GB/s per core (CPU time):\n"
              "weight bytes times tokens per second, 1 token and 4 tokens per row (x4)\n");
  std::printf("%-6s", "type");
  for (Isa isa : isas)
    std::printf(" %10s %10s", internal::IsaName(isa), (std::string(internal::IsaName(isa)) + " x4").c_str());
  std::printf("\n");
  for (const auto& [t, packed] : std::vector<std::pair<DType, bool>>{
           {DType::kF32, false}, {DType::kF16, false}, {DType::kBF16, false}, {DType::kQ8_0, false},
           {DType::kQ8_0, true}, {DType::kQ4_0, false}, {DType::kQ4_0, true}, {DType::kQ4_K, false}, {DType::kQ5_K, false},
           {DType::kQ6_K, false}}) {
    std::vector<uint8_t> w = RandomWeights(t, rows, cols, 3);
    if (packed) PackRows(t, cols, w.data(), rows);
    const WeightMatrix m{t, rows, cols, w.data(), packed};
    std::vector<float> x(4 * cols, 0.5f), y(4 * rows);
    std::printf("%-6s", (std::string(Name(t)) + (packed ? "p" : "")).c_str());
    auto rate = [&](Isa isa, int64_t n_tokens) {
      internal::MatMulIsa(isa, m, x.data(), y.data(), n_tokens, one);
      int64_t calls = 0;
      const double c0 = ThreadCpuSeconds();
      double c = c0;
      while (c - c0 < 0.3) {
        for (int i = 0; i < 10; ++i) internal::MatMulIsa(isa, m, x.data(), y.data(), n_tokens, one);
        calls += 10;
        c = ThreadCpuSeconds();
      }
      return static_cast<double>(w.size()) * static_cast<double>(calls * n_tokens) / (c - c0) / 1e9;
    };
    for (Isa isa : isas) std::printf(" %10.2f %10.2f", rate(isa, 1), rate(isa, 4));
    std::printf("\n");
  }
}

// The matrices of one decode step of the llama-3.2-1B shape with `layers`
// layers: q, k, v, o, gate, up, down per layer and the 128256-row output.
struct Shape {
  int64_t rows, cols;
};
std::vector<Shape> Llama1BShapes(int layers) {
  std::vector<Shape> shapes;
  for (int l = 0; l < layers; ++l)
    for (Shape m : {Shape{2048, 2048}, Shape{512, 2048}, Shape{512, 2048}, Shape{2048, 2048}, Shape{8192, 2048},
                    Shape{8192, 2048}, Shape{2048, 8192}})
      shapes.push_back(m);
  shapes.push_back({128256, 2048});
  return shapes;
}

void BatchBench(Isa isa, ThreadPool& pool, int layers) {
  const std::vector<Shape> shapes = Llama1BShapes(layers);
  std::printf("\nbatched decode step: llama-3.2-1B shape, %d layers + output (%zu matrices), path %s\n", layers,
              shapes.size(), internal::IsaName(isa));
  std::printf("%-6s %9s %7s %10s %10s %9s\n", "type", "MiB", "tokens", "ms/step", "tok/s", "vs 1");
  for (const auto& [t, packed] :
       std::vector<std::pair<DType, bool>>{
           {DType::kQ8_0, false}, {DType::kQ8_0, true}, {DType::kQ4_0, false}, {DType::kQ4_0, true}}) {
    std::vector<std::vector<uint8_t>> store;
    std::vector<WeightMatrix> mats;
    double bytes = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      store.push_back(RandomWeights(t, shapes[i].rows, shapes[i].cols, 7 + i));
      if (packed) PackRows(t, shapes[i].cols, store.back().data(), shapes[i].rows);
      mats.push_back({t, shapes[i].rows, shapes[i].cols, store.back().data(), packed});
      bytes += static_cast<double>(store.back().size());
    }
    const std::string name = std::string(Name(t)) + (packed ? "p" : "");
    double base = 0;
    for (int64_t n : {1, 2, 4, 8}) {
      const Result r = TimeMatMuls(isa, mats, n, pool, 2.0);
      const double step = r.seconds_per_call * static_cast<double>(mats.size());
      const double tps = static_cast<double>(n) / step;
      if (n == 1) base = tps;
      std::printf("%-6s %9.1f %7lld %10.2f %10.1f %8.2fx\n", name.c_str(), bytes / (1 << 20),
                  static_cast<long long>(n), step * 1e3, tps, tps / base);
    }
  }
}

void MatVecBench(Isa isa, ThreadPool& pool, double bandwidth, bool prefill) {
  const int64_t rows = 2048, cols = 8192;
  std::printf("\n[2048, 8192] matvec, decode (1 token)%s, path %s\n", prefill ? " and 64-token prefill" : "",
              internal::IsaName(isa));
  std::printf("%-6s %9s %10s %9s %8s%s\n", "type", "MiB", "us/call", "GB/s", "of bw",
              prefill ? "   prefill GFLOP/s" : "");
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_K,
                  DType::kQ5_K, DType::kQ6_K}) {
    const double mat_bytes = static_cast<double>(*ByteSize(t, rows * cols));
    const int copies = static_cast<int>(std::max(2.0, 512.0 * (1 << 20) / mat_bytes));
    std::vector<std::vector<uint8_t>> store;
    std::vector<WeightMatrix> mats;
    for (int c = 0; c < copies; ++c) {
      store.push_back(RandomWeights(t, rows, cols, 100 + c));
      mats.push_back({t, rows, cols, store.back().data()});
    }
    const Result r = TimeMatMuls(isa, mats, 1, pool, 1.0);
    const double gbs = r.bytes_per_call / r.seconds_per_call / 1e9;
    std::printf("%-6s %9.1f %10.1f %9.2f %8.2f", std::string(Name(t)).c_str(), mat_bytes / (1 << 20),
                r.seconds_per_call * 1e6, gbs, gbs / bandwidth);
    if (prefill) {
      const std::vector<WeightMatrix> one = {mats[0]};
      const Result p = TimeMatMuls(isa, one, 64, pool, 1.0);
      std::printf("   %10.1f", 2.0 * rows * cols * 64 / p.seconds_per_call / 1e9);
    }
    std::printf("\n");
  }
}

void ModelBench(Isa isa, ThreadPool& pool, double bandwidth) {
  // llama-3.2-1B: hidden 2048, 32 heads / 8 kv heads of 64, ffn 8192, 16
  // layers, vocabulary 128256 (output tied to the embedding).
  const std::vector<Shape> shapes = Llama1BShapes(16);
  std::printf("\nllama-3.2-1B-shaped decode step (113 matrices), path %s\n", internal::IsaName(isa));
  std::printf("%-6s %9s %10s %9s %8s\n", "type", "MiB", "ms/token", "GB/s", "of bw");
  for (DType t : {DType::kQ4_K, DType::kQ8_0}) {
    std::vector<std::vector<uint8_t>> store;
    std::vector<WeightMatrix> mats;
    double bytes = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      store.push_back(RandomWeights(t, shapes[i].rows, shapes[i].cols, 7 + i));
      mats.push_back({t, shapes[i].rows, shapes[i].cols, store.back().data()});
      bytes += static_cast<double>(store.back().size());
    }
    const Result r = TimeMatMuls(isa, mats, 1, pool, 2.0);
    const double token_s = r.seconds_per_call * static_cast<double>(mats.size());
    const double gbs = bytes / token_s / 1e9;
    std::printf("%-6s %9.1f %10.2f %9.2f %8.2f\n", std::string(Name(t)).c_str(), bytes / (1 << 20),
                token_s * 1e3, gbs, gbs / bandwidth);
  }
}

void AttentionBench(Isa isa) {
  constexpr int64_t kLayers = 16, kHeads = 32, kKvHeads = 8, kHeadDim = 64, kGroup = kHeads / kKvHeads;
  const internal::AttendFn fast = internal::SelectAttend(isa);
  const char* fast_name = fast == internal::AttendPortable ? "portable" : "avx2";
  std::printf("\nattention per decode token: llama-3.2-1B shape (%lld layers, %lld heads, %lld kv heads, head_dim "
              "%lld), 1 thread, CPU time; kernel for path %s: %s\n",
              static_cast<long long>(kLayers), static_cast<long long>(kHeads), static_cast<long long>(kKvHeads),
              static_cast<long long>(kHeadDim), internal::IsaName(isa), fast_name);
  std::printf("%8s %10s %14s %14s %9s %12s %10s\n", "context", "KV MiB", "portable ms", "kernel ms", "speedup",
              "std::exp ms", "/ kernel");
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t ctx : {128, 512, 2048}) {
    const int64_t row = kKvHeads * kHeadDim;  // floats per position per layer
    std::vector<float> k(static_cast<size_t>(kLayers * ctx * row)), v(k.size());
    for (float& x : k) x = u(rng);
    for (float& x : v) x = u(rng);
    std::vector<float> q(kHeads * kHeadDim), out(kHeads * kHeadDim), scratch(kGroup * ctx);
    for (float& x : q) x = 2.0f * u(rng);
    auto token = [&](internal::AttendFn f) {
      for (int64_t l = 0; l < kLayers; ++l)
        for (int64_t h = 0; h < kKvHeads; ++h) {
          internal::AttentionArgs a;
          a.q = q.data() + h * kGroup * kHeadDim;
          a.k = k.data() + l * ctx * row + h * kHeadDim;
          a.v = v.data() + l * ctx * row + h * kHeadDim;
          a.k_stride = a.v_stride = row;
          a.n = ctx;
          a.group = kGroup;
          a.head_dim = a.value_dim = kHeadDim;
          a.scale = 0.125f;
          a.out = out.data() + h * kGroup * kHeadDim;
          f(a, scratch.data());
        }
    };
    auto ms_per_token = [&](const auto& fn) {
      fn();
      int64_t calls = 0;
      const double c0 = ThreadCpuSeconds();
      double c = c0;
      while (c - c0 < 0.5) {
        fn();
        ++calls;
        c = ThreadCpuSeconds();
      }
      return (c - c0) / static_cast<double>(calls) * 1e3;
    };
    const double slow = ms_per_token([&] { token(internal::AttendPortable); });
    const double quick = ms_per_token([&] { token(fast); });
    // The softmax's exps of one token: one per (layer, head, position).
    std::vector<float> e(static_cast<size_t>(ctx));
    for (float& x : e) x = u(rng);
    float sink = 0;
    const double exps = ms_per_token([&] {
      for (int64_t i = 0; i < kLayers * kHeads; ++i)
        for (float x : e) sink += std::exp(x - 1.0f);
    });
    if (sink == 42) std::printf(" ");  // keep the sums alive
    std::printf("%8lld %10.1f %14.3f %14.3f %8.2fx %12.3f %9.0f%%\n", static_cast<long long>(ctx),
                2.0 * static_cast<double>(k.size()) * 4 / (1 << 20), slow, quick, slow / quick, exps,
                100 * exps / quick);
    if (ctx == 2048) {
      // What one core reads in the kernel's pattern (one KV head's rows: 256
      // bytes every 2 KiB) against a sequential read of the same K cache.
      auto rate = [&](bool by_head) {
        double best = 0;
        uint64_t total = 0;
        for (int rep = 0; rep < 3; ++rep) {
          const auto t0 = Clock::now();
          uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
          auto sum = [&](const uint32_t* w, size_t n) {
            for (size_t i = 0; i + 4 <= n; i += 4) a0 += w[i], a1 += w[i + 1], a2 += w[i + 2], a3 += w[i + 3];
          };
          const auto* w = reinterpret_cast<const uint32_t*>(k.data());
          const size_t words = k.size(), rows = words / row;
          if (by_head) {
            for (size_t h = 0; h < kKvHeads; ++h)
              for (size_t r = 0; r < rows; ++r) {
                // Prefetched 16 rows ahead, as a scalar loop alone keeps too few misses in flight.
                if (r + 16 < rows)
                  for (size_t l = 0; l < kHeadDim; l += 16) __builtin_prefetch(w + (r + 16) * row + h * kHeadDim + l);
                sum(w + r * row + h * kHeadDim, kHeadDim);
              }
          } else {
            sum(w, words);
          }
          best = std::max(best, static_cast<double>(words) * 4 / Seconds(t0, Clock::now()) / 1e9);
          total += a0 + a1 + a2 + a3;
        }
        if (total == 42) std::printf(" ");  // keep the sums alive
        return best;
      };
      const double seq = rate(false), by_head = rate(true);
      std::printf("one core reading the context-%lld K cache (%.0f MiB): sequential %.2f GB/s, one KV head at a "
                  "time %.2f GB/s; the kernel reads K and V at %.2f GB/s\n",
                  static_cast<long long>(ctx), static_cast<double>(k.size()) * 4 / (1 << 20), seq, by_head,
                  2.0 * static_cast<double>(k.size()) * 4 / (quick * 1e-3) / 1e9);
    }
  }
}

int Main(int argc, char** argv) {
  size_t threads = 0;
  Isa isa = Isa::kAvx512;
  bool model = true, prefill = false, in_cache_only = false;
  int batch_layers = 0;
  bool attention = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--portable") isa = Isa::kPortable;
    else if (a == "--isa" && i + 1 < argc) {
      const std::string v = argv[++i];
      isa = v == "portable" ? Isa::kPortable : v == "avx2" ? Isa::kAvx2 : Isa::kAvx512;
    }
    else if (a == "--no-model") model = false;
    else if (a == "--prefill") prefill = true;
    else if (a == "--in-cache") in_cache_only = true;
    else if (a == "--attention") attention = true;
    else if (a == "--batch") {
      batch_layers = 4;
      if (i + 1 < argc && argv[i + 1][0] != '-') batch_layers = std::atoi(argv[++i]);
    }
    else {
      std::fprintf(stderr, "usage: kernels_bench [--threads N] [--isa portable|avx2|avx512] [--portable] "
                           "[--no-model] [--prefill] [--in-cache] [--batch [LAYERS]] [--attention]\n");
      return 2;
    }
  }
  ThreadPool pool(threads);
  std::printf("threads %zu, active kernel path %s\n", pool.size(), KernelPath());
  while (!internal::IsaSupported(isa)) isa = static_cast<Isa>(static_cast<int>(isa) - 1);
  std::vector<Isa> isas;
  for (Isa i : {Isa::kAvx512, Isa::kAvx2, Isa::kPortable})
    if (static_cast<int>(i) <= static_cast<int>(isa) && internal::IsaSupported(i)) isas.push_back(i);
  if (attention) {
    AttentionBench(isa);
    return 0;
  }
  ThreadPool one(1);
  InCacheBench(one, isas);
  if (in_cache_only) return 0;
  if (batch_layers > 0) {
    BatchBench(isa, pool, batch_layers);
    return 0;
  }
  const double bw = MeasureReadBandwidth(pool, size_t{1} << 30);
  std::printf("read bandwidth (1 GiB sum, best of 5): %.2f GB/s\n", bw);
  MatVecBench(isa, pool, bw, prefill);
  if (model) ModelBench(isa, pool, bw);
  return 0;
}

}  // namespace
}  // namespace hart::runtime

int main(int argc, char** argv) { return hart::runtime::Main(argc, argv); }

// Structure derivation at scale (issue 11): DeriveStructure over n tensors
// that share one digest (n empty tensors; n identical 64 KiB tensors, as a
// zero-initialised LoRA has) against the baseline of n tensors with distinct
// digests, measured in the same run. Linear derivation keeps each ratio near
// 1 and the time per tensor flat as n doubles; the old pairwise `ties` loop
// took 103 s at 200,000 empty tensors (within a whole ingest).
// Usage: structure_bench [N ...]   (default 50000 100000 200000)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "store/structure.h"

using hart::store::DeriveStructure;
using hart::store::StructureInput;

namespace {

std::vector<StructureInput> Inputs(size_t n, bool identical, uint64_t nbytes) {
  std::vector<StructureInput> in(n);
  for (size_t i = 0; i < n; ++i) {
    in[i].name = fmt::format("model.adapter.{}.lora_a.weight", i);
    in[i].nbytes = nbytes;
    in[i].sha256[0] = 1;
    if (!identical) std::memcpy(in[i].sha256.data() + 1, &i, sizeof i);
  }
  return in;
}

// Best of 3, seconds; also the edge count of the last run.
double Time(const std::vector<StructureInput>& in, size_t* edges) {
  double best = 1e9;
  for (int r = 0; r < 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto s = DeriveStructure("", "m", in);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    *edges = s.edges.size();
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> ns;
  for (int i = 1; i < argc; ++i) ns.push_back(std::strtoull(argv[i], nullptr, 10));
  if (ns.empty()) ns = {50'000, 100'000, 200'000};
  std::printf("%-10s %-16s %10s %10s %12s %8s\n", "tensors", "case", "seconds", "us/tensor", "edges",
              "x base");
  for (size_t n : ns) {
    size_t e_base = 0, e_empty = 0, e_big = 0;
    double base = Time(Inputs(n, false, 0), &e_base);
    double empty = Time(Inputs(n, true, 0), &e_empty);
    double big = Time(Inputs(n, true, hart::store::kMinTieBytes), &e_big);
    std::printf("%-10zu %-16s %10.3f %10.2f %12zu %8s\n", n, "distinct (base)", base, base / n * 1e6, e_base, "1.00");
    std::printf("%-10zu %-16s %10.3f %10.2f %12zu %8.2f\n", n, "identical empty", empty, empty / n * 1e6, e_empty,
                empty / base);
    std::printf("%-10zu %-16s %10.3f %10.2f %12zu %8.2f\n", n, "identical 64KiB", big, big / n * 1e6, e_big,
                big / base);
  }
  return 0;
}

// Workshop benchmark: quantize throughput against the read bandwidth of the
// store, measured in the same process on the same version.
//
//   workshop_bench STORE_DIR VERSION [TYPES...]
//
// For the version's F32/F16/BF16 weight matrices: first the store's read
// bandwidth (every matrix read with the workshop's TensorReader: direct I/O
// into a reused buffer, as a derivation reads), then for each type the
// derivation's compute path (read, decode to float32, quantize the rows
// across the thread pool), then the read pass again. GB/s are of the stored
// input bytes. One JSON line per pass; the ratio is against the better of
// the two read passes.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/decode.h"
#include "core/thread_pool.h"
#include "fmt/format.h"
#include "store/store.h"
#include "workshop/derive.h"
#include "workshop/quantize_rows.h"

using namespace hart;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

DType TypeOf(const std::string& s) {
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ4_K,
                  DType::kQ5_K, DType::kQ6_K})
    if (s == fmt::format("{}", Name(t)) || s == [&] {
          std::string n(Name(t));
          for (char& c : n) c = static_cast<char>(std::tolower(c));
          return n;
        }())
      return t;
  return DType::kF32;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: workshop_bench STORE_DIR VERSION [TYPES...]\n");
    return 2;
  }
  auto store = store::Store::Open(argv[1]);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
  auto src = workshop::OpenSource(**store, argv[2]);
  if (!src.ok()) return std::fprintf(stderr, "%s\n", src.status().ToString().c_str()), 1;
  std::vector<std::string> types;
  for (int i = 3; i < argc; ++i) types.push_back(argv[i]);
  if (types.empty()) types = {"q8_0", "q4_0", "q4_k", "q5_k", "q6_k"};

  std::vector<const store::TensorRow*> mats;
  uint64_t input = 0;
  for (const store::TensorRow& t : src->tensors)
    if (t.shape.size() == 2 && (t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16) &&
        t.shape.back() % 256 == 0) {
      mats.push_back(&t);
      input += t.nbytes;
    }
  const int64_t vid = src->version.id;
  double best_read = 0;
  auto read_pass = [&](const char* label) {
    workshop::TensorReader reader(**store);
    std::vector<uint8_t> buf;
    double t0 = Now();
    for (const store::TensorRow* t : mats)
      if (!reader.ReadBytes(vid, t->name, &buf).ok()) std::exit(1);
    double s = Now() - t0;
    double gbps = input / s / 1e9;
    best_read = std::max(best_read, gbps);
    std::printf("{\"pass\": \"%s\", \"bytes\": %llu, \"seconds\": %.3f, \"gbps\": %.3f}\n", label,
                static_cast<unsigned long long>(input), s, gbps);
    std::fflush(stdout);
  };
  read_pass("store_read");
  std::vector<double> q_gbps;
  for (const std::string& name : types) {
    DType to = TypeOf(name);
    if (!workshop::CanQuantizeTo(to)) return std::fprintf(stderr, "unknown type %s\n", name.c_str()), 2;
    workshop::TensorReader reader(**store);
    std::vector<uint8_t> raw, out;
    double t0 = Now();
    // As the quantize recipe computes a tensor: the stored bytes, then
    // pieces of rows decoded and quantized across the pool.
    for (const store::TensorRow* t : mats) {
      if (!reader.ReadBytes(vid, t->name, &raw).ok()) return 1;
      const uint64_t row = t->shape.back(), rows = t->shape.front();
      const uint64_t in_row = *ByteSize(t->dtype, row), row_bytes = *ByteSize(to, row);
      out.resize(rows * row_bytes);
      const uint64_t pieces = std::min<uint64_t>(rows, 256);
      ThreadPool::Default().ParallelFor(pieces, [&](size_t k) {
        const uint64_t r0 = rows * k / pieces, r1 = rows * (k + 1) / pieces;
        std::vector<float> x((r1 - r0) * row);
        (void)DecodeToF32(t->dtype, std::span<const uint8_t>(raw).subspan(r0 * in_row, (r1 - r0) * in_row), x);
        (void)workshop::QuantizeRows(to, x, std::span<uint8_t>(out.data() + r0 * row_bytes, (r1 - r0) * row_bytes));
      });
    }
    double s = Now() - t0;
    q_gbps.push_back(input / s / 1e9);
    std::printf("{\"pass\": \"quantize\", \"type\": \"%s\", \"bytes\": %llu, \"seconds\": %.3f, \"gbps\": %.3f}\n",
                name.c_str(), static_cast<unsigned long long>(input), s, input / s / 1e9);
    std::fflush(stdout);
  }
  read_pass("store_read_again");
  for (size_t i = 0; i < types.size(); ++i)
    std::printf("{\"ratio\": \"%s / store read\", \"value\": %.2f}\n", types[i].c_str(), q_gbps[i] / best_read);
  std::printf("{\"threads\": %zu, \"matrices\": %zu}\n", ThreadPool::Default().size(), mats.size());
  return 0;
}

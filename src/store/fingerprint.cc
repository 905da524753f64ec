#include "store/fingerprint.h"

#include <cmath>
#include <cstring>

#include "core/decode.h"
#include "fmt/format.h"

namespace hart::store {
namespace {

// splitmix64: a fixed, well-mixed hash, so the projection never changes
// between builds (stored fingerprints stay comparable).
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

absl::StatusOr<Fingerprint> ComputeFingerprint(DType t, uint64_t elements,
                                               std::span<const uint8_t> bytes) {
  if (!CanDecode(t))
    return absl::UnimplementedError(fmt::format("no fingerprint for dtype {}", Name(t)));
  auto need = ByteSize(t, elements);
  if (!need.ok()) return need.status();
  if (*need != bytes.size())
    return absl::InvalidArgumentError(fmt::format("fingerprint: {} {} elements need {} bytes, got {}",
                                                  elements, Name(t), *need, bytes.size()));
  Fingerprint fp{};
  if (elements == 0) return fp;
  const uint64_t bs = Info(t).block_size, ts = Info(t).type_size;
  const uint64_t s = std::min<uint64_t>(elements, kFingerprintSamples);
  // Position j lies in stratum [j*n/S, (j+1)*n/S), at an offset hashed from
  // j: strata cover the tensor evenly, and the jitter avoids aliasing with a
  // row length that a plain stride would sample as one column.
  std::vector<uint64_t> pos(s);
  std::vector<float> val(s);
  for (uint64_t j = 0; j < s; ++j) {
    auto lo = static_cast<uint64_t>((static_cast<unsigned __int128>(j) * elements) / s);
    auto hi = static_cast<uint64_t>((static_cast<unsigned __int128>(j + 1) * elements) / s);
    pos[j] = lo + Mix(j ^ 0x66696E6765727072ull) % std::max<uint64_t>(1, hi - lo);
  }
  std::vector<float> block(bs);
  uint64_t cached = UINT64_MAX;
  double sum = 0;
  uint64_t finite = 0;
  for (uint64_t j = 0; j < s; ++j) {
    uint64_t b = pos[j] / bs;
    if (b != cached) {
      absl::Status st = DecodeToF32(t, bytes.subspan(b * ts, ts), block);
      if (!st.ok()) return st;
      cached = b;
    }
    float x = block[pos[j] % bs];
    if (!std::isfinite(x)) x = 0;
    else sum += x, ++finite;
    val[j] = x;
  }
  const double mean = finite ? sum / static_cast<double>(finite) : 0;
  std::array<double, kFingerprintDims> acc{};
  for (uint64_t j = 0; j < s; ++j) {
    uint64_t h = Mix(pos[j]);
    double x = val[j] - mean;
    acc[h % kFingerprintDims] += (h >> 32) & 1 ? x : -x;
  }
  double norm = 0;
  for (double a : acc) norm += a * a;
  norm = std::sqrt(norm);
  // Below float noise the vector says nothing about the weights: zeros.
  if (norm < 1e-30) return fp;
  for (int i = 0; i < kFingerprintDims; ++i) fp[i] = static_cast<float>(acc[i] / norm);
  return fp;
}

std::vector<uint8_t> FingerprintToBlob(const Fingerprint& f) {
  std::vector<uint8_t> b(sizeof(float) * kFingerprintDims);
  std::memcpy(b.data(), f.data(), b.size());
  return b;
}

absl::StatusOr<Fingerprint> FingerprintFromBlob(std::span<const uint8_t> blob) {
  Fingerprint f{};
  if (blob.size() != sizeof(float) * kFingerprintDims)
    return absl::DataLossError(fmt::format("embedding.vector: fingerprint of {} bytes, want {}",
                                           blob.size(), sizeof(float) * kFingerprintDims));
  std::memcpy(f.data(), blob.data(), blob.size());
  return f;
}

}  // namespace hart::store

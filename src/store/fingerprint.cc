#include "store/fingerprint.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/decode.h"
#include "core/status.h"
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

absl::StatusOr<FingerprintSampler> FingerprintSampler::Make(DType t, uint64_t elements) {
  if (!CanDecode(t))
    return absl::UnimplementedError(fmt::format("no fingerprint for dtype {}", Name(t)));
  FingerprintSampler fs;
  fs.dtype_ = t;
  fs.type_size_ = Info(t).type_size;
  const uint64_t bs = Info(t).block_size;
  const uint64_t s = std::min<uint64_t>(elements, kFingerprintSamples);
  // Position j lies in stratum [j*n/S, (j+1)*n/S), at an offset hashed from
  // j: strata cover the tensor evenly, and the jitter avoids aliasing with a
  // row length that a plain stride would sample as one column. Positions
  // ascend, so their blocks do too.
  fs.pos_.resize(s);
  for (uint64_t j = 0; j < s; ++j) {
    auto lo = static_cast<uint64_t>((static_cast<unsigned __int128>(j) * elements) / s);
    auto hi = static_cast<uint64_t>((static_cast<unsigned __int128>(j + 1) * elements) / s);
    fs.pos_[j] = lo + Mix(j ^ 0x66696E6765727072ull) % std::max<uint64_t>(1, hi - lo);
    uint64_t b = fs.pos_[j] / bs;
    if (fs.blocks_.empty() || fs.blocks_.back() != b) fs.blocks_.push_back(b);
  }
  fs.bytes_.resize(fs.blocks_.size() * fs.type_size_);
  return fs;
}

void FingerprintSampler::Gather(uint64_t offset, std::span<const uint8_t> b) {
  const uint64_t ts = type_size_, end = offset + b.size();
  // The first block that ends after offset.
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), offset,
                             [ts](uint64_t off, uint64_t blk) { return off < (blk + 1) * ts; });
  for (; it != blocks_.end() && *it * ts < end; ++it) {
    uint64_t lo = std::max(*it * ts, offset), hi = std::min((*it + 1) * ts, end);
    size_t k = static_cast<size_t>(it - blocks_.begin());
    std::memcpy(bytes_.data() + k * ts + (lo - *it * ts), b.data() + (lo - offset), hi - lo);
  }
}

absl::StatusOr<Fingerprint> FingerprintSampler::Finish() const {
  Fingerprint fp{};
  const uint64_t s = pos_.size();
  if (s == 0) return fp;
  const uint64_t bs = Info(dtype_).block_size, ts = type_size_;
  std::vector<float> val(s), block(bs);
  size_t k = 0;
  double sum = 0;
  uint64_t finite = 0;
  for (uint64_t j = 0; j < s; ++j) {
    uint64_t b = pos_[j] / bs;
    if (j == 0 || b != blocks_[k]) {
      if (j != 0) ++k;
      absl::Status st = DecodeToF32(dtype_, {bytes_.data() + k * ts, ts}, block);
      if (!st.ok()) return st;
    }
    float x = block[pos_[j] % bs];
    if (!std::isfinite(x)) x = 0;
    else sum += x, ++finite;
    val[j] = x;
  }
  const double mean = finite ? sum / static_cast<double>(finite) : 0;
  std::array<double, kFingerprintDims> acc{};
  for (uint64_t j = 0; j < s; ++j) {
    uint64_t h = Mix(pos_[j]);
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

absl::StatusOr<Fingerprint> ComputeFingerprint(DType t, uint64_t elements,
                                               std::span<const uint8_t> bytes) {
  if (!CanDecode(t))
    return absl::UnimplementedError(fmt::format("no fingerprint for dtype {}", Name(t)));
  auto need = ByteSize(t, elements);
  if (!need.ok()) return need.status();
  if (*need != bytes.size())
    return absl::InvalidArgumentError(fmt::format("fingerprint: {} {} elements need {} bytes, got {}",
                                                  elements, Name(t), *need, bytes.size()));
  ASSIGN_OR_RETURN(FingerprintSampler fs, FingerprintSampler::Make(t, elements));
  fs.Gather(0, bytes);
  return fs.Finish();
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

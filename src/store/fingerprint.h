// Weight fingerprints: a fixed-size vector per tensor, computed from its
// bytes, such that a fine-tuned tensor lies near its base and an unrelated
// tensor of the same shape lies far (near-orthogonal). The MQE indexes them
// (HNSW, under <store>/index/) to answer "which base did this come from?".
//
// How: sample S = min(n, kFingerprintSamples) element positions chosen only
// from the element count n (so every tensor of that shape samples the same
// positions), decode them, subtract their mean, and sum each value with a
// sign into one of kFingerprintDims buckets, bucket and sign hashed from the
// element's index (a count sketch: one fixed sparse random ±1 projection R
// shared by all tensors). Then L2-normalize. R is linear and, by the
// Johnson-Lindenstrauss property of random sign projections, keeps inner
// products: <Rw, Rw'> ≈ <w, w'>. So for w' = w + d (a fine-tune) the cosine
// is ≈ |w| / sqrt(|w|² + |d|²), ≈ 1 for small d; for independent weights
// <w, w'> ≈ 0 and the cosine is ≈ 0 ± 1/sqrt(kFingerprintDims). Centering
// removes the shared offset (norm weights near 1.0) that would otherwise
// make every such tensor look alike.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace hart::store {

inline constexpr int kFingerprintDims = 64;
inline constexpr uint64_t kFingerprintSamples = 4096;
inline constexpr const char* kFingerprintKind = "fingerprint";

using Fingerprint = std::array<float, kFingerprintDims>;

// Unimplemented for dtypes DecodeToF32 cannot decode; InvalidArgument when
// `bytes` does not hold `elements` elements. All-equal tensors give zeros.
absl::StatusOr<Fingerprint> ComputeFingerprint(DType t, uint64_t elements,
                                               std::span<const uint8_t> bytes);

// The same fingerprint from bytes seen in pieces (ingest's chunks, in any
// order, from several threads as long as the pieces do not overlap): only
// the blocks holding the sample positions are kept, so nothing is read
// twice and a tensor is never touched through its mapping.
class FingerprintSampler {
 public:
  // Unimplemented for dtypes DecodeToF32 cannot decode.
  static absl::StatusOr<FingerprintSampler> Make(DType t, uint64_t elements);
  // Keeps what of the sampled blocks lies in tensor bytes [offset, offset + b.size()).
  void Gather(uint64_t offset, std::span<const uint8_t> b);
  // After every byte of the sampled blocks was gathered.
  absl::StatusOr<Fingerprint> Finish() const;

 private:
  DType dtype_{};
  uint64_t type_size_ = 0;
  std::vector<uint64_t> pos_;     // sample element positions
  std::vector<uint64_t> blocks_;  // distinct blocks holding them, ascending
  std::vector<uint8_t> bytes_;    // blocks_.size() * type_size_
};

// The embedding.vector blob: kFingerprintDims little-endian float32.
std::vector<uint8_t> FingerprintToBlob(const Fingerprint& f);
absl::StatusOr<Fingerprint> FingerprintFromBlob(std::span<const uint8_t> blob);

}  // namespace hart::store

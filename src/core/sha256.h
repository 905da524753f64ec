// SHA-256 through OpenSSL's EVP interface, which uses the CPU's SHA
// extensions (SHA-NI) when present.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hart {

using Digest = std::array<uint8_t, 32>;

Digest Sha256(std::span<const uint8_t> bytes);
std::string ToHex(const Digest& d);
absl::StatusOr<Digest> DigestFromHex(std::string_view hex);

// Incremental hashing for data that arrives in pieces.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::span<const uint8_t> bytes);
  Digest Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hart

// TokenizerCache: the tokenizers of every model a registry has loaded, keyed
// by the digest of what they were built from (TokenizerInputs::digest), so
// models whose weights carry the same tokenizer (a fine-tune and its base,
// versions of one model) share one Tokenizer object: ten fine-tunes of a
// llama 3 hold one 128k-token vocabulary instead of ten.
//
// Like ResidentCache for tensors: an entry lives as long as some model holds
// it (a shared_ptr); the cache keeps only weak references, so the last model
// that uses a tokenizer frees it and takes its bytes off bytes() at once.
//
// Invariant: bytes() = sum of memory_bytes() over live entries, each digest
// counted once however many models hold it. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/tokenizer.h"

namespace hart::runtime {

class TokenizerCache {
 public:
  using Handle = std::shared_ptr<const Tokenizer>;
  TokenizerCache();
  ~TokenizerCache();
  TokenizerCache(const TokenizerCache&) = delete;
  TokenizerCache& operator=(const TokenizerCache&) = delete;

  // The tokenizer of `source`: the live entry with its inputs' digest when
  // some holder has it, else built (outside the lock) and entered.
  // Concurrent calls for one digest may both build; the first to finish is
  // entered and the other gets it (its own copy dropped).
  absl::StatusOr<Handle> Get(const WeightSource& source);
  // The same for inputs already read.
  absl::StatusOr<Handle> Get(const TokenizerInputs& in);

  // Bytes (Tokenizer::memory_bytes) and number of the live tokenizers.
  uint64_t bytes() const;
  uint64_t tokenizers() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // outlives the cache while entries live
};

}  // namespace hart::runtime

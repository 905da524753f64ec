// Chunking and hashing for ingest. A run of bytes (a tensor, or a raw
// segment of a file) is cut into kChunkSize chunks from its first byte, so
// equal runs and runs with an equal prefix share their leading chunks.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core/progress.h"
#include "core/sha256.h"

namespace hart::store {

// Appends the chunk spans of `bytes` to out (none for an empty run).
void CutChunks(std::span<const uint8_t> bytes, uint64_t chunk_size,
               std::vector<std::span<const uint8_t>>* out);

// The digest recorded for a tensor component: SHA-256 over its chunk
// digests in order. Equal bytes give equal digests, like a hash of the bytes
// themselves, but it costs no second pass over the data.
Digest TensorDigest(std::span<const Digest> chunk_digests);

// Hashes every chunk, and every whole file (for the file's recorded
// SHA-256), in parallel on ThreadPool::Default(). Files go first: each is
// one long serial stream, and the chunks fill the other cores meanwhile.
void HashAll(const std::vector<std::span<const uint8_t>>& chunks, std::vector<Digest>* chunk_digests,
             const std::vector<std::span<const uint8_t>>& files, std::vector<Digest>* file_digests,
             Progress* progress);

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

}  // namespace hart::store

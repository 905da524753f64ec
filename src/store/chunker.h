// Chunking and hashing for ingest. A run of bytes (a tensor, or a raw
// segment of a file) is cut into kChunkSize chunks from its first byte, so
// equal runs and runs with an equal prefix share their leading chunks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
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

// Hashes chunks and whole files in the background while the caller
// consumes chunk digests in order: ingest stores chunk k while the chunks
// after it are still being hashed, so hashing, copying into the pack and the
// disk's writeback overlap. Chunks are claimed in ascending order by the
// workers of ThreadPool::Default(); each file's SHA-256 (one long serial
// stream) runs on a thread of its own beside them. The destructor cancels
// what is left and joins, so an early return never leaves work running.
class BackgroundHasher {
 public:
  // progress (may be null) counts the file bytes hashed.
  BackgroundHasher(const std::vector<std::span<const uint8_t>>& chunks,
                   const std::vector<std::span<const uint8_t>>& files, Progress* progress);
  ~BackgroundHasher();
  BackgroundHasher(const BackgroundHasher&) = delete;
  BackgroundHasher& operator=(const BackgroundHasher&) = delete;

  // Waits until chunk i is hashed.
  const Digest& Chunk(size_t i);
  // Wait for everything.
  const std::vector<Digest>& Chunks();
  const std::vector<Digest>& Files();

 private:
  void Join();
  const std::vector<std::span<const uint8_t>>& chunks_;
  const std::vector<std::span<const uint8_t>>& files_;
  std::vector<Digest> chunk_digests_, file_digests_;
  std::unique_ptr<std::atomic<uint8_t>[]> ready_;
  std::atomic<bool> cancel_{false};
  std::thread chunk_thread_, file_thread_;
};

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

}  // namespace hart::store

// Chunking and hashing for ingest. A run of bytes (a tensor, or a raw
// segment of a file) is cut into kChunkSize chunks from its first byte, so
// equal runs and runs with an equal prefix share their leading chunks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <cstring>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "core/sha256.h"

namespace hart::store {

// The digest recorded for a tensor component: SHA-256 over its chunk
// digests in order. Equal bytes give equal digests, like a hash of the bytes
// themselves, but it costs no second pass over the data.
Digest TensorDigest(std::span<const Digest> chunk_digests);

// A file's NinaDB digest: SHA-256 over a tag and, for each of its segments
// in order, the segment's size (little-endian u64) and TensorDigest of its
// chunks. It pins the bytes and the layout as a plain SHA-256 of the file
// would, but ingest gets it from the chunk digests it computes anyway (a
// whole-file SHA-256 is one serial pass: no ingest could run faster than
// one core hashes), and export --verify recomputes it on every core.
struct SegmentDigest {
  uint64_t size = 0;
  Digest digest{};
};
Digest FileDigest(std::span<const SegmentDigest> segments);
// The digest of a kChunkSize chunk of zeros.
const Digest& ZeroChunkDigest();

// One chunk of an ingest: `size` bytes at `offset` of a source file, or
// bytes already in memory (tensors a format decoded or built).
struct ChunkRef {
  const MappedFile* file = nullptr;  // read from here with ReadAt...
  uint64_t offset = 0;
  const uint8_t* mem = nullptr;      // ...or copied from here when file is null
  uint64_t size = 0;
};

// Appends the chunks of `bytes` (kChunkSize pieces from its first byte),
// which lie inside file's mapping when file is given, else in memory.
void CutChunks(std::span<const uint8_t> bytes, const MappedFile* file, std::vector<ChunkRef>* out);

// The ingest data path. Chunks are read (pread, not through the mapping),
// hashed by the workers of ThreadPool::Default() in ascending order and
// handed to the caller in order; a ring of kSlots chunk buffers bounds what
// is in flight, so the bytes are read from the page cache once, hashed while
// in cache, and written to the pack from the same buffer. Each whole file's
// SHA-256 (one serial stream, on a thread of its own) reads the same
// buffers: the chunks of file f must be chunks [first, first + count) in
// file order, which ingest plans them to be. The destructor cancels what is
// left and joins, so an early return never leaves work running.
class ChunkPipeline {
 public:
  static constexpr size_t kSlots = 32;
  struct FileRange {
    size_t first = 0, count = 0;
  };
  // Called on a worker with each chunk's bytes after hashing, before Wait
  // returns for it (ingest samples fingerprints there); chunks run
  // concurrently.
  using ChunkFn = std::function<void(size_t chunk, std::span<const uint8_t> bytes)>;
  // progress (may be null) counts the file bytes hashed; on_chunk may be empty.
  ChunkPipeline(std::vector<ChunkRef> chunks, std::vector<FileRange> files, Progress* progress,
                ChunkFn on_chunk = {});
  ~ChunkPipeline();
  ChunkPipeline(const ChunkPipeline&) = delete;
  ChunkPipeline& operator=(const ChunkPipeline&) = delete;

  // Waits until chunk i is read and hashed; the error that stopped the
  // pipeline (a read failure) otherwise. i must be below every Release.
  absl::Status Wait(size_t i);
  const Digest& digest(size_t i) const { return digests_[i]; }
  // The bytes of chunk i (after Wait), valid until Release passes i.
  std::span<const uint8_t> bytes(size_t i) const;
  // The caller is done with chunks [0, end); their buffers may be reused.
  void Release(size_t end);
  // Waits for the file hashes (after the last chunk was released).
  absl::Status Finish();
  const std::vector<Digest>& digests() const { return digests_; }
  const std::vector<Digest>& file_digests() const { return file_digests_; }

 private:
  void Work(size_t c);
  void HashFiles(Progress* progress);
  void Fail(absl::Status s);
  size_t FreeBelow() const { return std::min(released_, file_done_) + slots_.size(); }

  std::vector<ChunkRef> chunks_;
  std::vector<FileRange> files_;
  ChunkFn on_chunk_;
  std::vector<Digest> digests_, file_digests_;
  std::vector<std::vector<uint8_t>> slots_;
  std::unique_ptr<std::atomic<uint8_t>[]> ready_;
  std::mutex mu_;
  std::condition_variable slot_cv_, ready_cv_;
  size_t released_ = 0, file_done_ = 0;  // guarded by mu_
  bool stop_ = false;                    // guarded by mu_: cancel or failure
  absl::Status error_;                   // guarded by mu_
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

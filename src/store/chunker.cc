#include "store/chunker.h"

#include <algorithm>

#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "store/store.h"

namespace hart::store {

void CutChunks(std::span<const uint8_t> bytes, uint64_t chunk_size,
               std::vector<std::span<const uint8_t>>* out) {
  for (uint64_t pos = 0; pos < bytes.size(); pos += chunk_size)
    out->push_back(bytes.subspan(pos, std::min<uint64_t>(chunk_size, bytes.size() - pos)));
}

Digest TensorDigest(std::span<const Digest> chunk_digests) {
  return Sha256({reinterpret_cast<const uint8_t*>(chunk_digests.data()),
                 chunk_digests.size() * sizeof(Digest)});
}

namespace {

// All-zero chunks (padding, the gaps of sparse external data files) are
// common enough to skip SHA-256 for: comparing against zeros runs at memory
// speed, and their digest is known.
constexpr size_t kZeroProbe = 1 << 16;

bool AllZero(std::span<const uint8_t> b) {
  static const std::vector<uint8_t> zeros(kZeroProbe, 0);
  for (size_t pos = 0; pos < b.size(); pos += kZeroProbe) {
    size_t n = std::min(kZeroProbe, b.size() - pos);
    if (std::memcmp(b.data() + pos, zeros.data(), n) != 0) return false;
  }
  return true;
}

Digest ChunkDigest(std::span<const uint8_t> chunk) {
  static const Digest zero_full = Sha256(std::vector<uint8_t>(kChunkSize, 0));
  if (chunk.size() == kChunkSize && AllZero(chunk)) return zero_full;
  return Sha256(chunk);
}

}  // namespace

BackgroundHasher::BackgroundHasher(const std::vector<std::span<const uint8_t>>& chunks,
                                   const std::vector<std::span<const uint8_t>>& files,
                                   Progress* progress)
    : chunks_(chunks),
      files_(files),
      chunk_digests_(chunks.size()),
      file_digests_(files.size()),
      ready_(new std::atomic<uint8_t>[chunks.size() + 1]) {
  for (size_t i = 0; i < chunks.size(); ++i) ready_[i].store(0, std::memory_order_relaxed);
  if (!chunks_.empty())
    chunk_thread_ = std::thread([this] {
      ThreadPool::Default().ParallelFor(chunks_.size(), [this](size_t c) {
        if (!cancel_.load(std::memory_order_relaxed)) {
          PrefaultRange(chunks_[c]);
          chunk_digests_[c] = ChunkDigest(chunks_[c]);
        }
        ready_[c].store(1, std::memory_order_release);
        ready_[c].notify_all();
      });
    });
  if (!files_.empty())
    file_thread_ = std::thread([this, progress] {
      constexpr size_t kSlice = 4 << 20;
      for (size_t i = 0; i < files_.size(); ++i) {
        Sha256Stream s;
        std::span<const uint8_t> f = files_[i];
        for (size_t pos = 0; pos < f.size(); pos += kSlice) {
          if (cancel_.load(std::memory_order_relaxed)) return;
          auto part = f.subspan(pos, std::min(kSlice, f.size() - pos));
          PrefaultRange(part);
          s.Update(part);
          if (progress) progress->Add(part.size());
        }
        file_digests_[i] = s.Finish();
      }
    });
}

BackgroundHasher::~BackgroundHasher() {
  cancel_.store(true);
  Join();
}

void BackgroundHasher::Join() {
  if (chunk_thread_.joinable()) chunk_thread_.join();
  if (file_thread_.joinable()) file_thread_.join();
}

const Digest& BackgroundHasher::Chunk(size_t i) {
  ready_[i].wait(0, std::memory_order_acquire);
  return chunk_digests_[i];
}

const std::vector<Digest>& BackgroundHasher::Chunks() {
  Join();
  return chunk_digests_;
}

const std::vector<Digest>& BackgroundHasher::Files() {
  Join();
  return file_digests_;
}

}  // namespace hart::store

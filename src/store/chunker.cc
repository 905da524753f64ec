#include "store/chunker.h"

#include <algorithm>

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

void HashAll(const std::vector<std::span<const uint8_t>>& chunks, std::vector<Digest>* chunk_digests,
             const std::vector<std::span<const uint8_t>>& files, std::vector<Digest>* file_digests,
             Progress* progress) {
  chunk_digests->assign(chunks.size(), Digest{});
  file_digests->assign(files.size(), Digest{});
  constexpr size_t kSlice = 4 << 20;
  ThreadPool::Default().ParallelFor(files.size() + chunks.size(), [&](size_t i) {
    if (i < files.size()) {
      Sha256Stream s;
      std::span<const uint8_t> f = files[i];
      for (size_t pos = 0; pos < f.size(); pos += kSlice) {
        auto part = f.subspan(pos, std::min(kSlice, f.size() - pos));
        s.Update(part);
        if (progress) progress->Add(part.size());
      }
      (*file_digests)[i] = s.Finish();
      return;
    }
    size_t c = i - files.size();
    (*chunk_digests)[c] = ChunkDigest(chunks[c]);
    if (progress) progress->Add(chunks[c].size());
  });
}

}  // namespace hart::store

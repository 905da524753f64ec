#include "store/chunker.h"

#include <algorithm>

#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "store/store.h"

namespace hart::store {

void CutChunks(std::span<const uint8_t> bytes, const MappedFile* file, std::vector<ChunkRef>* out) {
  for (uint64_t pos = 0; pos < bytes.size(); pos += kChunkSize) {
    ChunkRef r;
    r.size = std::min<uint64_t>(kChunkSize, bytes.size() - pos);
    if (file) {
      r.file = file;
      r.offset = static_cast<uint64_t>(bytes.data() - file->bytes().data()) + pos;
    } else {
      r.mem = bytes.data() + pos;
    }
    out->push_back(r);
  }
}

Digest TensorDigest(std::span<const Digest> chunk_digests) {
  return Sha256({reinterpret_cast<const uint8_t*>(chunk_digests.data()),
                 chunk_digests.size() * sizeof(Digest)});
}

Digest FileDigest(std::span<const SegmentDigest> segments) {
  static constexpr char kTag[] = "ninadb-file-digest-1";
  Sha256Stream s;
  s.Update({reinterpret_cast<const uint8_t*>(kTag), sizeof kTag - 1});
  for (const SegmentDigest& seg : segments) {
    uint8_t size[8];
    for (int i = 0; i < 8; ++i) size[i] = static_cast<uint8_t>(seg.size >> (8 * i));
    s.Update(size);
    s.Update(seg.digest);
  }
  return s.Finish();
}

const Digest& ZeroChunkDigest() {
  static const Digest d = Sha256(std::vector<uint8_t>(kChunkSize, 0));
  return d;
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
  if (chunk.size() == kChunkSize && AllZero(chunk)) return ZeroChunkDigest();
  return Sha256(chunk);
}

}  // namespace

ChunkPipeline::ChunkPipeline(std::vector<ChunkRef> chunks, std::vector<FileRange> files,
                             Progress* progress, ChunkFn on_chunk)
    : chunks_(std::move(chunks)),
      files_(std::move(files)),
      on_chunk_(std::move(on_chunk)),
      digests_(chunks_.size()),
      file_digests_(files_.size()),
      ready_(new std::atomic<uint8_t>[chunks_.size() + 1]) {
  uint64_t biggest = 0;
  for (const ChunkRef& c : chunks_) biggest = std::max(biggest, c.size);
  slots_.resize(std::max<size_t>(1, std::min(kSlots, chunks_.size())));
  for (auto& s : slots_) s.resize(biggest);
  for (size_t i = 0; i < chunks_.size(); ++i) ready_[i].store(0, std::memory_order_relaxed);
  // Workers claim chunks in ascending order and wait for a free slot, so the
  // chunk a worker waits for never depends on one claimed after it.
  if (!chunks_.empty())
    chunk_thread_ = std::thread([this] {
      ThreadPool::Default().ParallelFor(chunks_.size(), [this](size_t c) { Work(c); });
    });
  file_thread_ = std::thread([this, progress] { HashFiles(progress); });
}

ChunkPipeline::~ChunkPipeline() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  slot_cv_.notify_all();
  ready_cv_.notify_all();
  if (chunk_thread_.joinable()) chunk_thread_.join();
  if (file_thread_.joinable()) file_thread_.join();
}

void ChunkPipeline::Fail(absl::Status s) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (error_.ok()) error_ = std::move(s);
    stop_ = true;
  }
  slot_cv_.notify_all();
  ready_cv_.notify_all();
}

void ChunkPipeline::Work(size_t c) {
  {
    std::unique_lock<std::mutex> l(mu_);
    slot_cv_.wait(l, [&] { return stop_ || c < FreeBelow(); });
    if (stop_) return;
  }
  const ChunkRef& r = chunks_[c];
  std::span<uint8_t> buf(slots_[c % slots_.size()].data(), r.size);
  if (r.file) {
    absl::Status s = r.file->ReadAt(r.offset, buf);
    if (!s.ok()) return Fail(std::move(s));
  } else {
    std::memcpy(buf.data(), r.mem, r.size);
  }
  digests_[c] = ChunkDigest(buf);
  if (on_chunk_) on_chunk_(c, buf);
  {
    std::lock_guard<std::mutex> l(mu_);
    ready_[c].store(1, std::memory_order_release);
  }
  ready_cv_.notify_all();
}

absl::Status ChunkPipeline::Wait(size_t i) {
  if (ready_[i].load(std::memory_order_acquire)) return absl::OkStatus();
  std::unique_lock<std::mutex> l(mu_);
  ready_cv_.wait(l, [&] { return stop_ || ready_[i].load(std::memory_order_acquire); });
  if (ready_[i].load(std::memory_order_acquire)) return absl::OkStatus();
  return error_.ok() ? absl::CancelledError("ingest pipeline stopped") : error_;
}

std::span<const uint8_t> ChunkPipeline::bytes(size_t i) const {
  return {slots_[i % slots_.size()].data(), chunks_[i].size};
}

void ChunkPipeline::Release(size_t end) {
  {
    std::lock_guard<std::mutex> l(mu_);
    released_ = std::max(released_, end);
  }
  slot_cv_.notify_all();
}

void ChunkPipeline::HashFiles(Progress* progress) {
  auto advance = [this](size_t to) {
    {
      std::lock_guard<std::mutex> l(mu_);
      file_done_ = std::max(file_done_, to);
    }
    slot_cv_.notify_all();
  };
  for (size_t f = 0; f < files_.size(); ++f) {
    const FileRange& fr = files_[f];
    advance(fr.first);
    Sha256Stream s;
    for (size_t c = fr.first; c < fr.first + fr.count; ++c) {
      if (!Wait(c).ok()) return;
      std::span<const uint8_t> b = bytes(c);
      s.Update(b);
      if (progress) progress->Add(b.size());
      advance(c + 1);
    }
    file_digests_[f] = s.Finish();
  }
  advance(chunks_.size());
}

absl::Status ChunkPipeline::Finish() {
  if (file_thread_.joinable()) file_thread_.join();
  if (chunk_thread_.joinable()) chunk_thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  return error_;
}

}  // namespace hart::store

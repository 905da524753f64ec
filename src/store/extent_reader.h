// ExtentReader: reads byte ranges of packs for streaming (the runtime's
// weight streamer) without going through the page cache: O_DIRECT preads of
// the aligned superset of a range, either straight into the caller's buffer
// (ReadInPlace, when the buffer is placed congruent to the pack offset) or
// through a reused aligned bounce buffer (ReadCopy, any destination).
//
// Where a pack refuses O_DIRECT (tmpfs, a file system without it) the reader
// falls back to buffered preads of the exact range, and remembers nothing
// else: Evict() drops from the page cache only ranges this reader read
// buffered, never whole packs and never another process's ranges.
//
// Pack numbers and offsets come from Store::LocateTensor; callers never see a
// path. Safe to use from many threads at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/file_util.h"

namespace hart::store {

// `size` bytes at `offset` of pack `pack`.
struct Extent {
  int64_t pack = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct ExtentReaderOptions {
  // O_DIRECT where the pack's file system takes it; false: always buffered.
  bool direct = true;
  // Test seam: called with every range Evict() drops from the page cache.
  std::function<void(const Extent&)> on_evict;
};

class ExtentReader {
 public:
  // Alignment of direct reads (file offset, length and buffer address).
  static constexpr uint64_t kAlign = 4096;
  // Largest range one bounce buffer holds (ReadCopy splits longer ones).
  static constexpr uint64_t kBounce = uint64_t{1} << 20;

  ExtentReader(std::string packs_dir, ExtentReaderOptions opts);
  ~ExtentReader();
  ExtentReader(const ExtentReader&) = delete;
  ExtentReader& operator=(const ExtentReader&) = delete;

  // Opens `pack` now (reads open it on first use otherwise). Opening every
  // pack of a version up front pins the files a later gc may replace.
  absl::Status Prepare(int64_t pack);
  // Whether reads of `pack` bypass the page cache.
  bool Direct(int64_t pack);

  // Reads the extent's bytes to dst[0, e.size). Requires
  // (dst - e.offset) % kAlign == 0: a direct read then fills the whole
  // aligned superset, dst - e.offset % kAlign up to the next block boundary
  // past the end, which the caller must own.
  absl::Status ReadInPlace(const Extent& e, uint8_t* dst);
  // Reads the extent's bytes to out (out.size() == e.size), anywhere.
  absl::Status ReadCopy(const Extent& e, std::span<uint8_t> out);
  // Drops from the page cache the parts of `e` this reader read buffered
  // (nothing for direct reads, which cached nothing). With `force`, the
  // whole extent (before a cold run).
  void Evict(const Extent& e, bool force = false);

 private:
  struct Pack {
    Fd buffered;
    Fd direct;  // invalid: the pack refused O_DIRECT
    std::atomic<bool> use_direct{false};  // cleared when a direct read is refused
    std::string path;
  };
  absl::StatusOr<Pack*> Get(int64_t pack);
  absl::Status ReadDirect(Pack& p, const Extent& e, uint8_t* dst);
  absl::Status ReadBuffered(Pack& p, const Extent& e, uint8_t* dst);
  uint8_t* TakeBounce();
  void GiveBounce(uint8_t* b);

  std::string dir_;
  ExtentReaderOptions opts_;
  std::mutex mu_;
  std::map<int64_t, std::unique_ptr<Pack>> packs_;
  // Buffered reads not yet evicted: pack -> [offset, end) ranges.
  std::map<int64_t, std::map<uint64_t, uint64_t>> cached_;
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> bounce_owned_;
  std::vector<uint8_t*> bounce_free_;
};

}  // namespace hart::store

// WeightStreamer: keeps the resident weights under a memory budget.
//
// The forward pass uses weights as a fixed cycle of groups (one group per
// layer, then slices of the output head), walking all of them in order once
// per forward call. Without a budget every group is a zero-copy view of the
// source's mapping. With a budget the streamer pins the groups the caller
// ranks first (output head, first layers) while room remains for a window of
// slots, and a prefetch thread reads the other groups into the slots ahead of
// use, in cycle order, while the forward pass computes the group before. Each
// group is cut into chunks that several reader threads read at once: one
// synchronous reader keeps one request in flight, far below what storage
// delivers with a deeper queue.
//
// Invariants: resident weight bytes = pinned bytes + slots x slot size <=
// budget, fixed for the streamer's life (slots are allocated once). The
// forward pass must Acquire streamed groups in cycle order and Release each
// before acquiring the next streamed one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/weight_source.h"

namespace hart::runtime {

struct WeightGroup {
  std::vector<WeightPiece> pieces;
  int pin_rank = 0;  // lower ranks are pinned first when the budget allows
};

struct StreamerOptions {
  uint64_t budget = 0;  // 0: no budget, everything mapped
  // Evict streamed ranges from the page cache after reading them, so every
  // token's reads go to storage (benchmarks of the storage bound). Sources
  // that read with O_DIRECT have nothing to evict.
  bool drop_page_cache = false;
  // Reads in flight and the size they are cut to (0: the defaults,
  // kReaders and kReadOp in weight_streamer.cc); for benchmarks.
  int readers = 0;
  uint64_t read_op_bytes = 0;
};

struct StreamerStats {
  uint64_t budget = 0;
  uint64_t pinned_bytes = 0;
  uint64_t slot_bytes = 0;
  int slots = 0;
  int pinned_groups = 0;
  int streamed_groups = 0;
  uint64_t resident_bytes = 0;   // pinned + slots (the bound the budget holds)
  uint64_t streamed_bytes_per_pass = 0;  // bytes of the streamed groups' reads
  uint64_t bytes_read = 0;       // read from the source since creation
  double wait_seconds = 0;       // time Acquire spent waiting on I/O
  bool direct_io = false;        // the source reads past the page cache
};

class WeightStreamer {
 public:
  // `extra_pinned` bytes (small vectors the caller converts and keeps) count
  // against the budget. FailedPrecondition when the budget cannot hold them
  // plus the largest group.
  static absl::StatusOr<std::unique_ptr<WeightStreamer>> Create(WeightSource* source,
                                                                std::vector<WeightGroup> groups,
                                                                const StreamerOptions& opts,
                                                                uint64_t extra_pinned);
  // The smallest budget Create accepts for these groups (with any source).
  static uint64_t MinBudget(const std::vector<WeightGroup>& groups, uint64_t extra_pinned);
  ~WeightStreamer();
  WeightStreamer(const WeightStreamer&) = delete;
  WeightStreamer& operator=(const WeightStreamer&) = delete;

  // Blocks until group g is resident; one pointer per piece.
  absl::StatusOr<std::vector<const uint8_t*>> Acquire(size_t g);
  void Release(size_t g);
  bool IsPinned(size_t g) const { return pinned_[g]; }
  // Whether piece p of group g is in the kernels' packed layout
  // (runtime::PackRows): mapped from a source that packs it, or pinned
  // and packed in place after loading. Streamed pieces never are.
  bool Packed(size_t g, size_t p) const { return !packed_[g].empty() && packed_[g][p]; }
  bool streaming() const { return !streamed_.empty(); }
  size_t group_count() const { return groups_.size(); }
  uint64_t GroupBytes(size_t g) const;

  // Reads bytes of a tensor outside the groups (embedding rows), counted in
  // bytes_read.
  absl::Status ReadDirect(const WeightInfo& t, uint64_t offset, std::span<uint8_t> out);

  StreamerStats Stats() const;

 private:
  WeightStreamer() = default;
  void ReaderLoop();
  // Queues the reads of the next cycle positions into every free slot, in
  // cycle order (mu_ held).
  void FillSlots();
  // Chooses the pinned groups and the slot size (see the .cc).
  void ChoosePinned(uint64_t budget, uint64_t extra_pinned);

  struct Job {
    const BufferPlan::Op* op;
    uint8_t* base;
    int slot;  // -1: a pinned group's load
  };

  WeightSource* source_ = nullptr;
  StreamerOptions opts_;
  std::vector<WeightGroup> groups_;
  std::vector<BufferPlan> plans_;  // per group, when streaming
  std::vector<bool> pinned_;
  std::vector<std::vector<const uint8_t*>> pinned_ptrs_;  // per group, when pinned or mapped
  std::vector<std::vector<bool>> packed_;                 // per group and piece (Packed)
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> owned_;
  std::vector<size_t> streamed_;      // cycle order of the streamed groups
  uint64_t pinned_bytes_ = 0;
  uint64_t slot_bytes_ = 0;

  struct Slot {
    std::unique_ptr<uint8_t, void (*)(void*)> buf{nullptr, free};
    enum class State { kFree, kLoading, kReady } state = State::kFree;
    uint64_t seq = 0;  // which position of the endless cycle it holds
    size_t pending = 0;  // its ops not yet done
    absl::Status status;
    std::vector<const uint8_t*> ptrs;
  };
  std::vector<Slot> slots_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // readers: jobs queued or stop
  std::condition_variable done_cv_;  // a slot or the pinned loads finished
  std::deque<Job> queue_;
  size_t pin_pending_ = 0;
  absl::Status pin_status_;
  uint64_t load_seq_ = 0;     // next cycle position queued for loading
  uint64_t compute_seq_ = 0;  // next cycle position the forward pass acquires
  bool stop_ = false;
  std::vector<std::thread> readers_;
  std::atomic<uint64_t> bytes_read_{0};
  std::atomic<uint64_t> wait_ns_{0};
};

}  // namespace hart::runtime

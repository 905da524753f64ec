#include "runtime/weight_streamer.h"

#include "runtime/kernels.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>

#include "core/progress.h"
#include "core/status.h"

namespace hart::runtime {
namespace {

// Reads in flight and the size they are cut to. Buffered reads (the file
// path) measured on the cold --budget-min benchmark (1B-shaped Q4_0, layers
// of ~34 MiB): one reader 0.45 of the storage bound, 4 x 4 MiB 0.41,
// 8 x 1 MiB 0.71, 8 x 512 KiB 0.79, 16 x 1 MiB 0.63. For the store's direct
// reads see docs/PERFORMANCE.md ("Streaming from the store").
constexpr int kReaders = 8;
constexpr uint64_t kReadOp = uint64_t{1} << 20;
constexpr uint64_t kAlign = BufferPlan::kBufferAlign;

std::unique_ptr<uint8_t, void (*)(void*)> Allocate(uint64_t n) {
  void* p = std::aligned_alloc(kAlign, std::max<uint64_t>((n + kAlign - 1) / kAlign * kAlign, kAlign));
  return {static_cast<uint8_t*>(p), free};
}

uint64_t BoundBytes(const WeightGroup& g) {
  uint64_t n = 0;
  for (const auto& p : g.pieces) n += BufferPlan::Bound(p.nbytes);
  return n;
}

}  // namespace

uint64_t WeightStreamer::GroupBytes(size_t g) const {
  return plans_.empty() ? BoundBytes(groups_[g]) : plans_[g].bytes;
}

uint64_t WeightStreamer::MinBudget(const std::vector<WeightGroup>& groups, uint64_t extra_pinned) {
  uint64_t max_group = 0;
  for (const auto& g : groups) max_group = std::max(max_group, BoundBytes(g));
  return extra_pinned + max_group;
}

// Every group is read once per pass, so the bytes streamed per pass are
// those of the unpinned groups: pin as many bytes as the budget holds beside
// the slots. The slot size is that of the largest unpinned group, so each
// candidate slot size s (a group size) is tried: groups above s must be
// pinned, then the others are pinned largest first (ties: the caller's rank)
// while they fit beside two slots of s (one where two do not fit). Two slots
// beat one whatever the bytes (one slot leaves reads and compute in turn);
// among those the most pinned bytes win.
void WeightStreamer::ChoosePinned(uint64_t budget, uint64_t extra_pinned) {
  const size_t n = groups_.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (GroupBytes(a) != GroupBytes(b)) return GroupBytes(a) > GroupBytes(b);
    return groups_[a].pin_rank < groups_[b].pin_rank;
  });
  struct Choice {
    int slots = 0;
    uint64_t pinned = 0;
    std::vector<bool> pin;
  } best;
  for (size_t si = 0; si < n; ++si) {
    const uint64_t s = GroupBytes(order[si]);
    if (si > 0 && GroupBytes(order[si - 1]) == s) continue;
    uint64_t must = 0;  // groups larger than s
    for (size_t k = 0; k < si; ++k) must += GroupBytes(order[k]);
    for (int slots : {2, 1}) {
      if (extra_pinned + must + slots * s > budget) continue;
      uint64_t room = budget - extra_pinned - must - slots * s, pinned = must;
      std::vector<bool> pin(n, false);
      for (size_t k = 0; k < si; ++k) pin[order[k]] = true;
      for (size_t k = si; k < n; ++k) {
        const uint64_t b = GroupBytes(order[k]);
        if (b <= room) {
          pin[order[k]] = true;
          room -= b;
          pinned += b;
        }
      }
      if (std::find(pin.begin(), pin.end(), false) == pin.end()) continue;  // all pinned: not this case
      if (slots > best.slots || (slots == best.slots && pinned > best.pinned)) best = {slots, pinned, pin};
      break;  // two slots fit: one slot is never better for this s
    }
  }
  if (!best.pin.empty()) pinned_ = best.pin;
}

absl::StatusOr<std::unique_ptr<WeightStreamer>> WeightStreamer::Create(WeightSource* source,
                                                                       std::vector<WeightGroup> groups,
                                                                       const StreamerOptions& opts,
                                                                       uint64_t extra_pinned) {
  std::unique_ptr<WeightStreamer> s(new WeightStreamer());
  s->source_ = source;
  s->opts_ = opts;
  s->groups_ = std::move(groups);
  const size_t n = s->groups_.size();
  s->pinned_.assign(n, false);
  s->pinned_ptrs_.resize(n);
  s->packed_.resize(n);

  if (opts.budget == 0) {
    // Everything mapped: the source's pages are the weights.
    for (size_t g = 0; g < n; ++g) {
      s->pinned_[g] = true;
      for (const auto& p : s->groups_[g].pieces) {
        ASSIGN_OR_RETURN(auto span, source->Map(*p.info));
        s->pinned_ptrs_[g].push_back(span.data() + p.offset);
        s->packed_[g].push_back(source->MapPacked(*p.info));
      }
    }
    return s;
  }

  uint64_t op_bytes = opts.read_op_bytes ? opts.read_op_bytes : source->preferred_read_op();
  op_bytes = std::max(kAlign, (op_bytes ? op_bytes : kReadOp) / kAlign * kAlign);
  uint64_t max_group = 0, total = 0;
  for (size_t g = 0; g < n; ++g) {
    ASSIGN_OR_RETURN(BufferPlan plan, source->PlanBuffer(s->groups_[g].pieces, op_bytes));
    s->plans_.push_back(std::move(plan));
    max_group = std::max(max_group, s->GroupBytes(g));
    total += s->GroupBytes(g);
  }
  const uint64_t budget = opts.budget;
  if (extra_pinned + max_group > budget)
    return absl::FailedPreconditionError(fmt::format(
        "memory budget {} is too small: the largest layer needs {} (plus {} of norms); at least {}",
        HumanBytes(budget), HumanBytes(max_group), HumanBytes(extra_pinned),
        HumanBytes(extra_pinned + max_group)));
  if (extra_pinned + total <= budget) {
    s->pinned_.assign(n, true);
  } else {
    s->ChoosePinned(budget, extra_pinned);
  }

  const int nreaders = opts.readers > 0 ? opts.readers : kReaders;
  for (int i = 0; i < nreaders; ++i) s->readers_.emplace_back([p = s.get()] { p->ReaderLoop(); });

  // Pinned groups load once, through the same readers.
  uint64_t pinned = extra_pinned;
  {
    std::unique_lock<std::mutex> l(s->mu_);
    for (size_t g = 0; g < n; ++g) {
      if (!s->pinned_[g]) continue;
      auto buf = Allocate(s->GroupBytes(g));
      if (!buf) return absl::ResourceExhaustedError("cannot allocate pinned weights");
      for (uint64_t at : s->plans_[g].piece_at) s->pinned_ptrs_[g].push_back(buf.get() + at);
      for (const auto& op : s->plans_[g].ops) s->queue_.push_back(Job{&op, buf.get(), -1});
      s->pin_pending_ += s->plans_[g].ops.size();
      s->owned_.push_back(std::move(buf));
      pinned += s->GroupBytes(g);
    }
    s->work_cv_.notify_all();
    s->done_cv_.wait(l, [&] { return s->pin_pending_ == 0; });
    RETURN_IF_ERROR(s->pin_status_);
  }
  s->pinned_bytes_ = pinned;
  // Pinned pieces that are whole rows of a matrix the kernels read faster
  // packed are packed in place, once: they stay for the model's life.
  for (size_t g = 0; g < n; ++g) {
    if (!s->pinned_[g]) continue;
    s->packed_[g].assign(s->groups_[g].pieces.size(), false);
    for (size_t i = 0; i < s->groups_[g].pieces.size(); ++i) {
      const WeightPiece& p = s->groups_[g].pieces[i];
      const WeightInfo& t = *p.info;
      if (t.shape.size() != 2 || !PackedLayoutHelps(t.dtype, static_cast<int64_t>(t.shape[1]))) continue;
      const uint64_t row = t.nbytes / t.shape[0];
      if (row == 0 || p.offset % row != 0 || p.nbytes % row != 0) continue;
      bool seen = false;  // the same bytes twice in a group are packed once
      for (size_t j = 0; j < i; ++j) seen = seen || s->pinned_ptrs_[g][j] == s->pinned_ptrs_[g][i];
      if (seen) continue;
      PackRows(t.dtype, static_cast<int64_t>(t.shape[1]), const_cast<uint8_t*>(s->pinned_ptrs_[g][i]),
               static_cast<int64_t>(p.nbytes / row));
      s->packed_[g][i] = true;
    }
  }
  for (size_t g = 0; g < n; ++g)
    if (!s->pinned_[g]) {
      s->streamed_.push_back(g);
      s->slot_bytes_ = std::max(s->slot_bytes_, s->GroupBytes(g));
    }
  if (s->streamed_.empty()) return s;
  uint64_t nslots = (budget - pinned) / s->slot_bytes_;
  nslots = std::min<uint64_t>(nslots, s->streamed_.size());
  nslots = std::max<uint64_t>(nslots, 1);
  s->slots_.resize(nslots);
  for (auto& slot : s->slots_) {
    slot.buf = Allocate(s->slot_bytes_);
    if (!slot.buf) return absl::ResourceExhaustedError("cannot allocate streaming buffers");
  }
  std::lock_guard<std::mutex> l(s->mu_);
  s->FillSlots();
  return s;
}

WeightStreamer::~WeightStreamer() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : readers_) t.join();
}

void WeightStreamer::ReaderLoop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    work_cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const Job j = queue_.front();
    queue_.pop_front();
    l.unlock();
    absl::Status st = source_->RunOp(*j.op, j.base, opts_.drop_page_cache);
    bytes_read_ += j.op->size;
    l.lock();
    if (j.slot < 0) {
      if (!st.ok() && pin_status_.ok()) pin_status_ = st;
      if (--pin_pending_ == 0) done_cv_.notify_all();
    } else {
      Slot& slot = slots_[j.slot];
      if (!st.ok() && slot.status.ok()) slot.status = st;
      if (--slot.pending == 0) {
        slot.state = Slot::State::kReady;
        done_cv_.notify_all();
      }
    }
  }
}

void WeightStreamer::FillSlots() {
  bool queued = false;
  while (!stop_) {
    const size_t si = load_seq_ % slots_.size();
    Slot& slot = slots_[si];
    if (slot.state != Slot::State::kFree) break;
    const BufferPlan& plan = plans_[streamed_[load_seq_ % streamed_.size()]];
    slot.state = plan.ops.empty() ? Slot::State::kReady : Slot::State::kLoading;
    slot.seq = load_seq_++;
    slot.status = absl::OkStatus();
    slot.pending = plan.ops.size();
    slot.ptrs.clear();
    for (uint64_t at : plan.piece_at) slot.ptrs.push_back(slot.buf.get() + at);
    for (const auto& op : plan.ops) queue_.push_back(Job{&op, slot.buf.get(), static_cast<int>(si)});
    queued = true;
  }
  if (queued) work_cv_.notify_all();
}

absl::StatusOr<std::vector<const uint8_t*>> WeightStreamer::Acquire(size_t g) {
  if (pinned_[g]) return pinned_ptrs_[g];
  std::unique_lock<std::mutex> l(mu_);
  const uint64_t seq = compute_seq_;
  if (streamed_[seq % streamed_.size()] != g)
    return absl::InternalError(fmt::format("weight group {} acquired out of cycle order", g));
  Slot& slot = slots_[seq % slots_.size()];
  auto t0 = std::chrono::steady_clock::now();
  done_cv_.wait(l, [&] { return slot.state == Slot::State::kReady && slot.seq == seq; });
  wait_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
                  .count();
  if (!slot.status.ok()) return slot.status;
  return slot.ptrs;
}

void WeightStreamer::Release(size_t g) {
  if (pinned_[g]) return;
  std::lock_guard<std::mutex> l(mu_);
  Slot& slot = slots_[compute_seq_ % slots_.size()];
  slot.state = Slot::State::kFree;
  ++compute_seq_;
  FillSlots();
}

absl::Status WeightStreamer::ReadDirect(const WeightInfo& t, uint64_t offset, std::span<uint8_t> out) {
  bytes_read_ += out.size();
  return source_->Read(t, offset, out);
}

StreamerStats WeightStreamer::Stats() const {
  StreamerStats st;
  st.budget = opts_.budget;
  st.pinned_bytes = pinned_bytes_;
  st.slot_bytes = slot_bytes_;
  st.slots = static_cast<int>(slots_.size());
  for (bool p : pinned_) st.pinned_groups += p ? 1 : 0;
  st.streamed_groups = static_cast<int>(streamed_.size());
  st.resident_bytes = pinned_bytes_ + slot_bytes_ * slots_.size();
  for (size_t g : streamed_)
    for (const auto& op : plans_[g].ops) st.streamed_bytes_per_pass += op.size;
  st.bytes_read = bytes_read_.load();
  st.wait_seconds = wait_ns_.load() / 1e9;
  st.direct_io = source_->direct_io();
  return st;
}

}  // namespace hart::runtime

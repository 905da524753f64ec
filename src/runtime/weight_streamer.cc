#include "runtime/weight_streamer.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>

#include "core/progress.h"
#include "core/status.h"

namespace hart::runtime {
namespace {

constexpr uint64_t kAlign = 64;
// Reads in flight while a group loads (the prefetch thread plus helpers) and
// the size they are cut to. Measured on the cold --budget-min benchmark
// (1B-shaped Q4_0, layers of ~34 MiB): one reader 0.45 of the storage bound,
// 4 x 4 MiB 0.41, 8 x 1 MiB 0.71, 8 x 512 KiB 0.79, 16 x 1 MiB 0.63. A
// posix_fadvise(WILLNEED) of the next group on top made every setting slower
// (0.25): the readahead it queues competes with the reads being waited on.
constexpr int kReaders = 8;
constexpr uint64_t kReadChunk = uint64_t{1} << 20;
uint64_t RoundUp(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::unique_ptr<uint8_t, void (*)(void*)> Allocate(uint64_t n) {
  void* p = std::aligned_alloc(kAlign, std::max<uint64_t>(RoundUp(n), kAlign));
  return {static_cast<uint8_t*>(p), free};
}

}  // namespace

uint64_t WeightStreamer::GroupBytes(size_t g) const {
  uint64_t n = 0;
  for (const auto& p : groups_[g].pieces) n += RoundUp(p.nbytes);
  return n;
}

uint64_t WeightStreamer::MinBudget(const std::vector<WeightGroup>& groups, uint64_t extra_pinned) {
  uint64_t max_group = 0;
  for (const auto& g : groups) {
    uint64_t n = 0;
    for (const auto& p : g.pieces) n += RoundUp(p.nbytes);
    max_group = std::max(max_group, n);
  }
  return extra_pinned + max_group;
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
  s->cycle_pos_.assign(n, SIZE_MAX);

  if (opts.budget == 0) {
    // Everything mapped: the source's pages are the weights.
    for (size_t g = 0; g < n; ++g) {
      s->pinned_[g] = true;
      for (const auto& p : s->groups_[g].pieces) {
        ASSIGN_OR_RETURN(auto span, source->Map(*p.info));
        s->pinned_ptrs_[g].push_back(span.data() + p.offset);
      }
    }
    return s;
  }

  uint64_t max_group = 0, total = 0;
  for (size_t g = 0; g < n; ++g) {
    max_group = std::max(max_group, s->GroupBytes(g));
    total += s->GroupBytes(g);
  }
  const uint64_t budget = opts.budget;
  if (extra_pinned + max_group > budget)
    return absl::FailedPreconditionError(fmt::format(
        "memory budget {} is too small: the largest layer needs {} (plus {} of norms); at least {}",
        HumanBytes(budget), HumanBytes(max_group), HumanBytes(extra_pinned),
        HumanBytes(extra_pinned + max_group)));
  uint64_t pinned = extra_pinned;
  if (pinned + total <= budget) {
    max_group = 0;  // everything fits: no window needed
  }
  // Two slots let the prefetch thread read one group while the forward pass
  // computes another; pinning never eats into them.
  const uint64_t reserve = (pinned + 2 * max_group <= budget) ? 2 * max_group : max_group;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return s->groups_[a].pin_rank < s->groups_[b].pin_rank; });
  for (size_t g : order) {
    uint64_t b = s->GroupBytes(g);
    if (pinned + b + reserve > budget) continue;
    auto buf = Allocate(b);
    if (!buf) return absl::ResourceExhaustedError("cannot allocate pinned weights");
    uint64_t off = 0;
    for (const auto& p : s->groups_[g].pieces) {
      RETURN_IF_ERROR(source->Read(*p.info, p.offset, std::span<uint8_t>(buf.get() + off, p.nbytes)));
      s->pinned_ptrs_[g].push_back(buf.get() + off);
      off += RoundUp(p.nbytes);
    }
    s->bytes_read_ += off;
    s->owned_.push_back(std::move(buf));
    s->pinned_[g] = true;
    pinned += b;
  }
  s->pinned_bytes_ = pinned;
  for (size_t g = 0; g < n; ++g)
    if (!s->pinned_[g]) {
      s->cycle_pos_[g] = s->streamed_.size();
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
  s->thread_ = std::thread([p = s.get()] { p->PrefetchLoop(); });
  for (int i = 1; i < kReaders; ++i) s->readers_.emplace_back([p = s.get()] { p->ReaderLoop(); });
  return s;
}

WeightStreamer::~WeightStreamer() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> l(jobs_mu_);
    jobs_stop_ = true;
  }
  jobs_cv_.notify_all();
  for (auto& t : readers_) t.join();
}

absl::Status WeightStreamer::RunJob(const ReadJob& j) {
  absl::Status st = source_->Read(*j.info, j.offset, j.dst);
  if (opts_.drop_page_cache) source_->Release(*j.info, j.offset, j.dst.size(), true);
  bytes_read_ += j.dst.size();
  return st;
}

void WeightStreamer::ReaderLoop() {
  std::unique_lock<std::mutex> l(jobs_mu_);
  for (;;) {
    jobs_cv_.wait(l, [&] { return jobs_stop_ || next_job_ < jobs_.size(); });
    if (jobs_stop_) return;
    const ReadJob j = jobs_[next_job_++];
    l.unlock();
    absl::Status st = RunJob(j);
    l.lock();
    if (!st.ok() && jobs_status_.ok()) jobs_status_ = st;
    if (--jobs_left_ == 0) jobs_cv_.notify_all();
  }
}

absl::Status WeightStreamer::ReadAll(std::vector<ReadJob> jobs) {
  std::unique_lock<std::mutex> l(jobs_mu_);
  jobs_ = std::move(jobs);
  next_job_ = 0;
  jobs_left_ = jobs_.size();
  jobs_status_ = absl::OkStatus();
  jobs_cv_.notify_all();
  // This thread reads too, then waits for the helpers' last chunks.
  while (next_job_ < jobs_.size()) {
    const ReadJob j = jobs_[next_job_++];
    l.unlock();
    absl::Status st = RunJob(j);
    l.lock();
    if (!st.ok() && jobs_status_.ok()) jobs_status_ = st;
    --jobs_left_;
  }
  jobs_cv_.wait(l, [&] { return jobs_left_ == 0; });
  jobs_.clear();
  next_job_ = 0;
  return jobs_status_;
}

void WeightStreamer::PrefetchLoop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    Slot& slot = slots_[load_seq_ % slots_.size()];
    cv_.wait(l, [&] { return stop_ || slot.state == Slot::State::kFree; });
    if (stop_) return;
    const uint64_t seq = load_seq_;
    slot.state = Slot::State::kLoading;
    slot.seq = seq;
    l.unlock();
    const WeightGroup& g = groups_[streamed_[seq % streamed_.size()]];
    std::vector<const uint8_t*> ptrs;
    std::vector<ReadJob> jobs;
    uint64_t off = 0;
    for (const auto& p : g.pieces) {
      for (uint64_t c = 0; c < p.nbytes; c += kReadChunk) {
        const uint64_t n = std::min(kReadChunk, p.nbytes - c);
        jobs.push_back(ReadJob{p.info, p.offset + c, std::span<uint8_t>(slot.buf.get() + off + c, n)});
      }
      ptrs.push_back(slot.buf.get() + off);
      off += RoundUp(p.nbytes);
    }
    absl::Status st = ReadAll(std::move(jobs));
    l.lock();
    slot.status = st;
    slot.ptrs = std::move(ptrs);
    slot.state = Slot::State::kReady;
    ++load_seq_;
    cv_.notify_all();
  }
}

absl::StatusOr<std::vector<const uint8_t*>> WeightStreamer::Acquire(size_t g) {
  if (pinned_[g]) return pinned_ptrs_[g];
  std::unique_lock<std::mutex> l(mu_);
  const uint64_t seq = compute_seq_;
  if (streamed_[seq % streamed_.size()] != g)
    return absl::InternalError(fmt::format("weight group {} acquired out of cycle order", g));
  Slot& slot = slots_[seq % slots_.size()];
  auto t0 = std::chrono::steady_clock::now();
  cv_.wait(l, [&] { return slot.state == Slot::State::kReady && slot.seq == seq; });
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
  cv_.notify_all();
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
  st.bytes_read = bytes_read_.load();
  st.wait_seconds = wait_ns_.load() / 1e9;
  return st;
}

}  // namespace hart::runtime

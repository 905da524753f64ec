#include "serve/ingest_progress.h"

namespace hart::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kMinInterval = std::chrono::milliseconds(250);
constexpr auto kForgetAfter = std::chrono::seconds(60);
}  // namespace

std::unique_ptr<IngestProgress::Sink> IngestProgress::Start(const app::Caller& caller, const std::string& model,
                                                            const std::string& filename) {
  std::lock_guard l(mu_);
  Job j;
  j.id = next_id_++;
  j.model = model;
  j.filename = filename;
  j.owner = caller.owner;
  j.seq = ++seq_;
  j.last_told = Clock::now();
  jobs_.push_back(std::move(j));
  return std::make_unique<Sink>(this, jobs_.back().id);
}

void IngestProgress::Update(int64_t id, const std::function<bool(Job&)>& f) {
  std::lock_guard l(mu_);
  for (Job& j : jobs_) {
    if (j.id != id) continue;
    if (f(j)) j.seq = ++seq_;
    return;
  }
}

void IngestProgress::Sink::Begin(std::string_view label, uint64_t total, std::string_view unit) {
  board_->Update(id_, [&](Job& j) {
    j.label = std::string(label);
    j.total = total;
    j.unit = std::string(unit);
    j.done = 0;
    j.told_done = 0;
    j.last_told = Clock::now();
    return true;
  });
}

void IngestProgress::Sink::Advance(uint64_t n) {
  board_->Update(id_, [&](Job& j) {
    j.done += n;
    // Rate-limited: told at most every 250 ms, and only after 1 % more of
    // the total (the last byte is always told).
    auto now = Clock::now();
    const bool step = j.total == 0 || (j.done - j.told_done) * 100 >= j.total;
    if (j.done < j.total && (!step || now - j.last_told < kMinInterval)) return false;
    j.told_done = j.done;
    j.last_told = now;
    return true;
  });
}

void IngestProgress::Sink::Finish(const std::string& version, const std::string& error) {
  board_->Update(id_, [&](Job& j) {
    j.state = error.empty() ? "done" : "failed";
    j.version = version;
    j.error = error;
    if (error.empty() && j.total > 0) j.done = j.total;
    j.ended = Clock::now();
    return true;
  });
}

json IngestProgress::ToJson(const Job& j) {
  json o = {{"job", j.id},     {"model", j.model}, {"filename", j.filename}, {"state", j.state},
            {"stage", j.label}, {"done", j.done},   {"total", j.total},       {"unit", j.unit}};
  if (!j.version.empty()) o["version"] = j.version;
  if (!j.error.empty()) o["error"] = j.error;
  return o;
}

std::vector<json> IngestProgress::Changes(const app::Caller& caller, uint64_t* cursor) {
  std::lock_guard l(mu_);
  std::vector<json> out;
  auto now = Clock::now();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->state != "running" && now - it->ended > kForgetAfter) {
      it = jobs_.erase(it);
      continue;
    }
    if (it->seq > *cursor && (caller.role == app::AccessRole::kAdmin || caller.owner == it->owner)) {
      out.push_back(ToJson(*it));
    }
    ++it;
  }
  *cursor = seq_;
  return out;
}

}  // namespace hart::serve

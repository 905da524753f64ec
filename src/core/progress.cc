#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fmt/format.h"

namespace hart {
namespace {
std::atomic<int> g_enabled{-1};
}

void Progress::SetEnabled(bool on) { g_enabled = on ? 1 : 0; }
bool Progress::Enabled() {
  int e = g_enabled.load();
  if (e < 0) {
    e = ::isatty(2) ? 1 : 0;
    g_enabled = e;
  }
  return e == 1;
}

Progress::Progress(std::string label, uint64_t total, std::string unit, ProgressSink* sink)
    : label_(std::move(label)), total_(total), unit_(std::move(unit)), sink_(sink),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  if (sink_) sink_->Begin(label_, total_, unit_);
}

Progress::~Progress() { Finish(); }

void Progress::SetLabel(std::string label) {
  std::lock_guard<std::mutex> l(mu_);
  label_ = std::move(label);
}

void Progress::Add(uint64_t n) {
  done_ += n;
  if (sink_) sink_->Advance(n);
  if (!Enabled()) return;
  auto now = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> l(mu_, std::try_to_lock);
  if (!l.owns_lock()) return;
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw(false);
}

void Progress::Finish() {
  std::lock_guard<std::mutex> l(mu_);
  if (finished_) return;
  finished_ = true;
  if (sink_) sink_->End();
  if (Enabled()) Draw(true);
}

void Progress::Draw(bool final) {
  uint64_t done = done_.load();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ ? std::min(1.0, double(done) / double(total_)) : 1.0;
  constexpr int kWidth = 30;
  int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  std::string amount, rate;
  if (unit_ == "B") {
    amount = HumanBytes(done) + " / " + HumanBytes(total_);
    if (secs > 0) rate = HumanBytes(static_cast<uint64_t>(done / secs)) + "/s";
  } else {
    amount = fmt::format("{} / {} {}", done, total_, unit_);
  }
  std::fprintf(stderr, "\r\x1b[2K%s [%s] %3.0f%% %s %s%s", label_.c_str(), bar.c_str(),
               frac * 100, amount.c_str(), rate.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

std::string HumanBytes(uint64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024) return fmt::format("{} B", n);
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

bool ParseBytes(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0 || !std::isfinite(v)) return false;
  std::string suffix(end);
  double mult = 1;
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  if (!suffix.empty() && (suffix.back() == 'i')) suffix.pop_back();
  if (suffix.empty()) mult = 1;
  else if (suffix == "k" || suffix == "K") mult = 1024.0;
  else if (suffix == "m" || suffix == "M") mult = 1024.0 * 1024;
  else if (suffix == "g" || suffix == "G") mult = 1024.0 * 1024 * 1024;
  else if (suffix == "t" || suffix == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  else return false;
  *out = static_cast<uint64_t>(v * mult);
  return true;
}

}  // namespace hart

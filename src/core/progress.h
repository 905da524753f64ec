// Progress: a bar on stderr for long work (ingest, export, verify), drawn
// only when stderr is a TTY; silent otherwise so scripts and logs stay clean.
// Thread-safe: workers call Add() concurrently. A ProgressSink attached to a
// Progress hears the same Begin/Advance/End (the server reports it as
// server-sent events; the CLI leaves it out and gets the bar).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace hart {

// Where long work reports how far it got. Implementations are thread-safe:
// Advance() is called from worker threads concurrently.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // total in `unit`s ("B": bytes).
  virtual void Begin(std::string_view label, uint64_t total, std::string_view unit) = 0;
  virtual void Advance(uint64_t n) = 0;
  virtual void End() = 0;
};

class Progress {
 public:
  // total in `unit`s (bytes when unit is "B", shown as MiB/GiB). `sink`, when
  // given, hears Begin now, Advance on Add and End on Finish; it must outlive
  // this Progress.
  Progress(std::string label, uint64_t total, std::string unit = "B",
           ProgressSink* sink = nullptr);
  ~Progress();
  void Add(uint64_t n);
  void SetLabel(std::string label);
  void Finish();
  // Forces the bar on or off (tests, --no-progress). Default: isatty(2).
  static void SetEnabled(bool on);
  static bool Enabled();

 private:
  void Draw(bool final);
  std::string label_;
  uint64_t total_;
  std::string unit_;
  ProgressSink* sink_ = nullptr;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false;
};

// "1.5 GiB", "312 B"
std::string HumanBytes(uint64_t n);
// Parses "1.5G", "512M", "100k", "4096" (binary units) into bytes.
bool ParseBytes(const std::string& s, uint64_t* out);

}  // namespace hart

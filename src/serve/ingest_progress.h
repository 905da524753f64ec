// How far the server's running ingests are, for the UI: the upload route
// hands each ingest a sink (its store::Ingest progress: file bytes hashed
// and stored, of the total), and the outbox's event stream
// (GET /api/events/stream) sends every change as an `ingest.progress`
// event without an id (so Last-Event-ID stays the outbox's), at most one
// per job every 250 ms and 1 % of the total, plus the job's start and end.
// The ingest's own version.created event then follows from the outbox.
// A caller sees only its own ingests (an Admin sees all): the model name of
// someone else's upload is not its business.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/caller.h"
#include "core/progress.h"
#include "nlohmann/json.hpp"

namespace hart::serve {

class IngestProgress {
 public:
  struct Job {
    int64_t id = 0;
    std::string model, filename, owner, label, unit = "B", state = "running", error, version;
    uint64_t done = 0, total = 0;
    uint64_t seq = 0;  // bumped on every change worth telling
    uint64_t told_done = 0;
    std::chrono::steady_clock::time_point last_told{}, ended{};
  };

  // One ingest's sink; Finish() marks it done (version "model@N") or failed.
  class Sink : public ProgressSink {
   public:
    Sink(IngestProgress* board, int64_t id) : board_(board), id_(id) {}
    void Begin(std::string_view label, uint64_t total, std::string_view unit) override;
    void Advance(uint64_t n) override;
    void End() override {}
    void Finish(const std::string& version, const std::string& error);
   private:
    IngestProgress* board_;
    int64_t id_;
  };

  std::unique_ptr<Sink> Start(const app::Caller& caller, const std::string& model, const std::string& filename);

  // The jobs `caller` may see whose state changed since `*cursor` (a
  // sequence number the stream keeps), as event payloads; advances *cursor.
  // Ended jobs are forgotten a minute after they end.
  std::vector<nlohmann::json> Changes(const app::Caller& caller, uint64_t* cursor);

  static nlohmann::json ToJson(const Job& j);

 private:
  void Update(int64_t id, const std::function<bool(Job&)>& f);
  std::mutex mu_;
  std::list<Job> jobs_;
  int64_t next_id_ = 1;
  uint64_t seq_ = 0;
};

}  // namespace hart::serve

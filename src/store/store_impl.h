// Store::Impl: the state one Store object holds (catalog connection, store
// lock, pack maps) and the catalog lookups shared by the operations, which
// live one concept per file (ingest.cc, reader.cc, verify.cc, gc.cc, ...).
#pragma once

#include <sqlite3.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "store/pack.h"
#include "store/store.h"
#include "store/store_lock.h"

namespace hart::store {

// Where one chunk's bytes lie.
struct ChunkLoc {
  int64_t id = 0;
  int64_t pack = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

// A stretch of consecutive chunks that lie back to back in one pack.
struct PackRun {
  int64_t pack = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};
std::vector<PackRun> MergeRuns(const std::vector<ChunkLoc>& chunks);

struct Store::Impl {
  std::string dir;
  std::string packs_dir;
  sqlite3* db = nullptr;
  // Serializes this Store's use of its connection, so one thread's
  // transaction never takes in another thread's statements.
  std::recursive_mutex db_mu;
  std::unique_ptr<StoreLock> lock;
  std::unique_ptr<PackCache> packs;
  std::chrono::milliseconds gc_wait{10000};

  ~Impl() {
    if (db) sqlite3_close_v2(db);
  }

  absl::StatusOr<std::vector<ChunkLoc>> TensorChunks(int64_t component_id);
  absl::StatusOr<std::vector<ChunkLoc>> SegmentChunks(int64_t version_id, int file_idx, int64_t seq);
  // Copies bytes [skip, skip + out.size()) of the run of chunks into out.
  absl::Status CopyChunks(const std::vector<ChunkLoc>& chunks, uint64_t skip, std::span<uint8_t> out);
  absl::StatusOr<VersionRow> VersionById(int64_t version_id);
};

// "model@N" of a version id.
absl::StatusOr<std::string> VersionRefString(sqlite3* db, int64_t version_id);

}  // namespace hart::store

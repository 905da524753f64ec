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

// A read connection borrowed from the Store's pool for one call (see
// "Threads" in store.h); it goes back to the pool when this goes.
class ReadConn {
 public:
  ReadConn(ReadConn&& o) noexcept : impl_(o.impl_), db_(o.db_) { o.db_ = nullptr; }
  ReadConn& operator=(ReadConn&&) = delete;
  ~ReadConn();
  sqlite3* db() const { return db_; }

 private:
  friend struct Store::Impl;
  ReadConn(Store::Impl* impl, sqlite3* db) : impl_(impl), db_(db) {}
  Store::Impl* impl_;
  sqlite3* db_;
};

struct Store::Impl {
  std::string dir;
  std::string packs_dir;
  std::string catalog_path;
  // The write connection (Ingest, DeleteVersion, Gc).
  Env* env = nullptr;  // never null: StoreOptions::env or Env::Default()
  std::string vfs;     // the catalog's SQLite VFS for env ("" = SQLite's default)
  sqlite3* db = nullptr;
  // Serializes this Store's use of its write connection, so one thread's
  // transaction never takes in another thread's statements.
  std::recursive_mutex db_mu;
  // Idle read connections; Reader() takes one or opens a new one.
  std::mutex pool_mu;
  std::vector<sqlite3*> pool;
  static constexpr size_t kMaxIdleReaders = 16;
  std::unique_ptr<StoreLock> lock;
  std::unique_ptr<PackCache> packs;
  std::chrono::milliseconds gc_wait{10000};

  ~Impl() {
    for (sqlite3* r : pool) sqlite3_close_v2(r);
    if (db) sqlite3_close_v2(db);
  }

  // A read connection for the length of one call.
  absl::StatusOr<ReadConn> Reader();
  void GiveBack(sqlite3* r);

  absl::StatusOr<std::vector<ChunkLoc>> TensorChunks(int64_t component_id);
  absl::StatusOr<std::vector<ChunkLoc>> SegmentChunks(int64_t version_id, int file_idx, int64_t seq);
  // Copies bytes [skip, skip + out.size()) of the run of chunks into out.
  absl::Status CopyChunks(const std::vector<ChunkLoc>& chunks, uint64_t skip, std::span<uint8_t> out);
  absl::StatusOr<VersionRow> VersionById(int64_t version_id);
};

// "model@N" of a version id.
absl::StatusOr<std::string> VersionRefString(sqlite3* db, int64_t version_id);

}  // namespace hart::store

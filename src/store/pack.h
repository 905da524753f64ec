// Packs: append-only files packs/NNNNNN.pack holding chunk bytes after a
// 16-byte header ("NINAPACK", format version, reserved). Chunk rows in the
// catalog point at (pack, offset, size); bytes no row points at (a torn tail
// after a crash, a chunk two ingests wrote at once) are dead and Gc()
// reclaims them.
//
// A PackWriter appends to one pack at a time under an exclusive flock on
// that pack, so two processes never append to the same file; another writer
// picks or creates another pack.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/env.h"
#include "core/file_util.h"
#include "core/mapped_file.h"

namespace hart::store {

inline constexpr uint64_t kPackHeaderSize = 16;
inline constexpr char kPackMagic[8] = {'N', 'I', 'N', 'A', 'P', 'A', 'C', 'K'};
inline constexpr uint32_t kPackFormatVersion = 1;
// A writer starts a new pack rather than grow one past this.
inline constexpr uint64_t kPackRollSize = uint64_t{4} << 30;
// PackWriter starts the disk's writeback every this many appended bytes.
inline constexpr uint64_t kWritebackStep = uint64_t{16} << 20;
// Direct-I/O packs: writes are whole blocks of this size from an aligned
// staging buffer of kDirectStaging bytes.
inline constexpr uint64_t kDirectBlock = 4096;
inline constexpr uint64_t kDirectStaging = uint64_t{8} << 20;

std::string PackName(int64_t pack);  // "000042.pack"
std::string PackPath(const std::string& packs_dir, int64_t pack);
// Pack numbers of the *.pack files in the directory, ascending.
absl::StatusOr<std::vector<int64_t>> ListPacks(const std::string& packs_dir);
// Checks the header of an open pack.
absl::Status CheckPackHeader(std::span<const uint8_t> first_bytes, const std::string& path);

class PackWriter {
 public:
  // roll_size is the soft limit past which the writer moves to a new pack.
  // Every open, write and sync goes through env (nullptr: Env::Default()).
  explicit PackWriter(std::string packs_dir, Env* env = nullptr, uint64_t roll_size = kPackRollSize);
  // Writes with O_DIRECT through an aligned staging buffer, skipping the
  // page cache's copy and writeback (ingest's bulk appends), where the
  // file system takes it and is not tmpfs; buffered otherwise. Each direct
  // writer starts at a block boundary past the pack's end and pads its last
  // block, so it never rewrites a block another process may have cached.
  // Call before the first Append.
  void UseDirectIo() { want_direct_ = true; }
  bool direct() const { return cur_ && cur_->direct.valid(); }
  ~PackWriter();
  PackWriter(const PackWriter&) = delete;
  PackWriter& operator=(const PackWriter&) = delete;

  // Makes sure `bytes` more can go to the current pack without passing the
  // roll size (a fresh pack takes anything). Call before appending a run that
  // must stay contiguous.
  absl::Status Reserve(uint64_t bytes);
  // Appends at the end of the current pack; returns (pack, offset).
  absl::StatusOr<std::pair<int64_t, uint64_t>> Append(std::span<const uint8_t> bytes);
  // Appends parts back to back in one pwritev; returns where the first went.
  absl::StatusOr<std::pair<int64_t, uint64_t>> Append(std::span<const std::span<const uint8_t>> parts);
  // Forces a fresh pack for the next append (gc copies into new packs only).
  absl::Status StartNewPack();
  // fsyncs every pack written, and the packs directory when one was created.
  // Must return ok before a catalog commit references the bytes.
  absl::Status Sync();
  // Packs created or appended to by this writer.
  std::vector<int64_t> Touched() const;

 private:
  struct Open {
    int64_t pack = 0;
    Fd fd;
    Fd direct;             // O_DIRECT descriptor, when writing through the staging buffer
    uint64_t end = 0;
    uint64_t flushed = 0;  // writeback started up to here (buffered)
    uint64_t staged_at = 0;  // direct: pack offset of staging_[0], block-aligned
    bool fresh = false;      // created by this writer and nothing appended yet
    std::string path;
  };
  absl::Status OpenExisting();
  absl::Status CreateNew();
  // Direct mode for cur_ when wanted and possible.
  void StartDirect();
  // Writes the staged bytes (padded to a whole block when `all`).
  absl::Status FlushStaging(bool all);
  absl::Status Retire();  // flushes cur_ and moves it to done_
  bool want_direct_ = false;
  // Direct mode: full staging buffers go to an I/O thread, so the disk has
  // the next write while this thread fills the next buffer.
  struct DirectIo;
  uint8_t* staging_ = nullptr;  // one of io_'s buffers
  uint64_t staged_ = 0;         // bytes in staging_
  std::unique_ptr<DirectIo> io_;  // last member: joins before the fds close
  Env* env_;
  std::string dir_;
  uint64_t roll_size_;
  std::unique_ptr<Open> cur_;
  std::vector<std::unique_ptr<Open>> done_;  // earlier packs of this writer, kept locked until Sync
  bool created_ = false;
};

// Read side: one read-only map per pack, shared by every reader of the Store
// and remapped when a chunk lies past the mapped end (the pack grew) or the
// file is another one than was mapped (gc replaced it since; pack numbers of
// deleted packs can come back).
class PackCache {
 public:
  explicit PackCache(std::string packs_dir) : dir_(std::move(packs_dir)) {}
  // A map of `pack` covering at least [0, need_end).
  absl::StatusOr<std::shared_ptr<MappedFile>> Get(int64_t pack, uint64_t need_end);
  void Clear();

 private:
  std::string dir_;
  std::mutex mu_;
  struct Entry {
    std::shared_ptr<MappedFile> map;
    uint64_t dev = 0, ino = 0;
  };
  std::map<int64_t, Entry> maps_;
};

}  // namespace hart::store

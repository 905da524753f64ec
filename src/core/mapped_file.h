// MappedFile: a read-only memory map of a whole file. Empty files map to an
// empty span. The mapping lives as long as the object (share it with
// std::shared_ptr when spans outlive the opener).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace hart {

class MappedFile {
 public:
  static absl::StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // madvise(MADV_SEQUENTIAL / WILLNEED) hints; failures are ignored.
  void AdviseSequential() const;
  // Copies [offset, offset + out.size()) of the mapped file into out with
  // pread on the same open file. Cheaper than the first touch of mapped
  // pages where that is costly (under shadow paging every 4 KiB page costs
  // a hypervisor exit even after PrefaultRange), and the copy lands in a
  // buffer that stays in cache for the next pass. DataLoss when the file
  // has shrunk since it was mapped.
  absl::Status ReadAt(uint64_t offset, std::span<uint8_t> out) const;

 private:
  MappedFile(std::string path, int fd, const uint8_t* data, uint64_t size)
      : path_(std::move(path)), fd_(fd), data_(data), size_(size) {}
  std::string path_;
  int fd_;  // kept open for ReadAt
  const uint8_t* data_;
  uint64_t size_;
};

// madvise over the whole pages covering [p, p + n); failures are ignored
// because every use is a hint.
void AdviseRange(const uint8_t* p, uint64_t n, int advice);

// Maps the pages covering [p, p + n) into the process now (reading from
// storage what the page cache lacks), with one system call instead of a
// page fault per 64 KiB when the bytes are first touched. Use it before
// reading a mapped range through: under a hypervisor each fault is an exit
// costing tens of microseconds (SHA-256 of a mapped 1 GiB file on this
// project's VMs: 3.9 s faulting, 1.4 s after this). A no-op on kernels
// older than 5.14 (no MADV_POPULATE_READ).
void PrefaultRange(const uint8_t* p, uint64_t n);
inline void PrefaultRange(std::span<const uint8_t> b) { PrefaultRange(b.data(), b.size()); }

}  // namespace hart

// A read-only zip reader over a mapped file, for PyTorch checkpoints. It
// reads the central directory (zip64 included) and each entry's local
// header, so a STORED entry's data is one span of the file that tensors can
// point at without copying. libzip and minizip do not expose that offset
// through a memory-only interface, and the part of the format needed here
// is small enough to check field by field (and to fuzz).
//
// Not supported (refused with a clear error): encryption, multi-disk
// archives, methods other than STORED (0) and DEFLATE (8).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hart::formats {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 STORED, 8 DEFLATE
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;  // uncompressed
  uint64_t header_offset = 0;  // local file header
  uint64_t data_offset = 0;    // first byte of the (compressed) data
};

// All entries in central-directory order. Every entry's data range lies in
// the file before the central directory; names are unique.
absl::StatusOr<std::vector<ZipEntry>> ReadZipDirectory(std::span<const uint8_t> file,
                                                       std::string_view file_name);

// The entry's data: for STORED the span itself, checked against its CRC-32
// when verify_crc; DEFLATE is refused here (use InflateZipEntry).
absl::StatusOr<std::span<const uint8_t>> StoredZipEntry(std::span<const uint8_t> file,
                                                        const ZipEntry& e,
                                                        std::string_view file_name,
                                                        bool verify_crc);

// The entry's uncompressed bytes (STORED copied, DEFLATE inflated), checked
// against the declared size and CRC-32. Refuses sizes over max_size.
absl::StatusOr<std::vector<uint8_t>> InflateZipEntry(std::span<const uint8_t> file,
                                                     const ZipEntry& e,
                                                     std::string_view file_name,
                                                     uint64_t max_size);

uint32_t Crc32(std::span<const uint8_t> bytes);

}  // namespace hart::formats

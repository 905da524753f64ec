// Zip structures per PKWARE APPNOTE.TXT 6.3: end of central directory
// (+ zip64 locator and record), central directory headers, local headers.
#include "formats/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <unordered_set>

#include "core/status.h"
#include "fmt/format.h"
#include "formats/limits.h"

namespace hart::formats {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30;
constexpr size_t kZip64LocatorSize = 20, kZip64EndSize = 56;

uint64_t Le(std::span<const uint8_t> b, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b[at + i]) << (8 * i);
  return v;
}

bool Fits(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

struct End {
  uint64_t entries = 0, cd_size = 0, cd_offset = 0;
  uint64_t limit = 0;  // where the central directory must end
};

absl::StatusOr<End> FindEnd(std::span<const uint8_t> f, std::string_view name) {
  if (f.size() < kEndSize) return DataError(name, 0, "zip", "too small for an end of central directory");
  // The record sits at the end, followed only by a comment of at most 64 KiB.
  size_t lowest = f.size() > kEndSize + 0xFFFF ? f.size() - kEndSize - 0xFFFF : 0;
  for (size_t p = f.size() - kEndSize + 1; p-- > lowest;) {
    if (Le(f, p, 4) != kEndSig) continue;
    uint64_t comment = Le(f, p + 20, 2);
    if (p + kEndSize + comment > f.size()) continue;
    if (Le(f, p + 4, 2) != 0 || Le(f, p + 6, 2) != 0)
      return DataError(name, p, "zip end of central directory", "multi-disk archives are not supported");
    End e;
    e.entries = Le(f, p + 10, 2);
    e.cd_size = Le(f, p + 12, 4);
    e.cd_offset = Le(f, p + 16, 4);
    e.limit = p;
    if (e.entries != 0xFFFF && e.cd_size != 0xFFFFFFFF && e.cd_offset != 0xFFFFFFFF) return e;
    if (p < kZip64LocatorSize || Le(f, p - kZip64LocatorSize, 4) != kZip64LocatorSig)
      return DataError(name, p, "zip end of central directory", "zip64 fields without a zip64 locator");
    uint64_t z = Le(f, p - kZip64LocatorSize + 8, 8);
    if (!Fits(z, kZip64EndSize, p - kZip64LocatorSize) || Le(f, z, 4) != kZip64EndSig)
      return DataError(name, p - kZip64LocatorSize, "zip64 locator", "does not point at a zip64 end record");
    if (Le(f, z + 16, 4) != 0 || Le(f, z + 20, 4) != 0)
      return DataError(name, z, "zip64 end of central directory", "multi-disk archives are not supported");
    e.entries = Le(f, z + 32, 8);
    e.cd_size = Le(f, z + 40, 8);
    e.cd_offset = Le(f, z + 48, 8);
    e.limit = z;
    return e;
  }
  return DataError(name, f.size(), "zip", "no end of central directory record (not a zip file?)");
}

// Replaces 0xFFFF.. placeholders with the zip64 extra field's values, which
// appear in the fixed order size, compressed size, header offset.
absl::Status ApplyZip64(std::span<const uint8_t> extra, uint64_t at, ZipEntry& e,
                        std::string_view name) {
  bool need_size = e.size == 0xFFFFFFFF, need_csize = e.compressed_size == 0xFFFFFFFF,
       need_off = e.header_offset == 0xFFFFFFFF;
  if (!need_size && !need_csize && !need_off) return absl::OkStatus();
  for (size_t p = 0; p + 4 <= extra.size();) {
    uint64_t id = Le(extra, p, 2), len = Le(extra, p + 2, 2);
    if (p + 4 + len > extra.size()) break;
    if (id == 0x0001) {
      size_t q = p + 4, end = p + 4 + len;
      for (auto [need, field] : {std::pair{need_size, &e.size}, {need_csize, &e.compressed_size},
                                 {need_off, &e.header_offset}}) {
        if (!need) continue;
        if (q + 8 > end)
          return DataError(name, at, fmt::format("zip entry {} zip64 field", Quote(e.name)), "too short");
        *field = Le(extra, q, 8);
        q += 8;
      }
      return absl::OkStatus();
    }
    p += 4 + len;
  }
  return DataError(name, at, fmt::format("zip entry {}", Quote(e.name)),
                   "32-bit field is 0xFFFFFFFF but there is no zip64 extra field");
}

}  // namespace

uint32_t Crc32(std::span<const uint8_t> bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  while (n > 0) {  // zlib takes uInt lengths
    uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

absl::StatusOr<std::vector<ZipEntry>> ReadZipDirectory(std::span<const uint8_t> f,
                                                       std::string_view name) {
  ASSIGN_OR_RETURN(End end, FindEnd(f, name));
  if (!Fits(end.cd_offset, end.cd_size, end.limit))
    return DataError(name, end.limit, "zip central directory",
                     fmt::format("[{}, +{}) does not lie before the end record", end.cd_offset, end.cd_size));
  if (end.entries > kMaxZipEntries)
    return DataError(name, end.limit, "zip central directory",
                     fmt::format("{} entries exceed the limit of {} (kMaxZipEntries)", end.entries, kMaxZipEntries));
  if (end.entries > end.cd_size / kCentralSize)
    return DataError(name, end.limit, "zip central directory",
                     fmt::format("{} entries cannot fit in {} bytes", end.entries, end.cd_size));
  std::vector<ZipEntry> out;
  out.reserve(end.entries);
  std::unordered_set<std::string> names;
  uint64_t p = end.cd_offset, cd_end = end.cd_offset + end.cd_size;
  for (uint64_t i = 0; i < end.entries; ++i) {
    if (p + kCentralSize > cd_end || Le(f, p, 4) != kCentralSig)
      return DataError(name, p, fmt::format("zip central directory entry {}", i), "bad signature or truncated");
    ZipEntry e;
    e.flags = static_cast<uint16_t>(Le(f, p + 8, 2));
    e.method = static_cast<uint16_t>(Le(f, p + 10, 2));
    e.crc32 = static_cast<uint32_t>(Le(f, p + 16, 4));
    e.compressed_size = Le(f, p + 20, 4);
    e.size = Le(f, p + 24, 4);
    uint64_t nlen = Le(f, p + 28, 2), xlen = Le(f, p + 30, 2), clen = Le(f, p + 32, 2);
    e.header_offset = Le(f, p + 42, 4);
    if (p + kCentralSize + nlen + xlen + clen > cd_end)
      return DataError(name, p, fmt::format("zip central directory entry {}", i), "name or extra field runs past the directory");
    e.name.assign(reinterpret_cast<const char*>(f.data() + p + kCentralSize), nlen);
    RETURN_IF_ERROR(ApplyZip64(f.subspan(p + kCentralSize + nlen, xlen), p, e, name));
    if (e.flags & 0x41)
      return DataError(name, p, fmt::format("zip entry {}", Quote(e.name)), "encrypted entries are not supported");
    if (!names.insert(e.name).second)
      return DataError(name, p, fmt::format("zip entry {}", Quote(e.name)), "duplicate entry name");
    // Local header: its own name and extra lengths (PyTorch pads the extra
    // field so data is 64-byte aligned) give the data offset.
    uint64_t h = e.header_offset;
    if (!Fits(h, kLocalSize, end.cd_offset) || Le(f, h, 4) != kLocalSig)
      return DataError(name, h, fmt::format("zip entry {} local header", Quote(e.name)), "missing or past the central directory");
    uint64_t lnlen = Le(f, h + 26, 2), lxlen = Le(f, h + 28, 2);
    e.data_offset = h + kLocalSize + lnlen + lxlen;
    if (lnlen != nlen || !Fits(h + kLocalSize, lnlen, end.cd_offset) ||
        std::string_view(reinterpret_cast<const char*>(f.data() + h + kLocalSize), lnlen) != e.name)
      return DataError(name, h, fmt::format("zip entry {} local header", Quote(e.name)), "name differs from the central directory");
    if (e.method == 0 && e.compressed_size != e.size)
      return DataError(name, p, fmt::format("zip entry {}", Quote(e.name)),
                       fmt::format("stored entry has compressed size {} but size {}", e.compressed_size, e.size));
    if (!Fits(e.data_offset, e.compressed_size, end.cd_offset))
      return DataError(name, h, fmt::format("zip entry {} data", Quote(e.name)),
                       fmt::format("[{}, +{}) runs into the central directory at {}", e.data_offset,
                                   e.compressed_size, end.cd_offset));
    out.push_back(std::move(e));
    p += kCentralSize + nlen + xlen + clen;
  }
  return out;
}

absl::StatusOr<std::span<const uint8_t>> StoredZipEntry(std::span<const uint8_t> f,
                                                        const ZipEntry& e,
                                                        std::string_view name, bool verify_crc) {
  if (e.method != 0)
    return DataError(name, e.header_offset, fmt::format("zip entry {}", Quote(e.name)),
                     fmt::format("compression method {} is not STORED", e.method));
  auto data = f.subspan(e.data_offset, e.size);
  if (verify_crc && Crc32(data) != e.crc32)
    return DataError(name, e.data_offset, fmt::format("zip entry {}", Quote(e.name)),
                     fmt::format("CRC-32 mismatch (stored {:08x}, computed {:08x})", e.crc32, Crc32(data)));
  return data;
}

absl::StatusOr<std::vector<uint8_t>> InflateZipEntry(std::span<const uint8_t> f, const ZipEntry& e,
                                                     std::string_view name, uint64_t max_size) {
  std::string field = fmt::format("zip entry {}", Quote(e.name));
  if (e.size > max_size)
    return DataError(name, e.header_offset, field,
                     fmt::format("{} bytes uncompressed exceed the limit of {}", e.size, max_size));
  if (e.method == 0) {
    ASSIGN_OR_RETURN(auto data, StoredZipEntry(f, e, name, true));
    return std::vector<uint8_t>(data.begin(), data.end());
  }
  if (e.method != 8)
    return DataError(name, e.header_offset, field,
                     fmt::format("compression method {} is not supported (only STORED and DEFLATE)", e.method));
  // DEFLATE expands at most ~1032:1; a larger claim is a lie, and checking
  // it first keeps a tiny file from making us allocate the claimed size.
  if (e.size / 1032 > e.compressed_size + 1)
    return DataError(name, e.header_offset, field,
                     fmt::format("claims {} bytes from {} compressed, beyond DEFLATE's ratio", e.size,
                                 e.compressed_size));
  std::vector<uint8_t> out(e.size);
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return absl::InternalError("inflateInit2 failed");
  const uint8_t* in = f.data() + e.data_offset;
  uint64_t in_left = e.compressed_size, out_done = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
    uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(e.size - out_done, 1u << 30));
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = in_chunk;
    zs.next_out = out.data() + out_done;
    zs.avail_out = out_chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    uint64_t used = in_chunk - zs.avail_in, made = out_chunk - zs.avail_out;
    in += used;
    in_left -= used;
    out_done += made;
    if (rc == Z_OK && used == 0 && made == 0) rc = Z_BUF_ERROR;  // no progress: truncated or too long
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || out_done != e.size)
    return DataError(name, e.data_offset, field,
                     fmt::format("DEFLATE data is corrupt or does not inflate to {} bytes", e.size));
  if (Crc32(out) != e.crc32)
    return DataError(name, e.data_offset, field, "CRC-32 mismatch after inflating");
  return out;
}

}  // namespace hart::formats

// `hart scan`: runs every pickle of a file through the machine in scan mode
// (nothing is imported or called) and sums up the findings in a verdict.
#include <algorithm>

#include "absl/strings/match.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "fmt/format.h"
#include "formats/model_source.h"
#include "formats/torch.h"
#include "formats/zip_reader.h"
#include "formats/limits.h"

namespace hart::formats {
namespace {

constexpr std::string_view kLegacyMagic = "0x1950a86a20f9469cfc6c";
constexpr int kMaxPickles = kMaxScannedPickles;  // formats/limits.h

PickleScan ScanOne(std::span<const uint8_t> bytes, std::string_view file, uint64_t base,
                   std::string where, PickleResult* keep = nullptr) {
  PickleScan s;
  s.where = std::move(where);
  s.base = base;
  auto r = RunPickle(bytes, {file, base, true});
  if (!r.ok()) {  // scan mode reports errors in the result; this is defensive
    s.error = r.status();
    return s;
  }
  s.findings = std::move(r->findings);
  s.error = r->error;
  if (keep) *keep = std::move(*r);
  return s;
}

void Judge(TorchScanReport& rep) {
  rep.safe = true;
  if (rep.pickles.empty()) {
    rep.verdict = "safe: no pickle to run";
    return;
  }
  const PickleFinding* bad_call = nullptr;
  const PickleFinding* bad_import = nullptr;
  const PickleScan* broken = nullptr;
  for (const PickleScan& p : rep.pickles) {
    if (!p.error.ok() && !broken) broken = &p;
    for (const PickleFinding& f : p.findings) {
      if (f.allowed) continue;
      if (f.kind == PickleFinding::Kind::kCall && !bad_call) bad_call = &f;
      if (f.kind != PickleFinding::Kind::kCall && !bad_import) bad_import = &f;
    }
  }
  if (bad_call) {
    // Name the imported global a refused call reaches when it is one.
    rep.verdict = fmt::format("UNSAFE: would call {} at offset {}", bad_call->target, bad_call->offset);
  } else if (bad_import) {
    rep.verdict = fmt::format("UNSAFE: would import {} at offset {}", bad_import->target, bad_import->offset);
  } else if (broken) {
    rep.verdict = fmt::format("UNSAFE: {} could not be fully analysed: {}", broken->where, Msg(broken->error));
  } else {
    rep.verdict = "safe: only tensor rebuild globals";
    return;
  }
  rep.safe = false;
}

absl::Status ScanZip(std::span<const uint8_t> f, std::string_view name, TorchScanReport& rep) {
  ASSIGN_OR_RETURN(std::vector<ZipEntry> entries, ReadZipDirectory(f, name));
  for (const ZipEntry& e : entries) {
    if (!absl::EndsWith(e.name, ".pkl")) continue;
    if (e.method == 0) {
      ASSIGN_OR_RETURN(auto bytes, StoredZipEntry(f, e, name, true));
      rep.pickles.push_back(ScanOne(bytes, name, e.data_offset, e.name));
    } else {
      ASSIGN_OR_RETURN(auto bytes, InflateZipEntry(f, e, name, kMaxInflatedPickle));
      std::string inflated_name = fmt::format("{}[{}]", name, e.name);
      rep.pickles.push_back(ScanOne(bytes, inflated_name, 0, e.name + " (inflated)"));
    }
  }
  return absl::OkStatus();
}

void ScanStream(std::span<const uint8_t> f, std::string_view name, TorchScanReport& rep) {
  // A legacy checkpoint is five pickles and then raw storage bytes; any
  // other file is scanned pickle after pickle while one seems to follow.
  uint64_t pos = 0;
  bool legacy = false;
  for (int i = 0; i < kMaxPickles && pos < f.size(); ++i) {
    if (i > 0 && !legacy && f[pos] != 0x80) break;
    static constexpr std::string_view kLegacyNames[] = {"magic number", "protocol version",
                                                        "sys_info", "main", "storage keys"};
    std::string where = legacy ? fmt::format("pickle {} of 5 (legacy {})", i + 1, kLegacyNames[i])
                               : fmt::format("pickle {}", i + 1);
    PickleResult r;
    rep.pickles.push_back(ScanOne(f.subspan(pos), name, pos, where, &r));
    if (i == 0 && r.root && r.root->kind == PickleKind::kBigInt && r.root->text == kLegacyMagic) {
      legacy = true;
      rep.format = "legacy";
      rep.pickles.back().where = "pickle 1 of 5 (legacy magic number)";
    }
    if (!rep.pickles.back().error.ok()) return;
    pos = r.end;
    if (legacy && i == 4) return;
  }
}

}  // namespace

absl::StatusOr<TorchScanReport> ScanTorch(std::span<const uint8_t> file, std::string_view name) {
  TorchScanReport rep;
  if (file.size() >= 4 && file[0] == 'P' && file[1] == 'K' && file[2] == 3 && file[3] == 4) {
    rep.format = "zip";
    RETURN_IF_ERROR(ScanZip(file, name, rep));
  } else {
    if (file.empty()) return absl::DataLossError(fmt::format("{}: empty file (0 bytes)", name));
    rep.format = "pickle";
    ScanStream(file, name, rep);
    // Not a pickle at all (text, an image, a safetensors file): its first
    // pickle stopped before importing anything, and it did not start with the
    // PROTO opcode of every pickle since protocol 2. Python could not load it
    // either, so it is bad data rather than a threat.
    const PickleScan& first = rep.pickles.front();
    if (file[0] != 0x80 && !first.error.ok() && first.findings.empty() && rep.format == "pickle")
      return absl::DataLossError(fmt::format(
          "{}: not a pickle or PyTorch checkpoint (first byte 0x{:02x}; {})", name, file[0], Msg(first.error)));
  }
  Judge(rep);
  return rep;
}

absl::StatusOr<TorchScanReport> ScanTorchFile(const std::string& path) {
  RETURN_IF_ERROR(CheckModelPath(path, false));
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  std::string base = path.substr(path.find_last_of('/') + 1);
  return ScanTorch(map->bytes(), base);
}

}  // namespace hart::formats

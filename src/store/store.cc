// Store lifecycle (Init, Open), version references, and the chunk lookups
// shared by the read paths.
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <cctype>
#include <filesystem>
#include <random>

#include "core/status.h"
#include "fmt/format.h"
#include "store/catalog.h"
#include "store/catalog_vfs.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {
namespace fs = std::filesystem;

std::string VersionRef::ToString() const {
  return number ? fmt::format("{}@{}", model, *number) : model;
}

absl::StatusOr<VersionRef> ParseVersionRef(std::string_view s) {
  VersionRef r;
  size_t at = s.rfind('@');
  if (at == std::string_view::npos) {
    r.model = std::string(s);
  } else {
    r.model = std::string(s.substr(0, at));
    std::string_view num = s.substr(at + 1);
    int64_t n = 0;
    bool ok = !num.empty() && num.size() < 16;
    for (char c : num) {
      if (c < '0' || c > '9') ok = false;
      else n = n * 10 + (c - '0');
    }
    if (!ok || n <= 0)
      return absl::InvalidArgumentError(
          fmt::format("bad version reference '{}': expected MODEL or MODEL@N with N >= 1", s));
    r.number = n;
  }
  if (r.model.empty())
    return absl::InvalidArgumentError(fmt::format("bad version reference '{}': no model name", s));
  return r;
}

TensorBytes TensorBytes::Mapped(std::shared_ptr<MappedFile> map, std::span<const uint8_t> span) {
  TensorBytes t;
  t.map_ = std::move(map);
  t.span_ = span;
  return t;
}

TensorBytes TensorBytes::Owned(std::vector<uint8_t> buffer) {
  TensorBytes t;
  t.buffer_ = std::move(buffer);
  t.span_ = {t.buffer_.data(), t.buffer_.size()};
  return t;
}

std::string Store::DefaultDir() {
  if (const char* h = std::getenv("HART_HOME"); h && *h) return h;
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.hartonomous", home && *home ? home : ".");
}

absl::Status Store::Init(const std::string& dir, const StoreOptions& opts) {
  Env* env = opts.env ? opts.env : Env::Default();
  std::error_code ec;
  for (const char* sub : {"", "packs", "index"}) {
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) return absl::PermissionDeniedError(fmt::format("{}: cannot create: {}", (fs::path(dir) / sub).string(), ec.message()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<StoreLock> lock, StoreLock::Open(dir + "/LOCK", env));
  ASSIGN_OR_RETURN(std::string vfs, CatalogVfsFor(env));
  ASSIGN_OR_RETURN(sqlite3 * db, OpenCatalog(dir + "/catalog.sqlite", /*create=*/true, vfs));
  sqlite3_close_v2(db);
  return env->FsyncDir(dir);
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir,
                                                   const StoreOptions& opts) {
  std::string cat = dir + "/catalog.sqlite";
  struct stat st;
  if (::stat(cat.c_str(), &st) != 0)
    return absl::NotFoundError(fmt::format(
        "no NinaDB store at {}: run `hart init` first (or set HART_HOME)", dir));
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->packs_dir = dir + "/packs";
  impl->catalog_path = cat;
  impl->env = opts.env ? opts.env : Env::Default();
  std::error_code ec;
  fs::create_directories(impl->packs_dir, ec);
  ASSIGN_OR_RETURN(impl->lock, StoreLock::Open(dir + "/LOCK", impl->env));
  ASSIGN_OR_RETURN(impl->vfs, CatalogVfsFor(impl->env));
  {
    SharedHold hold(impl->lock.get());
    RETURN_IF_ERROR(hold.status());
    ASSIGN_OR_RETURN(impl->db, OpenCatalog(cat, /*create=*/false, impl->vfs));
  }
  impl->packs = std::make_unique<PackCache>(impl->packs_dir);
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

const std::string& Store::dir() const { return impl_->dir; }
sqlite3* Store::catalog() { return impl_->db; }
std::string Store::catalog_path() const { return impl_->dir + "/catalog.sqlite"; }
std::string Store::index_dir() const { return impl_->dir + "/index"; }

bool Store::Exists(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / "catalog.sqlite", ec);
}

void Store::ConnectionCloser::operator()(sqlite3* db) const {
  if (db) sqlite3_close_v2(db);
}

absl::StatusOr<Store::Connection> Store::OpenConnection() {
  ASSIGN_OR_RETURN(sqlite3 * db, OpenCatalog(impl_->catalog_path, /*create=*/false, impl_->vfs));
  return Connection(db);
}

absl::StatusOr<std::string> Store::NewTempPath(std::string_view prefix, std::string_view suffix) {
  for (char c : prefix)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
      return absl::InvalidArgumentError(fmt::format("temp file prefix '{}': letters, digits, '-', '_' only", prefix));
  for (char c : suffix)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_')
      return absl::InvalidArgumentError(fmt::format("temp file suffix '{}': letters, digits, '.', '-', '_' only", suffix));
  std::string tmp = impl_->dir + "/tmp";
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) return absl::PermissionDeniedError(fmt::format("{}: cannot create: {}", tmp, ec.message()));
  uint8_t rnd[12];
  std::random_device rd;
  for (auto& b : rnd) b = static_cast<uint8_t>(rd());
  std::string hex;
  for (uint8_t b : rnd) hex += fmt::format("{:02x}", b);
  return fmt::format("{}/{}-{}{}", tmp, prefix, hex, suffix);
}

absl::StatusOr<ReadConn> Store::Impl::Reader() {
  {
    std::lock_guard<std::mutex> l(pool_mu);
    if (!pool.empty()) {
      sqlite3* r = pool.back();
      pool.pop_back();
      return ReadConn(this, r);
    }
  }
  ASSIGN_OR_RETURN(sqlite3 * r, OpenCatalog(catalog_path, /*create=*/false, vfs));
  return ReadConn(this, r);
}

void Store::Impl::GiveBack(sqlite3* r) {
  {
    std::lock_guard<std::mutex> l(pool_mu);
    if (pool.size() < kMaxIdleReaders) {
      pool.push_back(r);
      return;
    }
  }
  sqlite3_close_v2(r);
}

ReadConn::~ReadConn() {
  if (db_) impl_->GiveBack(db_);
}

std::vector<PackRun> MergeRuns(const std::vector<ChunkLoc>& chunks) {
  std::vector<PackRun> runs;
  for (const ChunkLoc& c : chunks) {
    if (!runs.empty() && runs.back().pack == c.pack &&
        runs.back().offset + runs.back().size == c.offset) {
      runs.back().size += c.size;
    } else {
      runs.push_back({c.pack, c.offset, c.size});
    }
  }
  return runs;
}

absl::StatusOr<std::vector<ChunkLoc>> Store::Impl::TensorChunks(int64_t component_id) {
  ASSIGN_OR_RETURN(ReadConn rc, Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                         "SELECT c.id, c.pack, c.offset, c.size FROM tensor_chunk tc "
                                         "JOIN chunk c ON c.id = tc.chunk_id "
                                         "WHERE tc.component_id = ? ORDER BY tc.seq"));
  q.Bind(1, component_id);
  std::vector<ChunkLoc> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Int(0), q.Int(1), static_cast<uint64_t>(q.Int(2)), static_cast<uint64_t>(q.Int(3))});
  }
  return out;
}

absl::StatusOr<std::vector<ChunkLoc>> Store::Impl::SegmentChunks(int64_t version_id, int file_idx,
                                                                 int64_t seq) {
  ASSIGN_OR_RETURN(ReadConn rc, Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
                                         "SELECT c.id, c.pack, c.offset, c.size FROM segment_chunk sc "
                                         "JOIN chunk c ON c.id = sc.chunk_id "
                                         "WHERE sc.version_id = ? AND sc.file_idx = ? AND sc.seq = ? "
                                         "ORDER BY sc.chunk_seq"));
  q.Bind(1, version_id).Bind(2, int64_t{file_idx}).Bind(3, seq);
  std::vector<ChunkLoc> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Int(0), q.Int(1), static_cast<uint64_t>(q.Int(2)), static_cast<uint64_t>(q.Int(3))});
  }
  return out;
}

absl::Status Store::Impl::CopyChunks(const std::vector<ChunkLoc>& chunks, uint64_t skip,
                                     std::span<uint8_t> out) {
  uint64_t pos = 0;  // offset of the current chunk within the run
  size_t written = 0;
  for (const ChunkLoc& c : chunks) {
    if (written == out.size()) break;
    uint64_t end = pos + c.size;
    if (end > skip) {
      uint64_t from = skip > pos ? skip - pos : 0;
      uint64_t n = std::min<uint64_t>(c.size - from, out.size() - written);
      ASSIGN_OR_RETURN(auto map, packs->Get(c.pack, c.offset + c.size));
      std::memcpy(out.data() + written, map->bytes().data() + c.offset + from, n);
      written += n;
    }
    pos = end;
  }
  if (written != out.size())
    return absl::OutOfRangeError(fmt::format("read of {} bytes at {} runs past the end ({} bytes)",
                                             out.size(), skip, pos));
  return absl::OkStatus();
}

absl::StatusOr<std::string> VersionRefString(sqlite3* db, int64_t version_id) {
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db,
                                         "SELECT m.name, v.number FROM version v JOIN model m "
                                         "ON m.id = v.model_id WHERE v.id = ?"));
  q.Bind(1, version_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(fmt::format("no version with id {}", version_id));
  return fmt::format("{}@{}", q.Text(0), q.Int(1));
}

}  // namespace hart::store

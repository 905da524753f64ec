// NinaDB: the embedded store. One directory holding catalog.sqlite (SQLite,
// WAL) and packs/NNNNNN.pack (append-only chunk files); see
// ../shared/DESIGN.md "NinaDB on disk" and docs/ARCHITECTURE.md.
//
// Invariants:
//  - Write order: chunks are appended to a pack and fsynced before the
//    catalog transaction that references them commits. A crash leaves at most
//    unreferenced pack bytes, which Gc() reclaims.
//  - An ingest is one catalog transaction: the version appears whole or not.
//  - Versions are immutable. Chunks are content-addressed (SHA-256) and
//    stored once across the whole store.
//  - Several processes may use one store at once (readers during writes, two
//    ingests in parallel); Gc() takes the store exclusively.
//
// Threads (the server shares one Store between every request):
//  - Every public method of Store may be called from many threads at once.
//    Reads (List*, Resolve, ReadTensor, ReadFileRange, Diff, Stats, Events,
//    Export*, Verify) each borrow a catalog connection from the Store's pool
//    of read connections for the length of the call, so they run in
//    parallel with each other and with a write (SQLite WAL: a reader sees
//    the last committed state, never half an ingest). Writes (Ingest,
//    DeleteVersion, Gc) use the Store's one write connection, one at a time;
//    two ingests in one process queue, across processes they run in
//    parallel as before.
//  - catalog() is that write connection: only store/ (and tests) may use
//    it. Code above the store that needs SQL of its own (the MQE) opens its
//    own connection with OpenConnection(), one per query::Engine, and owns
//    it: its authorizer, progress handler and registered functions live on
//    that connection only, and no other thread uses it.
//  - No module outside store/ builds paths inside a store directory by hand:
//    NewTempPath() gives scratch files (uploads, load output).
//
// Failures of the disk:
//  - Every write, sync, truncate, rename and unlink of the store's files goes
//    through one Env (StoreOptions::env, else Env::Default()), SQLite's
//    catalog I/O included (through a VFS shim when the Env is not the real
//    one). When any of them fails, the operation returns that error (naming
//    the file and the system call, or SQLite's "disk I/O error" / "database
//    or disk is full"), and the store on disk keeps the promises above: it
//    reopens, verifies, every version committed before is intact, and the
//    failed operation left no version (ingest), deleted all or nothing
//    (DeleteVersion), or moved no live chunk (Gc). Bytes a failed operation
//    wrote to packs are dead and the next Gc() reclaims them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cancel.h"
#include "core/dtype.h"
#include "core/env.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "core/shape.h"
#include "formats/model_source.h"
#include "nlohmann/json.hpp"
#include "store/extent_reader.h"

struct sqlite3;

namespace hart::store {

// Chunk size for tensor bytes: chunks start at the tensor's first byte, so
// equal tensors and equal prefixes share chunks. See docs/ARCHITECTURE.md for
// the choice.
inline constexpr uint64_t kChunkSize = 1 << 20;

// "llama@3" or "llama" (= latest version).
struct VersionRef {
  std::string model;
  std::optional<int64_t> number;
  std::string ToString() const;
};
absl::StatusOr<VersionRef> ParseVersionRef(std::string_view s);

// How a derived version was made (src/workshop/): its row in the catalog's
// `derivation` table, written in the ingest's own transaction, so a version
// and its lineage appear together or not at all.
struct DerivationRecord {
  std::string method;  // "quantize", "compose", "merge", "merge-lora", ...
  nlohmann::json parameters = nlohmann::json::object();
  // [{"ref": "m@N", "version_id": id, "digest": [file digests]}], in the
  // order the method names its inputs.
  nlohmann::json inputs = nlohmann::json::array();
  std::string hart_version;
  int64_t created_at = 0;  // unix seconds; set by the store
};

// Who owns a model and who else may read it (issue 14; app/access.h has the rule).
struct ModelAccess {
  std::string owner = "local";
  std::string tenant;
  std::string visibility = "private";  // "private", "tenant", "public"
};

struct IngestOptions {
  std::string model;                   // default: the source's name_hint
  std::optional<std::string> license;  // used when the file names none; wins over none
  std::optional<VersionRef> parent;
  bool progress = true;                // progress bar on a TTY
  // Also record each file's plain SHA-256 (to compare with a published
  // one). One serial pass over every byte on a core of its own: ingest then
  // runs no faster than one core hashes. The file digest is always recorded.
  bool file_sha256 = false;
  // Who ingests, for the audit log; "": $HART_ACTOR, else $USER, else "local".
  std::string actor;
  // Hears the ingest's progress (besides the TTY bar of `progress`); may be
  // null; must outlive the call.
  ProgressSink* progress_sink = nullptr;
  // Checked per piece of work; a cancelled ingest fails with Cancelled and
  // leaves the store as it was. May be null.
  const CancelToken* cancel = nullptr;
  // Set for a derived version: recorded with it (see DerivationRecord).
  std::optional<DerivationRecord> derivation;
  // Issue 14: dedup across owners stays invisible. When set (a caller that
  // is not an Admin), a chunk already in the store counts as deduplicated
  // only if a version of a model this accepts references it; any other is
  // reported as new and written to a pack again, exactly like a new one (same
  // bytes, same fsync), and the catalog keeps pointing at the first copy: the
  // second is dead bytes that gc reclaims. The parent suggestion considers
  // only accepted models too. Null: every model (the local user, an Admin).
  std::function<bool(const ModelAccess&)> dedup_visible;
  // Called inside the commit transaction with the model's access as it is
  // then (nullopt: this ingest creates the model); an error aborts the
  // ingest, so the access check and the commit are atomic. Null: no check.
  std::function<absl::Status(const std::optional<ModelAccess>&)> authorize;
  // The owner and visibility of a model this ingest creates, written in the
  // commit transaction (a version is never without them). Unset: the
  // catalog's default (local, private).
  std::optional<ModelAccess> new_model_access;
};

struct IngestResult {
  int64_t version_id = 0;
  std::string model;
  int64_t number = 0;
  uint64_t tensors = 0;
  uint64_t logical_bytes = 0;   // bytes of the source files
  uint64_t new_bytes = 0;       // bytes appended to packs (new chunks)
  uint64_t chunks = 0;
  uint64_t new_chunks = 0;
  std::string license;
  // Set when no parent was given and an existing version shares content.
  std::optional<std::string> suggested_parent;  // "model@N"
  double suggested_shared = 0;                  // fraction of this version's bytes shared
};

struct ModelRow {
  int64_t id = 0;
  std::string name;
  int64_t versions = 0;
  int64_t latest = 0;
  uint64_t logical_bytes = 0;  // of the latest version
};

struct VersionRow {
  int64_t id = 0;
  std::string model;
  int64_t number = 0;
  std::optional<std::string> parent;  // "model@N"
  formats::Format format = formats::Format::kSafetensors;
  std::string license;
  std::string architecture;
  int64_t created_at = 0;  // unix seconds
  uint64_t tensors = 0;
  uint64_t logical_bytes = 0;
  nlohmann::json metadata;
  std::string ref() const { return model + "@" + std::to_string(number); }
};

struct TensorRow {
  int64_t id = 0;  // component id
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t nbytes = 0;
  bool contiguous = false;               // readable zero-copy as one pack span
  // Hex tensor digest (SHA-256 over its chunk digests, chunker.h
  // TensorDigest): equal digests, equal bytes, in any version of any store.
  std::string sha256;
  std::vector<std::string> shared_with;  // other versions ("m@N") holding identical bytes
};

struct FileRow {
  int index = 0;
  std::string name;  // relative path as exported
  uint64_t size = 0;
  std::string sha256;  // hex SHA-256 of the original file; empty unless ingest computed it
  std::string digest;  // hex NinaDB file digest (FileDigest); empty for files ingested before v6
};

struct DiffRow {
  enum class Kind { kAdded, kRemoved, kChanged };
  Kind kind = Kind::kChanged;
  std::string name;
  std::string dtype_a, dtype_b;  // "" where absent
  Shape shape_a, shape_b;
  uint64_t bytes_a = 0, bytes_b = 0;
  uint64_t changed_bytes = 0;  // bytes of B's chunks not in A's
};

struct BadChunk {
  std::string sha256;
  std::string pack;
  uint64_t offset = 0;
  std::string reason;                // "hash mismatch", "pack missing", "truncated"
  std::vector<std::string> tensors;  // "model@N:tensor.name" it hurts
};

struct VerifyReport {
  uint64_t chunks = 0;
  uint64_t bytes = 0;
  std::vector<BadChunk> bad;
  bool ok() const { return bad.empty(); }
};

struct GcReport {
  uint64_t chunks_removed = 0;
  uint64_t bytes_reclaimed = 0;
  uint64_t packs_rewritten = 0;
  uint64_t packs_deleted = 0;
};

struct DeleteReport {
  std::string ref;                    // "model@N", deleted
  std::vector<std::string> children;  // versions whose parent it was (relinked to its parent)
  uint64_t tensors = 0;
  uint64_t exclusive_bytes = 0;  // chunk bytes no other version references: what gc reclaims
};

struct StatsRow {
  std::string model;            // "" for the whole store
  uint64_t versions = 0;
  uint64_t tensors = 0;
  uint64_t logical_bytes = 0;   // sum of version sizes
  uint64_t physical_bytes = 0;  // unique chunk bytes these versions reference
  double dedup_ratio = 0;       // logical / physical
};

struct StatsReport {
  std::vector<StatsRow> models;
  StatsRow total;
  uint64_t pack_bytes = 0;     // size of pack files on disk
  uint64_t catalog_bytes = 0;  // size of catalog.sqlite (+ WAL)
};

struct Event {
  int64_t id = 0;
  int64_t ts = 0;    // unix milliseconds
  std::string kind;  // "version.created", "gc.completed", ...
  nlohmann::json payload;
};

// A tensor's bytes: a span mapped straight from a pack when its chunks lie
// contiguously there (zero_copy), else assembled into an owned buffer.
class TensorBytes {
 public:
  TensorBytes() = default;
  static TensorBytes Mapped(std::shared_ptr<MappedFile> map, std::span<const uint8_t> span);
  static TensorBytes Owned(std::vector<uint8_t> buffer);
  std::span<const uint8_t> bytes() const { return span_; }
  bool zero_copy() const { return map_ != nullptr; }

 private:
  std::shared_ptr<MappedFile> map_;
  std::vector<uint8_t> buffer_;
  std::span<const uint8_t> span_;
};

class ReadConn;
struct StoreOptions {
  // Every write, sync, truncate, rename and unlink of the store's files
  // (packs, LOCK, and through a SQLite VFS shim the catalog) goes through
  // this Env; nullptr: Env::Default(). Tests pass a fault-injecting one.
  Env* env = nullptr;
};

// An API key (issue 14): only the SHA-256 of its secret is stored.
struct ApiKeyRow {
  std::string name;
  std::string owner;  // the owner identity it acts as
  std::string role;   // "Reader", "Contributor", "Admin"
  int64_t created_at = 0;
  std::string created_by;
  std::optional<int64_t> revoked_at;
};

class Store {
 public:
  // $HART_HOME, else ~/.hartonomous.
  static std::string DefaultDir();
  // Creates the directory layout and catalog; ok when it exists already.
  static absl::Status Init(const std::string& dir, const StoreOptions& opts = {});
  // Opens an existing store (NotFound with a hint to run `hart init` when
  // absent), migrating an older catalog schema forward.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir,
                                                     const StoreOptions& opts = {});
  ~Store();

  const std::string& dir() const;
  // Paths inside the store, for the few modules that keep files there (the
  // MQE's fingerprint index, its stats cache connection): nothing outside
  // store/ joins them by hand.
  std::string catalog_path() const;  // <dir>/catalog.sqlite
  std::string index_dir() const;     // <dir>/index: rebuildable indexes
  // Whether `dir` holds a store (its catalog exists).
  static bool Exists(const std::string& dir);
  // The write connection (see "Threads" above): store/ and tests only.
  sqlite3* catalog();

  // A new connection to the catalog for the caller's own use on one thread
  // (the MQE attaches its views, functions, authorizer and progress handler
  // to it). Closed when the handle goes.
  struct ConnectionCloser {
    void operator()(sqlite3* db) const;
  };
  using Connection = std::unique_ptr<sqlite3, ConnectionCloser>;
  absl::StatusOr<Connection> OpenConnection();

  // A fresh, not yet existing path <dir>/tmp/<prefix>-<random><suffix> for a
  // scratch file on the store's file system (an upload before its ingest, a
  // load's output before it is streamed). The caller removes it; Gc()
  // removes leftovers older than a day.
  absl::StatusOr<std::string> NewTempPath(std::string_view prefix, std::string_view suffix);

  absl::StatusOr<IngestResult> Ingest(const formats::ModelSource& src, const IngestOptions& opts);
  // The NinaDB file digest (hex, see FileDigest in store/chunker.h) each
  // file of `src` would get if ingested, without storing anything: how
  // `hart rebuild` checks that a recipe gives the same bytes again.
  static absl::StatusOr<std::vector<std::string>> FileDigests(const formats::ModelSource& src);

  // The derivation a version was made by; nullopt for an ingested one.
  absl::StatusOr<std::optional<DerivationRecord>> GetDerivation(int64_t version_id);
  // Versions derived from `version_id` (whose inputs name it), as "m@N".
  absl::StatusOr<std::vector<std::string>> DerivedFrom(int64_t version_id);

  absl::StatusOr<std::vector<ModelRow>> ListModels();
  absl::StatusOr<std::vector<VersionRow>> ListVersions(std::string_view model = "");
  absl::StatusOr<VersionRow> Resolve(const VersionRef& ref);
  absl::StatusOr<std::vector<TensorRow>> ListTensors(int64_t version_id);
  absl::StatusOr<std::vector<FileRow>> ListFiles(int64_t version_id);

  absl::StatusOr<TensorBytes> ReadTensor(int64_t version_id, std::string_view name);
  // Where a tensor's bytes lie, in tensor byte order: runs of chunks back to
  // back in one pack merged into one extent (extent_reader.h). For readers
  // that stream (the runtime's weight streamer) through an ExtentReader.
  absl::StatusOr<std::vector<Extent>> LocateTensor(int64_t version_id, std::string_view name);
  std::unique_ptr<ExtentReader> OpenExtentReader(ExtentReaderOptions opts = {});
  // Bytes [offset, offset + out.size()) of an original file of a version, as
  // export would write them (header bytes included).
  absl::Status ReadFileRange(int64_t version_id, int file_index, uint64_t offset,
                             std::span<uint8_t> out);

  // Writes the version's files back byte for byte. A single-file version is
  // written to out_path; a multi-file one (shards, index, config) into the
  // directory out_path. Checks each file's SHA-256 when verify is set.
  // Runs of the all-zero 1 MiB chunk (the gap of a sparse ONNX external
  // data file, zero padding) are left as holes, so the written file is
  // sparse where the original could be.
  absl::Status Export(int64_t version_id, const std::string& out_path, bool verify = false,
                      bool progress = true);

  // Writes the version's tensors (any source format whose dtypes safetensors
  // has: a PyTorch checkpoint, ONNX, safetensors) as ONE .safetensors file,
  // each tensor's contiguous row-major bytes as stored, in catalog order,
  // __metadata__ {"format": "pt"}. Shards become one file. An out_path
  // ending in ".safetensors" is that file; any other out_path is a
  // directory receiving model.safetensors plus the version's sidecar files
  // (config.json, tokenizer files: kSafetensorsSidecars) byte for byte.
  // With verify, the written file is read back and every tensor compared.
  absl::Status ExportSafetensors(int64_t version_id, const std::string& out_path,
                                 bool verify = false, bool progress = true);

  // Deletes one version in one transaction: its tensors, structure, files,
  // search rows and fingerprints go; its chunks stay until `gc` (other
  // versions may share them). The number is never reused. A version that is
  // the parent of others is refused unless force, which relinks those
  // children to its own parent. Writes a version.deleted event.
  // `actor` is recorded in the audit log ("": as IngestOptions::actor).
  absl::StatusOr<DeleteReport> DeleteVersion(const VersionRef& ref, bool force = false,
                                             std::string_view actor = "");

  absl::StatusOr<std::vector<DiffRow>> Diff(int64_t version_a, int64_t version_b);
  absl::StatusOr<VerifyReport> Verify(bool progress = true);
  absl::StatusOr<GcReport> Gc(std::string_view actor = "");
  // How long Gc() waits for other users of the store to finish (default 10 s).
  void set_gc_wait(std::chrono::milliseconds wait);
  absl::StatusOr<StatsReport> Stats();
  // API keys. Create: AlreadyExists when a live key has the name. Find: the
  // live key with this hash, NotFound otherwise. Revoke: NotFound when no
  // live key has the name. Creating and revoking are audited as `actor`.
  absl::Status CreateApiKey(const ApiKeyRow& key, std::string_view hash, std::string_view actor);
  absl::StatusOr<std::vector<ApiKeyRow>> ListApiKeys();
  absl::StatusOr<ApiKeyRow> FindApiKey(std::string_view hash);
  absl::Status RevokeApiKey(std::string_view name, std::string_view actor);

  // A model's owner and visibility (NotFound for an unknown model), every
  // model's, and changing them (audited as `actor`).
  absl::StatusOr<ModelAccess> GetModelAccess(std::string_view model);
  absl::StatusOr<std::map<std::string, ModelAccess>> ListModelAccess();
  absl::Status SetModelAccess(std::string_view model, const ModelAccess& access, std::string_view actor);

  // Events with id > after_id, oldest first, at most limit.
  absl::StatusOr<std::vector<Event>> Events(int64_t after_id, int64_t limit = 1000);

 private:
  friend class ReadConn;  // store_impl.h: a pooled read connection
  struct Impl;
  struct ExportCtx;
  explicit Store(std::unique_ptr<Impl> impl);
  // export.cc: one original file of a version, rebuilt from its segments.
  absl::Status ExportFile(const VersionRow& v, const FileRow& f, const std::string& target,
                          bool verify, ExportCtx& ctx);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hart::store

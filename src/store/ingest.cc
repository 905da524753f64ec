// Ingest: a ModelSource in, one version out. Order of work, so that a
// failure at any point leaves the catalog as it was:
//   1. check the request (license, name, parent) before touching anything;
//   2. cut tensors and raw file segments into chunks, in file order;
//   3. one pipeline (ChunkPipeline): chunks read into a ring of buffers and
//      hashed in parallel, each whole file's SHA-256 read from the same
//      buffers on a thread beside them, while this thread looks each chunk
//      up in the catalog and appends the new ones to a pack, a tensor's new
//      chunks back to back; then fsync;
//   4. one BEGIN IMMEDIATE transaction: version number max+1, rows for the
//      version, chunks, components, segments, files, outbox and audit.
// Bytes appended before a failure are unreferenced; gc reclaims them.
#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "core/progress.h"
#include "core/shape.h"
#include "core/status.h"
#include "fmt/format.h"
#include "store/chunker.h"
#include "store/db.h"
#include "store/fingerprint.h"
#include "store/search_index.h"
#include "store/structure.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {
namespace {

// A run of bytes stored as chunks [first, first + count) of the plan.
struct Piece {
  std::span<const uint8_t> bytes;
  size_t first = 0;
  size_t count = 0;
};

struct SegPlan {
  uint64_t offset = 0;
  uint64_t size = 0;
  int64_t tensor = -1;  // index into src.tensors, or -1
  size_t piece = 0;     // raw segments: index into pieces
};

struct FilePlan {
  std::vector<SegPlan> segs;
};

// A distinct chunk of this ingest.
struct UniqueChunk {
  Digest digest{};
  uint64_t size = 0;
  size_t first = 0;      // plan index of its first occurrence
  int64_t id = 0;        // chunk row id when the catalog has it already
  int64_t pack = 0;      // where this ingest wrote it, when new
  uint64_t offset = 0;
  bool written = false;  // reported as new: appended to a pack by this ingest
};

std::string Actor(std::string_view given) {
  if (!given.empty()) return std::string(given);
  for (const char* v : {"HART_ACTOR", "USER", "LOGNAME"})
    if (const char* a = std::getenv(v); a && *a) return a;
  return "local";
}

absl::Status CheckModelName(std::string_view name) {
  if (name.empty())
    return absl::InvalidArgumentError("no model name: give one (model)");
  if (name.size() > 200 || !formats::IsValidUtf8(name) || name.find('@') != std::string_view::npos ||
      std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
    return absl::InvalidArgumentError(fmt::format(
        "bad model name '{}': use up to 200 printable characters without '@'", name));
  return absl::OkStatus();
}

// The file's layout; for formats that give none, one made from the tensors
// that lie in the file (in offset order, overlaps skipped) with raw
// segments for the gaps, so export still rebuilds the file byte for byte.
std::vector<formats::Segment> LayoutOf(const formats::ModelSource& src, size_t f) {
  const formats::SourceFile& sf = src.files[f];
  if (!sf.layout.empty()) return sf.layout;
  std::vector<size_t> ts;
  for (size_t i = 0; i < src.tensors.size(); ++i)
    if (!src.tensors[i].owned && src.tensors[i].file == f && src.tensors[i].nbytes > 0) ts.push_back(i);
  std::sort(ts.begin(), ts.end(),
            [&](size_t a, size_t b) { return src.tensors[a].offset < src.tensors[b].offset; });
  std::vector<formats::Segment> out;
  uint64_t pos = 0;
  for (size_t i : ts) {
    const formats::TensorDesc& t = src.tensors[i];
    if (t.offset < pos) continue;
    if (t.offset > pos) out.push_back({pos, t.offset - pos, -1});
    out.push_back({t.offset, t.nbytes, static_cast<int64_t>(i)});
    pos = t.offset + t.nbytes;
  }
  uint64_t size = sf.map ? sf.map->size() : 0;
  if (size > pos) out.push_back({pos, size - pos, -1});
  return out;
}

absl::Status InsertEvent(sqlite3* db, std::string_view kind, const nlohmann::json& payload,
                         std::string_view action, std::string_view actor) {
  int64_t now_ms = static_cast<int64_t>(std::time(nullptr)) * 1000;
  {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
      now_ms = static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  }
  std::string text = payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  ASSIGN_OR_RETURN(Stmt o, Stmt::Prepare(db, "INSERT INTO outbox(ts, kind, payload) VALUES(?, ?, ?)"));
  RETURN_IF_ERROR(o.Bind(1, now_ms).Bind(2, kind).Bind(3, text).Run());
  ASSIGN_OR_RETURN(Stmt a, Stmt::Prepare(db, "INSERT INTO audit(ts, actor, action, detail) "
                                             "VALUES(?, ?, ?, ?)"));
  return a.Bind(1, now_ms).Bind(2, Actor(actor)).Bind(3, action).Bind(4, text).Run();
}

// A chunk row and whether a version of a model in ?2 (a JSON array of
// model ids) references it.
constexpr const char* kScopedChunkLookup =
    "SELECT c.id, EXISTS(SELECT 1 FROM tensor_chunk tc JOIN component co ON co.id = tc.component_id "
    "                    JOIN version v ON v.id = co.version_id "
    "                    WHERE tc.chunk_id = c.id AND v.model_id IN (SELECT value FROM json_each(?2))) "
    "          OR EXISTS(SELECT 1 FROM segment_chunk sc JOIN version v ON v.id = sc.version_id "
    "                    WHERE sc.chunk_id = c.id AND v.model_id IN (SELECT value FROM json_each(?2))) "
    "FROM chunk c WHERE c.sha256 = ?1";

absl::StatusOr<std::string> VisibleModelIds(sqlite3* db, const std::function<bool(const ModelAccess&)>& ok) {
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db, "SELECT id, owner, tenant, visibility FROM model"));
  nlohmann::json ids = nlohmann::json::array();
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (ok(ModelAccess{q.Text(1), q.Text(2), q.Text(3)})) ids.push_back(q.Int(0));
  }
  return ids.dump();
}

}  // namespace

// Also used by gc.cc.
absl::Status RecordEvent(sqlite3* db, std::string_view kind, const nlohmann::json& payload,
                         std::string_view action, std::string_view actor) {
  return InsertEvent(db, kind, payload, action, actor);
}

absl::StatusOr<IngestResult> Store::Ingest(const formats::ModelSource& src, const IngestOptions& opts) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());

  // 1. The request.
  std::optional<std::string> license = src.license ? src.license : opts.license;
  if (license && license->empty()) license.reset();
  if (!license)
    return absl::InvalidArgumentError(
        "no license in the file's metadata; give one (license: an SPDX id such as apache-2.0)");
  std::string model = opts.model.empty() ? src.name_hint : opts.model;
  RETURN_IF_ERROR(CheckModelName(model));
  RETURN_IF_ERROR(formats::ValidateSource(src));
  std::optional<int64_t> parent_id;
  if (opts.parent) {
    auto p = Resolve(*opts.parent);
    if (!p.ok()) return Annotate(p.status(), fmt::format("parent {}", opts.parent->ToString()));
    parent_id = p->id;
  }

  // 2. Plan the pieces and chunks in file order: each file's layout, its
  // tensors and raw segments as they lie, so the chunks of a file are one
  // ascending run that its whole-file hash reads in the pipeline's buffers
  // and the pack gets the file's new bytes in their original order. Tensors
  // in no layout (decoded, overlapping, empty) come last.
  std::vector<Piece> pieces(src.tensors.size());
  std::vector<bool> planned(src.tensors.size(), false);
  std::vector<size_t> order;  // piece indices in chunk order
  std::vector<ChunkRef> chunks;
  auto plan = [&](size_t piece, std::span<const uint8_t> bytes, const MappedFile* file) {
    pieces[piece].bytes = bytes;
    pieces[piece].first = chunks.size();
    CutChunks(bytes, file, &chunks);
    pieces[piece].count = chunks.size() - pieces[piece].first;
    order.push_back(piece);
  };
  std::vector<FilePlan> files(src.files.size());
  std::vector<ChunkPipeline::FileRange> file_ranges(src.files.size());
  uint64_t logical = 0;
  for (size_t f = 0; f < src.files.size(); ++f) {
    const MappedFile* map = src.files[f].map.get();
    logical += map ? map->size() : 0;
    file_ranges[f].first = chunks.size();
    for (const formats::Segment& s : LayoutOf(src, f)) {
      SegPlan sp{s.offset, s.size, s.tensor, 0};
      if (s.tensor < 0) {
        if (s.size == 0) continue;
        sp.piece = pieces.size();
        pieces.emplace_back();
        plan(sp.piece, src.SegmentBytes(f, s), map);
      } else if (!planned[s.tensor]) {
        planned[s.tensor] = true;
        plan(s.tensor, src.TensorBytes(s.tensor), map);
      }
      files[f].segs.push_back(sp);
    }
    file_ranges[f].count = chunks.size() - file_ranges[f].first;
  }
  for (size_t i = 0; i < src.tensors.size(); ++i) {
    if (planned[i]) continue;
    const formats::TensorDesc& t = src.tensors[i];
    plan(i, src.TensorBytes(i), t.owned ? nullptr : src.files[t.file].map.get());
  }
  if (src.files.empty()) logical = src.TotalTensorBytes();

  // 3. Read, hash and store in one pipeline: the workers read and hash
  // chunks ahead in chunk order while this thread takes each chunk as soon
  // as it is hashed, dedups it (within this ingest, then against the
  // catalog) and appends the new ones to a pack from the pipeline's buffer,
  // a piece's new chunks back to back; the pack writer starts the disk's
  // writeback as it goes, so the final fsync finds little left to do.
  uint64_t chunk_total = 0;
  for (auto& c : chunks) chunk_total += c.size;
  std::unique_ptr<Progress> bar;
  if (opts.progress || opts.progress_sink)
    bar = std::make_unique<Progress>("ingest " + model, chunk_total + (opts.file_sha256 ? logical : 0),
                                     "B", opts.progress_sink);
  // Each tensor's fingerprint (MQE similarity) is sampled from its chunks
  // while they are in the pipeline's buffers.
  struct Sampling {
    std::once_flag once;
    std::optional<FingerprintSampler> s;
  };
  std::vector<Sampling> sampling(src.tensors.size());
  auto sampler = [&](size_t i) -> std::optional<FingerprintSampler>& {
    std::call_once(sampling[i].once, [&] {
      const formats::TensorDesc& t = src.tensors[i];
      auto n = NumElements(t.shape);
      if (!n.ok()) return;
      auto fs = FingerprintSampler::Make(t.dtype, *n);
      if (fs.ok()) sampling[i].s = std::move(*fs);
    });
    return sampling[i].s;
  };
  std::vector<size_t> chunk_tensor(chunks.size(), SIZE_MAX);
  for (size_t i = 0; i < src.tensors.size(); ++i)
    for (size_t k = 0; k < pieces[i].count; ++k) chunk_tensor[pieces[i].first + k] = i;
  std::vector<std::optional<Fingerprint>> fingerprints(src.tensors.size());
  if (!opts.file_sha256) file_ranges.clear();
  ChunkPipeline pipe(chunks, file_ranges, bar.get(), [&](size_t c, std::span<const uint8_t> b) {
    size_t i = chunk_tensor[c];
    if (i == SIZE_MAX) return;
    if (auto& fs = sampler(i)) fs->Gather((c - pieces[i].first) * kChunkSize, b);
  });

  std::vector<UniqueChunk> uniq;
  std::vector<uint32_t> which(chunks.size());
  std::unordered_map<Digest, uint32_t, DigestHash> seen;
  seen.reserve(chunks.size());
  nlohmann::json existing_ids = nlohmann::json::array();
  std::string visible_models;  // JSON array of model ids, when scoped
  IngestResult res;
  res.model = model;
  res.license = *license;
  res.tensors = src.tensors.size();
  res.logical_bytes = logical;
  res.chunks = chunks.size();
  {
    PackWriter writer(impl_->packs_dir, impl_->env);
    writer.UseDirectIo();
    std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
    // Issue 14: for a scoped caller, the models it may read; a chunk only
    // others' versions reference goes the new chunk's way (see IngestOptions).
    if (opts.dedup_visible) {
      ASSIGN_OR_RETURN(visible_models, VisibleModelIds(impl_->db, opts.dedup_visible));
    }
    ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(impl_->db, opts.dedup_visible ? kScopedChunkLookup
                                                                          : "SELECT id, 1 FROM chunk WHERE sha256 = ?1"));
    // A run of new chunks waiting to go out in one write; their buffers are
    // released after it.
    size_t run_first = 0;
    std::vector<std::span<const uint8_t>> run;
    auto flush = [&](size_t next) -> absl::Status {
      if (!run.empty()) {
        ASSIGN_OR_RETURN(auto at, writer.Append(run));
        uint64_t off = at.second;
        for (size_t k = run_first; k < run_first + run.size(); ++k) {
          uniq[which[k]].pack = at.first;
          uniq[which[k]].offset = off;
          off += chunks[k].size;
        }
        run.clear();
      }
      pipe.Release(next);
      return absl::OkStatus();
    };
    for (size_t pi : order) {
      RETURN_IF_ERROR(CheckCancel(opts.cancel, "ingest " + model));
      const Piece& p = pieces[pi];
      const size_t end = p.first + p.count;
      bool reserved = false;
      for (size_t c = p.first; c < end; ++c) {
        RETURN_IF_ERROR(pipe.Wait(c));
        const Digest& d = pipe.digest(c);
        auto [it, fresh] = seen.emplace(d, static_cast<uint32_t>(uniq.size()));
        which[c] = it->second;
        bool is_new = false;
        if (fresh) {
          UniqueChunk u{d, chunks[c].size, c};
          q.BindBlob(1, u.digest);
          if (opts.dedup_visible) q.Bind(2, visible_models);
          ASSIGN_OR_RETURN(bool row, q.Step());
          if (row) u.id = q.Int(0);
          if (row && q.Int(1) != 0) {
            existing_ids.push_back(u.id);
          } else {
            // New, or held only by versions the caller may not read: written
            // all the same (a dead copy when the row exists).
            is_new = true;
            u.written = true;
          }
          q.Reset();
          uniq.push_back(u);
        }
        if (!is_new || run.size() == ChunkPipeline::kSlots / 4) RETURN_IF_ERROR(flush(c));
        if (!is_new) continue;
        if (!reserved) {
          // The rest of the piece must fit the pack so that its new chunks
          // stay contiguous; what dedups later only leaves room unused.
          uint64_t rest = 0;
          for (size_t k = c; k < end; ++k) rest += chunks[k].size;
          RETURN_IF_ERROR(writer.Reserve(rest));
          reserved = true;
        }
        if (run.empty()) run_first = c;
        run.push_back(pipe.bytes(c));
        res.new_bytes += chunks[c].size;
      }
      RETURN_IF_ERROR(flush(end));
      if (bar) bar->Add(p.bytes.size());
      if (pi < src.tensors.size()) {
        if (auto& fs = sampler(pi)) {
          auto fp = fs->Finish();
          if (fp.ok()) fingerprints[pi] = *fp;
          fs.reset();  // the sampled blocks are no longer needed
        }
      }
    }
    // Durable before the catalog references it.
    RETURN_IF_ERROR(writer.Sync());
  }
  RETURN_IF_ERROR(pipe.Finish());
  const std::vector<Digest>& digests = pipe.digests();
  const std::vector<Digest>& file_digests = pipe.file_digests();
  if (bar) bar->Finish();

  // Parent suggestion: the version sharing the most chunk bytes with this one.
  std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
  sqlite3* db = impl_->db;
  if (!parent_id && !existing_ids.empty()) {
    uint64_t mine = 0;
    for (const UniqueChunk& u : uniq) mine += u.size;
    ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db,
        "WITH ids(id) AS (SELECT value FROM json_each(?1)), "
        "shared(v, cid) AS ("
        " SELECT co.version_id, tc.chunk_id FROM tensor_chunk tc "
        "   JOIN component co ON co.id = tc.component_id WHERE tc.chunk_id IN ids"
        " UNION SELECT sc.version_id, sc.chunk_id FROM segment_chunk sc WHERE sc.chunk_id IN ids) "
        "SELECT m.name, v.number, SUM(ch.size) AS b FROM shared s JOIN chunk ch ON ch.id = s.cid "
        "JOIN version v ON v.id = s.v JOIN model m ON m.id = v.model_id "
        "WHERE ?2 IS NULL OR v.model_id IN (SELECT value FROM json_each(?2)) "
        "GROUP BY s.v ORDER BY b DESC, s.v DESC LIMIT 1"));
    q.Bind(1, existing_ids.dump());
    if (opts.dedup_visible) q.Bind(2, visible_models);
    else q.BindNull(2);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row && mine > 0) {
      res.suggested_parent = fmt::format("{}@{}", q.Text(0), q.Int(1));
      res.suggested_shared = static_cast<double>(q.Int(2)) / static_cast<double>(mine);
    }
  }

  // 4. One transaction.
  ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  // Issue 14: the caller's right to this model, checked against the catalog
  // as this transaction sees it, and a new model's owner written with it.
  if (opts.authorize) {
    ASSIGN_OR_RETURN(Stmt qa, Stmt::Prepare(db, "SELECT owner, tenant, visibility FROM model WHERE name = ?"));
    qa.Bind(1, model);
    ASSIGN_OR_RETURN(bool arow, qa.Step());
    std::optional<ModelAccess> current;
    if (arow) current = ModelAccess{qa.Text(0), qa.Text(1), qa.Text(2)};
    RETURN_IF_ERROR(opts.authorize(current));
  }
  ASSIGN_OR_RETURN(Stmt im, Stmt::Prepare(db, "INSERT INTO model(name, created_at) VALUES(?, ?) "
                                              "ON CONFLICT(name) DO NOTHING"));
  RETURN_IF_ERROR(im.Bind(1, model).Bind(2, now).Run());
  if (sqlite3_changes(db) == 1 && opts.new_model_access) {
    const ModelAccess& a = *opts.new_model_access;
    if (a.owner.empty() || (a.visibility != "private" && a.visibility != "tenant" && a.visibility != "public"))
      return absl::InvalidArgumentError("ingest: a new model's owner or visibility is not valid");
    ASSIGN_OR_RETURN(Stmt ua, Stmt::Prepare(db, "UPDATE model SET owner = ?, tenant = ?, visibility = ? WHERE name = ?"));
    RETURN_IF_ERROR(ua.Bind(1, a.owner).Bind(2, a.tenant).Bind(3, a.visibility).Bind(4, model).Run());
    ASSIGN_OR_RETURN(Stmt au, Stmt::Prepare(db, "INSERT INTO audit(ts, actor, action, detail) VALUES(?, ?, ?, ?)"));
    nlohmann::json detail = {{"model", model}, {"owner", a.owner}, {"tenant", a.tenant}, {"visibility", a.visibility}};
    RETURN_IF_ERROR(au.Bind(1, now * 1000).Bind(2, Actor(opts.actor)).Bind(3, "model.access")
                        .Bind(4, detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)).Run());
  }
  ASSIGN_OR_RETURN(Stmt qm, Stmt::Prepare(db, "SELECT id, MAX((SELECT COALESCE(MAX(number), 0) FROM version "
                                              "WHERE model_id = model.id), (SELECT COALESCE(MAX(number), 0) "
                                              "FROM version_tombstone WHERE model_id = model.id)) + 1 "
                                              "FROM model WHERE name = ?"));
  qm.Bind(1, model);
  ASSIGN_OR_RETURN(bool mrow, qm.Step());
  if (!mrow) return absl::InternalError("model row vanished inside the ingest transaction");
  int64_t model_id = qm.Int(0);
  res.number = qm.Int(1);

  ASSIGN_OR_RETURN(Stmt iv, Stmt::Prepare(db,
      "INSERT INTO version(id, model_id, number, parent_id, format, license, architecture, metadata, "
      "logical_bytes, tensor_count, created_at) VALUES("
      "MAX(COALESCE((SELECT MAX(id) FROM version), 0), "
      "    COALESCE((SELECT MAX(version_floor) FROM version_tombstone), 0)) + 1, "
      "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  iv.Bind(1, model_id).Bind(2, res.number).Bind(3, parent_id).Bind(4, formats::FormatName(src.format));
  iv.Bind(5, *license).Bind(6, src.architecture);
  iv.Bind(7, src.metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  iv.Bind(8, static_cast<int64_t>(logical)).Bind(9, static_cast<int64_t>(src.tensors.size())).Bind(10, now);
  RETURN_IF_ERROR(iv.Run());
  int64_t vid = sqlite3_last_insert_rowid(db);
  res.version_id = vid;

  // Chunk rows. A parallel ingest may have committed the same chunk since
  // the lookup; its row wins and our copy is dead bytes for gc.
  ASSIGN_OR_RETURN(Stmt ic, Stmt::Prepare(db, "INSERT INTO chunk(sha256, pack, offset, size) "
                                              "VALUES(?, ?, ?, ?) ON CONFLICT(sha256) DO NOTHING"));
  ASSIGN_OR_RETURN(Stmt qc, Stmt::Prepare(db, "SELECT id FROM chunk WHERE sha256 = ?"));
  for (UniqueChunk& u : uniq) {
    if (u.written) ++res.new_chunks;
    if (u.id != 0) continue;
    ic.BindBlob(1, u.digest).Bind(2, u.pack).Bind(3, static_cast<int64_t>(u.offset));
    RETURN_IF_ERROR(ic.Bind(4, static_cast<int64_t>(u.size)).Run());
    if (sqlite3_changes(db) == 1) {
      u.id = sqlite3_last_insert_rowid(db);
    } else {
      qc.BindBlob(1, u.digest);
      ASSIGN_OR_RETURN(bool row, qc.Step());
      if (!row) return absl::InternalError("chunk row conflict without a row");
      u.id = qc.Int(0);
      qc.Reset();
    }
  }

  // Components: the structure tree (model -> blocks -> tensors), roles,
  // layers and dataflow edges derived from the architecture and names.
  std::vector<StructureInput> sin(src.tensors.size());
  std::vector<TensorRowData> rows(src.tensors.size());
  for (size_t i = 0; i < src.tensors.size(); ++i) {
    const formats::TensorDesc& t = src.tensors[i];
    const Piece& p = pieces[i];
    Digest td = TensorDigest({digests.data() + p.first, p.count});
    sin[i] = {t.name, td, t.nbytes};
    rows[i] = {std::string(Name(t.dtype)), nlohmann::json(t.shape).dump(), t.nbytes, td};
  }
  // Component ids continue past those of deleted versions (see the v5
  // migration): a placeholder row at the floor makes SQLite's max + 1 start
  // above it, and goes before the commit.
  int64_t placeholder = 0;
  {
    ASSIGN_OR_RETURN(Stmt qf, Stmt::Prepare(db,
        "SELECT (SELECT MAX(component_floor) FROM version_tombstone), "
        "COALESCE((SELECT MAX(id) FROM component), 0)"));
    ASSIGN_OR_RETURN(bool frow, qf.Step());
    if (frow && !qf.IsNull(0) && qf.Int(0) > qf.Int(1)) {
      placeholder = qf.Int(0);
      ASSIGN_OR_RETURN(Stmt ip, Stmt::Prepare(db, "INSERT INTO component(id, version_id, kind, name) "
                                                  "VALUES(?, ?, 'model', '')"));
      RETURN_IF_ERROR(ip.Bind(1, placeholder).Bind(2, vid).Run());
    }
  }
  Structure structure = src.graph.empty() ? DeriveStructure(src.architecture, model, sin)
                                          : StructureFromGraph(model, src.graph, sin);
  ASSIGN_OR_RETURN(std::vector<int64_t> comp_ids, InsertStructure(db, vid, structure, rows));
  if (placeholder != 0) {
    ASSIGN_OR_RETURN(Stmt dp, Stmt::Prepare(db, "DELETE FROM component WHERE id = ?"));
    RETURN_IF_ERROR(dp.Bind(1, placeholder).Run());
  }
  ASSIGN_OR_RETURN(Stmt itc, Stmt::Prepare(db, "INSERT INTO tensor_chunk(component_id, seq, chunk_id) "
                                               "VALUES(?, ?, ?)"));
  for (size_t i = 0; i < src.tensors.size(); ++i) {
    const Piece& p = pieces[i];
    for (size_t k = 0; k < p.count; ++k) {
      itc.Bind(1, comp_ids[i]).Bind(2, static_cast<int64_t>(k));
      RETURN_IF_ERROR(itc.Bind(3, uniq[which[p.first + k]].id).Run());
    }
  }
  RETURN_IF_ERROR(IndexVersionForSearch(db, vid, comp_ids, fingerprints));  // full text, fingerprints

  ASSIGN_OR_RETURN(Stmt is, Stmt::Prepare(db,
      "INSERT INTO segment(version_id, file_idx, seq, offset, size, component_id) "
      "VALUES(?, ?, ?, ?, ?, ?)"));
  ASSIGN_OR_RETURN(Stmt isc, Stmt::Prepare(db,
      "INSERT INTO segment_chunk(version_id, file_idx, seq, chunk_seq, chunk_id) VALUES(?, ?, ?, ?, ?)"));
  ASSIGN_OR_RETURN(Stmt ifl, Stmt::Prepare(db,
      "INSERT INTO file(version_id, idx, name, size, sha256, digest) VALUES(?, ?, ?, ?, ?, ?)"));
  for (size_t f = 0; f < files.size(); ++f) {
    std::vector<SegmentDigest> seg_digests;
    for (size_t s = 0; s < files[f].segs.size(); ++s) {
      const SegPlan& sp = files[f].segs[s];
      const Piece& sp_piece = pieces[sp.tensor >= 0 ? static_cast<size_t>(sp.tensor) : sp.piece];
      seg_digests.push_back({sp.size, TensorDigest({digests.data() + sp_piece.first, sp_piece.count})});
      is.Bind(1, vid).Bind(2, static_cast<int64_t>(f)).Bind(3, static_cast<int64_t>(s));
      is.Bind(4, static_cast<int64_t>(sp.offset)).Bind(5, static_cast<int64_t>(sp.size));
      if (sp.tensor >= 0) is.Bind(6, comp_ids[sp.tensor]);
      else is.BindNull(6);
      RETURN_IF_ERROR(is.Run());
      if (sp.tensor >= 0) continue;
      const Piece& p = pieces[sp.piece];
      for (size_t k = 0; k < p.count; ++k) {
        isc.Bind(1, vid).Bind(2, static_cast<int64_t>(f)).Bind(3, static_cast<int64_t>(s));
        RETURN_IF_ERROR(isc.Bind(4, static_cast<int64_t>(k)).Bind(5, uniq[which[p.first + k]].id).Run());
      }
    }
    ifl.Bind(1, vid).Bind(2, static_cast<int64_t>(f)).Bind(3, src.files[f].name);
    ifl.Bind(4, static_cast<int64_t>(src.files[f].map ? src.files[f].map->size() : 0));
    ifl.Bind(5, opts.file_sha256 ? ToHex(file_digests[f]) : std::string());
    RETURN_IF_ERROR(ifl.Bind(6, ToHex(FileDigest(seg_digests))).Run());
  }

  nlohmann::json payload = {{"model", model},
                            {"number", res.number},
                            {"version_id", vid},
                            {"tensors", res.tensors},
                            {"bytes", res.logical_bytes},
                            {"new_bytes", res.new_bytes},
                            {"license", *license}};
  if (parent_id) {
    ASSIGN_OR_RETURN(std::string pref, VersionRefString(db, *parent_id));
    payload["parent"] = pref;
  }
  if (opts.derivation) {
    const DerivationRecord& d = *opts.derivation;
    ASSIGN_OR_RETURN(Stmt idr, Stmt::Prepare(db,
        "INSERT INTO derivation(version_id, method, parameters, inputs, hart_version, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?)"));
    idr.Bind(1, vid).Bind(2, d.method).Bind(3, d.parameters.dump()).Bind(4, d.inputs.dump());
    RETURN_IF_ERROR(idr.Bind(5, d.hart_version).Bind(6, now).Run());
    payload["derivation"] = d.method;
  }
  RETURN_IF_ERROR(InsertEvent(db, "version.created", payload,
                              opts.derivation ? "derive" : "ingest", opts.actor));
  RETURN_IF_ERROR(txn.Commit());
  return res;
}

absl::StatusOr<std::vector<std::string>> Store::FileDigests(const formats::ModelSource& src) {
  RETURN_IF_ERROR(formats::ValidateSource(src));
  // Bytes inside a file are read with pread into one reused buffer, not
  // through the mapping: hashing a large file must not map it all in.
  std::vector<uint8_t> buf(kChunkSize);
  auto digest_of = [&](std::span<const uint8_t> bytes, const MappedFile* map) -> absl::StatusOr<Digest> {
    std::vector<Digest> d;
    const uint8_t* base = map ? map->bytes().data() : nullptr;
    const bool in_file = base && bytes.data() >= base && bytes.data() + bytes.size() <= base + map->size();
    for (uint64_t pos = 0; pos < bytes.size(); pos += kChunkSize) {
      const uint64_t n = std::min<uint64_t>(kChunkSize, bytes.size() - pos);
      if (in_file) {
        std::span<uint8_t> out(buf.data(), n);
        RETURN_IF_ERROR(map->ReadAt(static_cast<uint64_t>(bytes.data() - base) + pos, out));
        d.push_back(Sha256(out));
      } else {
        d.push_back(Sha256(bytes.subspan(pos, n)));
      }
    }
    return TensorDigest(d);
  };
  std::vector<std::string> out;
  for (size_t f = 0; f < src.files.size(); ++f) {
    std::vector<SegmentDigest> segs;
    const MappedFile* map = src.files[f].map.get();
    for (const formats::Segment& s : LayoutOf(src, f)) {
      if (s.tensor < 0 && s.size == 0) continue;
      std::span<const uint8_t> b = s.tensor < 0 ? src.SegmentBytes(f, s) : src.TensorBytes(s.tensor);
      ASSIGN_OR_RETURN(Digest d, digest_of(b, map));
      segs.push_back({s.size, d});
    }
    out.push_back(ToHex(FileDigest(segs)));
  }
  return out;
}

absl::StatusOr<std::optional<DerivationRecord>> Store::GetDerivation(int64_t version_id) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
      "SELECT method, parameters, inputs, hart_version, created_at FROM derivation "
      "WHERE version_id = ?"));
  q.Bind(1, version_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<DerivationRecord>();
  DerivationRecord d;
  d.method = q.Text(0);
  d.parameters = nlohmann::json::parse(q.Text(1), nullptr, false);
  d.inputs = nlohmann::json::parse(q.Text(2), nullptr, false);
  if (d.parameters.is_discarded() || d.inputs.is_discarded())
    return absl::DataLossError(fmt::format("derivation of version {}: its JSON does not parse",
                                           version_id));
  d.hart_version = q.Text(3);
  d.created_at = q.Int(4);
  return std::optional<DerivationRecord>(std::move(d));
}

absl::StatusOr<std::vector<std::string>> Store::DerivedFrom(int64_t version_id) {
  SharedHold hold(impl_->lock.get());
  RETURN_IF_ERROR(hold.status());
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(),
      "SELECT DISTINCT m.name || '@' || v.number FROM derivation d, json_each(d.inputs) j "
      "JOIN version v ON v.id = d.version_id JOIN model m ON m.id = v.model_id "
      "WHERE json_extract(j.value, '$.version_id') = ? ORDER BY v.id"));
  q.Bind(1, version_id);
  std::vector<std::string> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(q.Text(0));
  }
  return out;
}

}  // namespace hart::store

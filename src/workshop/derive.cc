// Derive: check, stream into a scratch GGUF, ingest with lineage, clean up.
#include "workshop/derive.h"

#include <unistd.h>

#include <chrono>
#include <map>
#include <unordered_set>

#include "core/memory_usage.h"
#include "core/decode.h"
#include "core/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "workshop/hf_import.h"

namespace hart::workshop {
namespace {

// Removes a scratch file when the derivation ends, however it ends.
struct ScratchFile {
  std::string path;
  ~ScratchFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

std::string ShapeText(const Shape& s) { return nlohmann::json(s).dump(); }

absl::StatusOr<store::VersionRow> VersionById(store::Store& store, int64_t id) {
  ASSIGN_OR_RETURN(std::vector<store::VersionRow> all, store.ListVersions());
  for (store::VersionRow& v : all)
    if (v.id == id) return std::move(v);
  return absl::NotFoundError(fmt::format("version id {} is not in the store", id));
}

// The prepared inputs CheckWithPrepared shows to OpenSource and Check on
// this thread, while its check runs.
thread_local const PreparedInputs* t_prepared = nullptr;

const SourceModel* PreviewById(int64_t version_id) {
  if (!t_prepared) return nullptr;
  for (const PreparedInputs::Pending& p : t_prepared->pending)
    if (p.preview.version.id == version_id) return &p.preview;
  return nullptr;
}

// Everything that can be checked before a byte is written.
absl::Status Check(store::Store& store, const Derivation& d) {
  if (d.method.empty()) return absl::InvalidArgumentError("derivation: no method");
  if (d.tensors.empty()) return absl::InvalidArgumentError("derivation: no output tensors");
  std::unordered_set<std::string_view> names;
  std::map<int64_t, std::vector<store::TensorRow>> listed;
  for (const OutputTensor& t : d.tensors) {
    auto bad = [&](std::string what) {
      return absl::InvalidArgumentError(fmt::format("output tensor '{}': {}", t.name, what));
    };
    if (t.name.empty()) return absl::InvalidArgumentError("output tensor with an empty name");
    if (!names.insert(t.name).second) return bad("named twice");
    if (t.taken.has_value() + static_cast<bool>(t.compute) + static_cast<bool>(t.pieces) != 1)
      return bad("must be either taken from a version or computed, not both or neither");
    const DTypeInfo& info = Info(t.dtype);
    if (info.ggml_type < 0) return bad(fmt::format("GGUF has no type {}", info.name));
    if (!t.shape.empty() && t.shape.back() % info.block_size != 0)
      return bad(fmt::format("row of {} is not a multiple of the {} block size {}", t.shape.back(),
                             info.name, info.block_size));
    if (!t.taken) continue;
    auto it = listed.find(t.taken->version_id);
    if (it == listed.end()) {
      if (const SourceModel* pv = PreviewById(t.taken->version_id)) {
        it = listed.emplace(t.taken->version_id, pv->tensors).first;
      }
    }
    if (it == listed.end()) {
      ASSIGN_OR_RETURN(auto rows, store.ListTensors(t.taken->version_id));
      it = listed.emplace(t.taken->version_id, std::move(rows)).first;
    }
    const store::TensorRow* src = nullptr;
    for (const store::TensorRow& r : it->second)
      if (r.name == t.taken->name) src = &r;
    if (!src)
      return bad(fmt::format("taken from tensor '{}' of version id {}, which has no such tensor",
                             t.taken->name, t.taken->version_id));
    if (src->dtype != t.dtype || src->shape != t.shape)
      return bad(fmt::format("taken from '{}' which is {} {}, but the output says {} {}",
                             t.taken->name, Name(src->dtype), ShapeText(src->shape),
                             Name(t.dtype), ShapeText(t.shape)));
  }
  for (int64_t in : d.inputs)
    if (!PreviewById(in)) RETURN_IF_ERROR(VersionById(store, in).status());
  return absl::OkStatus();
}

// Writes the GGUF to a fresh scratch path and reads it back as a source.
absl::StatusOr<formats::ModelSource> WriteScratch(store::Store& store, const Derivation& d,
                                                  ScratchFile* scratch, DeriveResult* res,
                                                  const CancelToken* cancel) {
  ASSIGN_OR_RETURN(scratch->path, store.NewTempPath("derive", ".gguf"));
  std::vector<formats::TensorDesc> descs;
  for (const OutputTensor& t : d.tensors) {
    formats::TensorDesc desc;
    desc.name = t.name;
    desc.dtype = t.dtype;
    desc.shape = t.shape;
    descs.push_back(std::move(desc));
  }
  std::shared_ptr<TensorReader> owned = d.reader ? d.reader : std::make_shared<TensorReader>(store);
  TensorReader& reader = *owned;
  const uint64_t read_before = reader.bytes_read();
  std::vector<uint8_t> buf;
  absl::Status failed;  // the recipe's own error, reported without the scratch path
  auto stream = [&](size_t i, const formats::TensorPieceSink& write) -> absl::Status {
    RETURN_IF_ERROR(CheckCancel(cancel, "derive"));
    const OutputTensor& t = d.tensors[i];
    ASSIGN_OR_RETURN(uint64_t n, NumElements(t.shape));
    ASSIGN_OR_RETURN(uint64_t size, ByteSize(t.dtype, n));
    if (t.taken) {
      // Copied through one piece-sized buffer: never the whole tensor.
      ASSIGN_OR_RETURN(std::vector<store::Extent> extents,
                       reader.Locate(t.taken->version_id, t.taken->name));
      uint64_t total = 0;
      for (const store::Extent& e : extents) total += e.size;
      if (total != size)
        return absl::DataLossError(fmt::format("tensor '{}' of version id {}: {} bytes stored, {} expected",
                                               t.taken->name, t.taken->version_id, total, size));
      const uint64_t piece = std::min(size, PieceBytes());
      buf.resize(piece);
      for (uint64_t off = 0; off < size; off += piece) {
        RETURN_IF_ERROR(CheckCancel(cancel, "derive"));
        std::span<uint8_t> p(buf.data(), std::min(piece, size - off));
        RETURN_IF_ERROR(reader.ReadRange(extents, off, p));
        RETURN_IF_ERROR(write(p));
      }
      ++res->taken_tensors;
    } else if (t.pieces) {
      uint64_t produced = 0;
      PieceSink emit = [&](std::span<const uint8_t> p) -> absl::Status {
        RETURN_IF_ERROR(CheckCancel(cancel, "derive"));
        if (p.size() > size - produced)
          return absl::InternalError(fmt::format("{} bytes produced, the tensor has {}",
                                                 produced + p.size(), size));
        produced += p.size();
        return write(p);
      };
      absl::Status s = t.pieces(emit);
      if (s.ok() && produced != size)
        s = absl::InternalError(fmt::format("{} bytes produced, the tensor has {}", produced, size));
      if (!s.ok()) return failed = Annotate(s, fmt::format("tensor '{}'", t.name));
      ++res->computed_tensors;
      res->computed_bytes += size;
    } else {
      buf.assign(size, 0);
      absl::Status s = t.compute(std::span<uint8_t>(buf.data(), buf.size()));
      if (!s.ok()) return failed = Annotate(s, fmt::format("tensor '{}'", t.name));
      ++res->computed_tensors;
      res->computed_bytes += size;
      RETURN_IF_ERROR(write(std::span<const uint8_t>(buf.data(), buf.size())));
      if (buf.size() > PieceBytes()) std::vector<uint8_t>().swap(buf);
    }
    res->output_bytes += size;
    res->max_tensor_buffer = std::max<uint64_t>(res->max_tensor_buffer, buf.capacity());
    return absl::OkStatus();
  };
  absl::Status s = formats::WriteGgufStreamed(scratch->path, d.metadata, descs, stream, d.alignment);
  res->input_bytes = reader.bytes_read() - read_before;
  if (!failed.ok()) return failed;
  if (!s.ok()) return s;
  std::vector<uint8_t>().swap(buf);
  return formats::ReadGguf(scratch->path);
}

}  // namespace

std::string_view HartVersion() { return "hart 0.1.0"; }

namespace {
constexpr uint64_t kDefaultPieceBytes = uint64_t{8} << 20;
std::atomic<uint64_t> g_piece_bytes{kDefaultPieceBytes};
}  // namespace

uint64_t PieceBytes() { return g_piece_bytes.load(); }
void SetPieceBytesForTesting(uint64_t n) { g_piece_bytes = n ? n : kDefaultPieceBytes; }

absl::StatusOr<DeriveResult> Derive(store::Store& store, const Derivation& d,
                                    const DeriveOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(Check(store, d));
  if (opts.model.empty()) return absl::InvalidArgumentError("derivation: no model name for the output");
  // Lineage inputs and their file digests, read before anything is written.
  store::DerivationRecord rec;
  rec.method = d.method;
  rec.parameters = d.parameters;
  rec.hart_version = std::string(HartVersion());
  std::optional<store::VersionRow> first;
  for (int64_t in : d.inputs) {
    ASSIGN_OR_RETURN(store::VersionRow v, VersionById(store, in));
    ASSIGN_OR_RETURN(std::vector<store::FileRow> files, store.ListFiles(in));
    nlohmann::json digests = nlohmann::json::array();
    for (const store::FileRow& f : files) digests.push_back(f.digest);
    rec.inputs.push_back({{"ref", v.ref()}, {"version_id", in}, {"digest", digests}});
    if (!first) first = std::move(v);
  }

  DeriveResult res;
  ScratchFile scratch;
  ASSIGN_OR_RETURN(formats::ModelSource src, WriteScratch(store, d, &scratch, &res, opts.cancel));
  src.name_hint = opts.model;
  if (!src.files.empty()) src.files[0].name = opts.model + ".gguf";
  store::IngestOptions io;
  io.model = opts.model;
  io.license = opts.license.empty() && first ? first->license : opts.license;
  if (opts.parent) io.parent = opts.parent;
  else if (first) io.parent = store::VersionRef{first->model, first->number};
  io.progress = opts.progress;
  io.progress_sink = opts.progress_sink;
  io.cancel = opts.cancel;
  io.actor = opts.actor;
  io.derivation = std::move(rec);
  ASSIGN_OR_RETURN(res.ingest, store.Ingest(src, io));
  res.ref = fmt::format("{}@{}", res.ingest.model, res.ingest.number);
  ASSIGN_OR_RETURN(std::vector<store::FileRow> files, store.ListFiles(res.ingest.version_id));
  if (!files.empty()) res.file_digest = files[0].digest;
  res.peak_rss_bytes = hart::PeakRssBytes();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

absl::StatusOr<DeriveResult> DeriveDigestOnly(store::Store& store, const Derivation& d) {
  auto t0 = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(Check(store, d));
  DeriveResult res;
  ScratchFile scratch;
  ASSIGN_OR_RETURN(formats::ModelSource src, WriteScratch(store, d, &scratch, &res, nullptr));
  ASSIGN_OR_RETURN(std::vector<std::string> digests, store::Store::FileDigests(src));
  if (!digests.empty()) res.file_digest = digests[0];
  res.peak_rss_bytes = hart::PeakRssBytes();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

// ---- Inputs ---------------------------------------------------------------

const store::TensorRow* SourceModel::Find(std::string_view name) const {
  for (const store::TensorRow& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

absl::StatusOr<SourceModel> OpenSourceById(store::Store& store, int64_t version_id) {
  SourceModel m;
  ASSIGN_OR_RETURN(m.version, VersionById(store, version_id));
  if (m.version.format != formats::Format::kGguf)
    return absl::FailedPreconditionError(fmt::format(
        "{} is a {} version; the workshop derives from GGUF versions (a Hugging Face checkpoint: `hart convert "
        "{}` first, which stores its GGUF layout sharing the tensors)",
        m.version.ref(), formats::FormatName(m.version.format), m.version.ref()));
  ASSIGN_OR_RETURN(std::vector<store::FileRow> files, store.ListFiles(version_id));
  if (files.empty()) return absl::DataLossError(fmt::format("{} has no files", m.version.ref()));
  // The header's size is not in the catalog: read a growing prefix of the
  // original file until it parses (tokenizer arrays make it megabytes).
  const uint64_t size = files[0].size;
  uint64_t want = std::min<uint64_t>(size, 1 << 20);
  for (;;) {
    std::vector<uint8_t> prefix(want);
    RETURN_IF_ERROR(store.ReadFileRange(version_id, 0, 0, prefix));
    auto h = formats::ParseGgufHeader(prefix, size, files[0].name);
    if (h.ok()) {
      m.header = std::move(*h);
      break;
    }
    if (want >= size) return Annotate(h.status(), m.version.ref());
    want = std::min<uint64_t>(size, want * 4);
  }
  // A split model's keys describe the parts, not the one file derived.
  std::erase_if(m.header.metadata.entries,
                [](const formats::GgufKV& kv) { return kv.key.starts_with("split."); });
  ASSIGN_OR_RETURN(m.tensors, store.ListTensors(version_id));
  return m;
}

absl::StatusOr<SourceModel> OpenSource(store::Store& store, std::string_view ref) {
  ASSIGN_OR_RETURN(store::VersionRef r, store::ParseVersionRef(ref));
  auto v = store.Resolve(r);
  if (!v.ok()) return Annotate(v.status(), fmt::format("input {}", ref));
  if (v->format != formats::Format::kGguf) {
    ASSIGN_OR_RETURN(std::optional<store::VersionRow> conv, FindConversion(store, v->id));
    if (conv) return OpenSourceById(store, conv->id);
    if (t_prepared)
      for (const PreparedInputs::Pending& p : t_prepared->pending)
        if (p.hf_id == v->id) return p.preview;
  }
  return OpenSourceById(store, v->id);
}

// ---- Hugging Face inputs ----------------------------------------------------

absl::StatusOr<std::optional<store::VersionRow>> FindConversion(store::Store& store,
                                                                int64_t version_id) {
  ASSIGN_OR_RETURN(std::vector<std::string> derived, store.DerivedFrom(version_id));
  std::optional<store::VersionRow> best;
  for (const std::string& ref : derived) {
    ASSIGN_OR_RETURN(store::VersionRef r, store::ParseVersionRef(ref));
    ASSIGN_OR_RETURN(store::VersionRow v, store.Resolve(r));
    ASSIGN_OR_RETURN(std::optional<store::DerivationRecord> rec, store.GetDerivation(v.id));
    if (!rec || rec->method != "convert-hf" || rec->inputs.size() != 1) continue;
    const nlohmann::json& in = rec->inputs[0];
    if (!in.is_object() || !in.contains("version_id") || !in["version_id"].is_number_integer() ||
        in["version_id"].get<int64_t>() != version_id)
      continue;
    if (v.format != formats::Format::kGguf) continue;
    if (!best || v.id > best->id) best = std::move(v);
  }
  return best;
}

absl::StatusOr<PreparedInputs> PrepareInputs(store::Store& store, const std::vector<std::string>& refs) {
  PreparedInputs out;
  std::unordered_set<int64_t> seen;
  ASSIGN_OR_RETURN(std::vector<store::VersionRow> all, store.ListVersions());
  // Every conversion built (and so checked) before any is stored.
  for (const std::string& ref : refs) {
    auto r = store::ParseVersionRef(ref);
    if (!r.ok()) continue;
    auto v = store.Resolve(*r);
    if (!v.ok() || v->format != formats::Format::kSafetensors || !seen.insert(v->id).second) continue;
    InputConversion ic;
    ic.input = ref;
    ic.hf_ref = v->ref();
    ASSIGN_OR_RETURN(std::optional<store::VersionRow> conv, FindConversion(store, v->id));
    if (conv) {
      ic.converted = conv->ref();
      out.conversions.push_back(std::move(ic));
      continue;
    }
    auto d = BuildConvertHf(store, v->id);
    if (!d.ok())
      return Annotate(d.status(), fmt::format("input {} (a Hugging Face version, converted to the GGUF layout first)", ref));
    out.conversions.push_back(std::move(ic));
    PreparedInputs::Pending p;
    p.index = out.conversions.size() - 1;
    p.hf_id = v->id;
    p.model = v->model + "-gguf";
    // The conversion as a source: its header and tensor rows, under a
    // negative id (no stored version has one) and the number it would get
    // (the largest live one plus one; messages only).
    SourceModel& m = p.preview;
    m.version.id = -v->id;
    m.version.model = p.model;
    m.version.number = 1;
    for (const store::VersionRow& x : all)
      if (x.model == p.model) m.version.number = std::max(m.version.number, x.number + 1);
    m.version.format = formats::Format::kGguf;
    m.version.license = v->license;
    m.version.architecture = d->metadata.GetString("general.architecture").value_or("");
    m.header.metadata = d->metadata;
    m.header.alignment = d->alignment;
    uint64_t offset = 0;
    for (const OutputTensor& t : d->tensors) {
      ASSIGN_OR_RETURN(uint64_t n, NumElements(t.shape));
      ASSIGN_OR_RETURN(uint64_t size, ByteSize(t.dtype, n));
      m.header.tensors.push_back({t.name, t.dtype, t.shape, offset, size});
      offset += (size + d->alignment - 1) / d->alignment * d->alignment;
      store::TensorRow row;
      row.name = t.name;
      row.dtype = t.dtype;
      row.shape = t.shape;
      row.nbytes = size;
      m.tensors.push_back(std::move(row));
      m.version.logical_bytes += size;
    }
    m.version.tensors = m.tensors.size();
    p.derivation = std::move(*d);
    out.pending.push_back(std::move(p));
  }
  return out;
}

absl::Status CheckWithPrepared(store::Store& store, const PreparedInputs& p,
                               const std::function<absl::Status()>& check) {
  (void)store;
  struct Scope {
    const PreparedInputs* saved;
    explicit Scope(const PreparedInputs* now) : saved(t_prepared) { t_prepared = now; }
    ~Scope() { t_prepared = saved; }
  } scope(&p);
  absl::Status s = check();
  if (s.ok() || p.pending.empty()) return s;
  std::vector<std::string> seen;
  for (const PreparedInputs::Pending& x : p.pending)
    seen.push_back(fmt::format("{} as {}", p.conversions[x.index].hf_ref, x.preview.version.ref()));
  return absl::Status(s.code(), fmt::format("{} (checked before anything was stored, against the GGUF layout of "
                                            "its Hugging Face inputs converted in memory: {})",
                                            std::string(s.message()), fmt::join(seen, ", ")));
}

absl::Status CheckDerivation(store::Store& store, const Derivation& d) { return Check(store, d); }

absl::StatusOr<std::vector<InputConversion>> StorePrepared(store::Store& store, PreparedInputs p,
                                                           const DeriveOptions& opts) {
  std::vector<InputConversion>& out = p.conversions;
  for (PreparedInputs::Pending& x : p.pending) {
    DeriveOptions o = opts;
    o.model = x.model;
    o.parent.reset();
    o.license.clear();
    auto res = Derive(store, x.derivation, o);
    if (!res.ok()) {
      UndoConversions(store, out, opts.actor);
      return Annotate(res.status(), fmt::format("converting {}", out[x.index].hf_ref));
    }
    out[x.index].created = true;
    out[x.index].converted = res->ref;
    out[x.index].result = std::move(*res);
  }
  return std::move(out);
}

absl::StatusOr<std::vector<InputConversion>> ConvertInputs(store::Store& store,
                                                           const std::vector<std::string>& refs,
                                                           const DeriveOptions& opts) {
  ASSIGN_OR_RETURN(PreparedInputs p, PrepareInputs(store, refs));
  return StorePrepared(store, std::move(p), opts);
}

absl::Status AnnotateUndone(const absl::Status& s, const std::vector<InputConversion>& done) {
  std::vector<std::string> made;
  for (const InputConversion& c : done)
    if (c.created) made.push_back(c.converted);
  if (made.empty() || s.ok()) return s;
  return absl::Status(s.code(), fmt::format("{} (converted for it and deleted again: {})", std::string(s.message()),
                                            fmt::join(made, ", ")));
}

void UndoConversions(store::Store& store, const std::vector<InputConversion>& done,
                     std::string_view actor) {
  for (const InputConversion& c : done) {
    if (!c.created) continue;
    auto r = store::ParseVersionRef(c.converted);
    if (r.ok()) (void)store.DeleteVersion(*r, /*force=*/false, actor);
  }
}

TensorReader::TensorReader(store::Store& store) : store_(store), reader_(store.OpenExtentReader()) {}
TensorReader::~TensorReader() = default;

absl::StatusOr<std::vector<store::Extent>> TensorReader::Locate(int64_t version_id,
                                                                std::string_view name) {
  return store_.LocateTensor(version_id, name);
}

absl::Status TensorReader::ReadRange(const std::vector<store::Extent>& extents, uint64_t begin,
                                     std::span<uint8_t> out) {
  uint64_t pos = 0;  // tensor byte offset of the current extent
  size_t done = 0;
  for (const store::Extent& e : extents) {
    if (done == out.size()) break;
    const uint64_t want = begin + done;
    if (want < pos + e.size) {
      const uint64_t skip = want - pos;
      const uint64_t n = std::min<uint64_t>(e.size - skip, out.size() - done);
      RETURN_IF_ERROR(reader_->ReadCopy(store::Extent{e.pack, e.offset + skip, n}, out.subspan(done, n)));
      done += n;
    }
    pos += e.size;
  }
  bytes_read_ += done;
  if (done != out.size())
    return absl::DataLossError(
        fmt::format("tensor bytes end at {}, wanted {}", pos, begin + out.size()));
  return absl::OkStatus();
}

absl::Status TensorReader::ReadBytes(int64_t version_id, std::string_view name,
                                     std::vector<uint8_t>* out) {
  ASSIGN_OR_RETURN(std::vector<store::Extent> extents, store_.LocateTensor(version_id, name));
  uint64_t total = 0;
  for (const store::Extent& e : extents) total += e.size;
  out->resize(total);
  return ReadRange(extents, 0, std::span<uint8_t>(out->data(), out->size()));
}

absl::Status TensorReader::ReadF32(int64_t version_id, const store::TensorRow& t,
                                   std::vector<float>* out) {
  if (!CanDecode(t.dtype))
    return absl::InvalidArgumentError(
        fmt::format("tensor '{}': cannot read {} as float32", t.name, Name(t.dtype)));
  RETURN_IF_ERROR(ReadBytes(version_id, t.name, &scratch_));
  ASSIGN_OR_RETURN(uint64_t n, NumElements(t.shape));
  out->resize(n);
  return DecodeToF32(t.dtype, scratch_, std::span<float>(out->data(), out->size()));
}

// ---- Metadata -------------------------------------------------------------

void SetMetadata(formats::GgufMetadata* m, std::string_view key, formats::GgufValue v) {
  for (formats::GgufKV& kv : m->entries)
    if (kv.key == key) {
      kv.value = std::move(v);
      return;
    }
  m->entries.push_back({std::string(key), std::move(v)});
}

formats::GgufValue U32(uint32_t v) {
  return formats::GgufValue{formats::GgufType::kUint32, uint64_t{v}};
}
formats::GgufValue Str(std::string v) {
  return formats::GgufValue{formats::GgufType::kString, std::move(v)};
}

}  // namespace hart::workshop

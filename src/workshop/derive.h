// Derivation: a new version made from stored ones (quantize, merge, LoRA,
// compose), as a recipe over stored tensors. The output is a GGUF: its
// metadata and an ordered list of tensors, each either taken unchanged from
// a stored version or computed by a callback, one tensor at a time and each
// in pieces of a few MiB, so the memory a derivation holds is a few pieces,
// never a whole tensor (the tied embedding of a 1B model is 525 MB in BF16)
// nor the model.
//
// Derive() checks everything it can before writing a byte (names, types,
// shapes, that taken tensors exist as described), then streams the tensors
// into a temporary GGUF in the store's scratch directory through
// formats::WriteGgufStreamed, ingests it with Store::Ingest (chunks dedup, so a
// tensor taken unchanged costs no new bytes) together with its lineage
// record in the same transaction, and removes the temporary file. A
// failure at any point leaves the store as it was (scratch bytes aside,
// which are removed; dead pack bytes, which gc reclaims).
//
// Why a temporary file rather than a ModelSource over a streamed writer:
// Store::Ingest wants every tensor's bytes addressable at once (it plans
// chunks across the file, hashes in parallel and keeps the file layout for
// byte-exact export). A GGUF on the store's own file system gives it that
// through the page cache at the cost of one sequential write, and `hart
// export` of the derived version returns exactly that file.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/cancel.h"
#include "core/dtype.h"
#include "core/progress.h"
#include "core/shape.h"
#include "formats/gguf.h"
#include "formats/gguf_stream.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::workshop {

// The Hartonomous version recorded with each derivation.
std::string_view HartVersion();

// A stored tensor: version id and tensor name.
struct TensorOrigin {
  int64_t version_id = 0;
  std::string name;
};

// Fills `out` (exactly the output tensor's byte size) with the tensor's
// bytes. Called once per tensor, in output order, on the deriving thread.
// The whole tensor is held: for small tensors only (see ComputePiecesFn).
using ComputeFn = std::function<absl::Status(std::span<uint8_t> out)>;

// Hands the next consecutive piece of a computed tensor's bytes to the
// scratch file (written at once, not kept).
using PieceSink = formats::TensorPieceSink;
// Produces the tensor's bytes in order through `emit`, in pieces of any size
// (about PieceBytes() each, so a derivation holds a few pieces, not the
// largest tensor); their total must be exactly the tensor's byte size.
// Called once per tensor, in output order, on the deriving thread.
using ComputePiecesFn = std::function<absl::Status(const PieceSink& emit)>;

// The size of the pieces taken tensors are copied in and computed tensors
// are asked to produce (8 MiB; tests make it small).
uint64_t PieceBytes();
void SetPieceBytesForTesting(uint64_t n);  // 0: the default

struct OutputTensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;  // outermost first
  // Exactly one of the three: taken unchanged (dtype and shape must match
  // the stored tensor, copied in pieces), computed whole, or computed in
  // pieces.
  std::optional<TensorOrigin> taken;
  ComputeFn compute;
  ComputePiecesFn pieces;
};

class TensorReader;

struct Derivation {
  // The output's GGUF key/values, in file order (general.alignment is
  // written by the writer from `alignment`).
  formats::GgufMetadata metadata;
  std::vector<OutputTensor> tensors;
  uint64_t alignment = 32;
  // Lineage: the method, its parameters (everything needed to re-run it
  // given the inputs) and the input versions, in the method's order.
  std::string method;
  nlohmann::json parameters = nlohmann::json::object();
  std::vector<int64_t> inputs;
  // Builders read their inputs through this reader (so its count of bytes
  // read is the derivation's input); Derive reads taken tensors with it too
  // and makes one when it is null.
  std::shared_ptr<TensorReader> reader;
};

struct DeriveOptions {
  std::string model;                          // the new version's model name
  std::optional<store::VersionRef> parent;    // default: the first input
  std::string license;                        // default: the first input's
  std::string actor;
  bool progress = false;
  ProgressSink* progress_sink = nullptr;
  const CancelToken* cancel = nullptr;
};

struct DeriveResult {
  store::IngestResult ingest;
  std::string ref;                  // "model@N"
  uint64_t output_bytes = 0;        // tensor bytes of the output
  uint64_t taken_tensors = 0;
  uint64_t computed_tensors = 0;
  uint64_t computed_bytes = 0;
  uint64_t input_bytes = 0;         // tensor bytes read from the store
  uint64_t peak_rss_bytes = 0;      // of this process, after the derivation
  uint64_t max_tensor_buffer = 0;   // largest buffer Derive held for one tensor
                                    // (a piece, or a whole computed tensor)
  double seconds = 0;
  std::string file_digest;          // NinaDB digest of the written GGUF
};

// Checks, writes, ingests (see the top of this file).
absl::StatusOr<DeriveResult> Derive(store::Store& store, const Derivation& d,
                                    const DeriveOptions& opts);

// Writes the derivation's GGUF to scratch and returns its NinaDB file digest
// without ingesting anything (`hart rebuild`).
absl::StatusOr<DeriveResult> DeriveDigestOnly(store::Store& store, const Derivation& d);

// ---- Reading inputs -------------------------------------------------------

// A stored GGUF version opened as a derivation input: its catalog row, its
// original GGUF header (every key/value in full, arrays included) and its
// tensors by name.
struct SourceModel {
  store::VersionRow version;
  formats::GgufHeader header;
  std::vector<store::TensorRow> tensors;
  const store::TensorRow* Find(std::string_view name) const;
};
// NotFound naming the ref; FailedPrecondition for a version that is not a
// GGUF (its metadata could not be carried into the output). OpenSource opens
// an HF version's stored conversion in its place (FindConversion);
// OpenSourceById opens exactly the version given.
absl::StatusOr<SourceModel> OpenSource(store::Store& store, std::string_view ref);
absl::StatusOr<SourceModel> OpenSourceById(store::Store& store, int64_t version_id);

// ---- Hugging Face inputs ---------------------------------------------------
//
// Quantize, compose and merge take an HF (safetensors + config.json) version
// as they take a GGUF one: they derive from its GGUF layout, the `convert-hf`
// derivation of that exact version (hf_import.h). OpenSource() opens the
// newest stored conversion in its place; ConvertInputs() (run by the app's
// use cases before the method is built) stores one where there is none.
// The method then records the converted version as its input, and the
// conversion records the HF version as its own, so the lineage reads
// HF -> convert-hf -> method and `hart rebuild` of either step re-runs it
// against the same stored inputs (the same digest).

// The newest stored `convert-hf` derivation of `version_id`; nullopt when
// none.
absl::StatusOr<std::optional<store::VersionRow>> FindConversion(store::Store& store,
                                                                int64_t version_id);

// What ConvertInputs did for one HF input.
struct InputConversion {
  std::string input;       // the reference as the operation named it
  std::string hf_ref;      // "m@N" of the HF version
  std::string converted;   // "m@N" of its GGUF-layout version
  bool created = false;    // stored now (else an earlier conversion reused)
  DeriveResult result;     // of the conversion, when created
};

// For every ref that names a non-GGUF version without a stored conversion:
// converts it (model "<model>-gguf"; actor, progress and cancel from
// `opts`). Every conversion is built and checked (tokenizer, architecture,
// tensor names) before any is stored, so an input that does not convert
// leaves the store as it was. Refs that do not resolve, and GGUF versions,
// are passed over: the method reports them with its own field names.
absl::StatusOr<std::vector<InputConversion>> ConvertInputs(store::Store& store,
                                                           const std::vector<std::string>& refs,
                                                           const DeriveOptions& opts);

// ConvertInputs in two steps, so that an operation is checked against its
// HF inputs' conversions before any of them is stored:
//   auto p = PrepareInputs(store, refs);          // built in memory, checked
//   CheckWithPrepared(store, *p, [&] { build the method's derivation;
//                                      return CheckDerivation(store, d); });
//   auto conv = StorePrepared(store, std::move(*p), opts);   // now stored
//   run the method for real; on failure UndoConversions (I/O faults only).
// While `check` runs on this thread, OpenSource() of an HF input with no
// stored conversion opens its in-memory conversion instead: a SourceModel
// with the conversion's GGUF metadata and tensor rows (names, types, shapes)
// and a negative version id standing for the version not yet stored, and
// CheckDerivation accepts tensors taken from it. So everything a method
// checks before writing (architectures, hyper-parameters, layer ranges,
// tensor names, shapes, types) is checked with nothing stored; what is left
// to fail after StorePrepared is reading and writing bytes (I/O, a
// cancel). The store has no primitive that rolls several ingests back as
// one (each ingest is its own catalog transaction), so for that residual
// case UndoConversions deletes the conversions, which leaves a trace (see
// UndoConversions).
struct PreparedInputs {
  // One per distinct HF input; `converted` is empty (and `created` false)
  // for the ones still to be stored.
  std::vector<InputConversion> conversions;
  struct Pending {
    size_t index = 0;  // into conversions
    int64_t hf_id = 0;
    std::string model;  // "<model>-gguf"
    Derivation derivation;
    SourceModel preview;  // what OpenSource gives while checking
  };
  std::vector<Pending> pending;
};
absl::StatusOr<PreparedInputs> PrepareInputs(store::Store& store, const std::vector<std::string>& refs);
// Runs `check` with the pending conversions visible as described above; a
// failure is annotated with the conversions it saw in place of HF inputs.
absl::Status CheckWithPrepared(store::Store& store, const PreparedInputs& p,
                               const std::function<absl::Status()>& check);
absl::StatusOr<std::vector<InputConversion>> StorePrepared(store::Store& store, PreparedInputs p,
                                                           const DeriveOptions& opts);
// Everything Derive checks before writing a byte (names, types, shapes,
// that taken tensors exist as described, that the inputs exist).
absl::Status CheckDerivation(store::Store& store, const Derivation& d);

// Deletes the versions ConvertInputs stored (`created`) when the operation
// that needed them failed after they were stored (with PrepareInputs and
// CheckWithPrepared first, only an I/O fault or a cancel while writing):
// their versions, tensors and lineage go; what Store::DeleteVersion keeps
// (the model row, the number's tombstone, a `version.deleted` event, pack
// bytes until gc) stays.
void UndoConversions(store::Store& store, const std::vector<InputConversion>& done,
                     std::string_view actor);
// `s` with "(converted for it and deleted again: m-gguf@N, ...)" when
// `done` created any (the message may name them).
absl::Status AnnotateUndone(const absl::Status& s, const std::vector<InputConversion>& done);

// Streams stored tensors into caller buffers through direct I/O (the page
// cache is not filled with the whole model).
class TensorReader {
 public:
  explicit TensorReader(store::Store& store);
  ~TensorReader();
  // The stored bytes, into `out` (resized).
  absl::Status ReadBytes(int64_t version_id, std::string_view name, std::vector<uint8_t>* out);
  // As float32: F32, F16 and BF16 (and the block types core decodes).
  absl::Status ReadF32(int64_t version_id, const store::TensorRow& t, std::vector<float>* out);
  // Bytes [begin, begin + out.size()) of a tensor stored as `extents`
  // (store::Store::LocateTensor), into `out`.
  absl::Status ReadRange(const std::vector<store::Extent>& extents, uint64_t begin,
                         std::span<uint8_t> out);
  absl::StatusOr<std::vector<store::Extent>> Locate(int64_t version_id, std::string_view name);
  uint64_t bytes_read() const { return bytes_read_.load(); }

 private:
  store::Store& store_;
  std::unique_ptr<store::ExtentReader> reader_;
  std::vector<uint8_t> scratch_;
  std::atomic<uint64_t> bytes_read_{0};
};

// ---- Metadata helpers -----------------------------------------------------

// Sets key to a value of the given type: in place when present (file order
// kept, as gguf_set_val does), else appended.
void SetMetadata(formats::GgufMetadata* m, std::string_view key, formats::GgufValue v);
formats::GgufValue U32(uint32_t v);
formats::GgufValue Str(std::string v);

}  // namespace hart::workshop

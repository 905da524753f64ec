// Use cases that move bytes in and out of a store: ingest (a file or
// directory already on disk: the CLI's argument, or the server's upload
// streamed to a temp file inside the store first), export (whole files to a
// path, or any byte range of one original file without writing it: HTTP
// Range), load (exactly a plan's tensors as GGUF or safetensors, to a path
// or a stream).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "app/query.h"
#include "nlohmann/json.hpp"
#include "store/store.h"
#include "workshop/hf_export.h"

namespace hart::app {

// Receives bytes in order; an error stops the producer and is returned.
using ByteSink = std::function<absl::Status(std::span<const uint8_t>)>;

// Ingest one model file or directory as one new version, all or nothing (a
// failed ingest leaves the store exactly as it was). The path is the
// caller's: the CLI's argument or the server's temp upload; FromJson never
// reads one (a client must not name files on the server).
struct IngestRequest {
  std::string path;                    // set by the caller, not by JSON
  std::string model;                   // "": the source's name (file name without suffix)
  std::optional<std::string> license;  // used when the file names none
  std::string parent;                  // "model@N" or ""
  bool file_sha256 = false;            // also record each file's plain SHA-256
  // A llama2.c checkpoint's tokenizer file; "": look beside the checkpoint.
  // A path, so set by the caller, not by JSON.
  std::string tokenizer;
  // {"model"?, "license"?, "parent"?, "file_sha256"?}
  static absl::StatusOr<IngestRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct IngestResponse {
  std::string path;
  store::IngestResult result;
  // For a caller that is not an Admin, new_bytes, new_chunks and the
  // suggested parent count only what models it may read hold (issue 14:
  // dedup across owners stays invisible; see store::IngestOptions).
  // One element of `hart ingest --json`'s array: the result plus "path".
  nlohmann::json ToJson() const;
};
absl::StatusOr<IngestResponse> Ingest(const Context& ctx, const IngestRequest& req);

// Where an upload is written before it is ingested: a fresh path inside the
// store (same file system, so nothing crosses devices), ending in `suffix`
// (".safetensors", ".gguf", ...: the format is told by it). The caller
// removes it after Ingest (RemoveUpload); Gc() removes stale ones.
absl::StatusOr<std::string> NewUploadPath(const Context& ctx, std::string_view suffix);
void RemoveUpload(const std::string& path);

// `hart export MODEL[@V] -o PATH [--format F] [--verify] [--dtype D]`.
struct ExportRequest {
  std::string version;
  std::string format = "auto";  // auto, original, safetensors, hf
  bool verify = false;
  // hf: the tensors' type in model.safetensors (bf16, f16, f32).
  std::string dtype = "bf16";
  static absl::StatusOr<ExportRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct ExportResponse {
  store::VersionRow version;
  std::string path;
  std::string format;  // what was written: "original", "safetensors" or "hf"
  bool verified = false;
  std::vector<store::FileRow> files;  // original
  uint64_t bytes = 0;                 // original: sum of file sizes
  uint64_t tensors = 0;               // safetensors
  uint64_t tensor_bytes = 0;          // safetensors
  std::optional<workshop::HfExportResult> hf;  // hf: a Hugging Face model directory
  // As `hart export --json` prints it (its fields differ by format).
  nlohmann::json ToJson() const;
};
// Writes to `out_path` (a file, or a directory for multi-file versions).
absl::StatusOr<ExportResponse> Export(const Context& ctx, const ExportRequest& req,
                                      const std::string& out_path);

// One original file of a version, read in any byte range without writing the
// file anywhere: the bytes are rebuilt from their chunks on the fly. Serves
// HTTP Range (206) and whole downloads alike.
// The Context given to Open must outlive the reader.
class ExportFileReader {
 public:
  // `file`: the file's name as exported (FileRow::name), or "" for the only
  // file of a single-file version (InvalidArgument listing the names when
  // there are several). NotFound for an unknown version or file.
  static absl::StatusOr<ExportFileReader> Open(const Context& ctx, std::string_view version,
                                               std::string_view file = "");
  const store::VersionRow& version() const { return version_; }
  const store::FileRow& file() const { return file_; }
  uint64_t size() const { return file_.size; }
  // Bytes [offset, offset + length) to `sink` in pieces of at most 1 MiB.
  // OutOfRange when the range is empty or runs past size(); checks
  // cancellation between pieces.
  absl::Status Read(uint64_t offset, uint64_t length, const ByteSink& sink) const;

 private:
  const Context* ctx_ = nullptr;
  store::VersionRow version_;
  store::FileRow file_;
};

// HTTP Range header ("bytes=a-b", "bytes=a-", "bytes=-n"; one range) over a
// file of `size` bytes -> [offset, offset + length). OutOfRange when
// unsatisfiable (416), InvalidArgument when malformed.
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};
absl::StatusOr<ByteRange> ParseRangeHeader(std::string_view header, uint64_t size);

// `hart load`: exactly a plan's tensors as a model file.
struct LoadRequest {
  PlanRequest plan;
  std::string format = "auto";  // auto (the source's), safetensors, gguf
  // The plan's fields plus "format"?
  static absl::StatusOr<LoadRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct LoadResponse {
  query::Plan plan;
  std::string path;    // where it was written ("" when streamed)
  std::string format;  // "safetensors" or "gguf"
  uint64_t bytes = 0;  // size of what was written
  // The plan's JSON plus "path" (as `hart load --json`).
  nlohmann::json ToJson() const;
};
absl::StatusOr<LoadResponse> Load(const Context& ctx, const LoadRequest& req,
                                  const std::string& out_path);
// The same file to a sink (the server's response body). The file is built
// in a temp file inside the store first (the writers seek), then streamed
// and removed.
absl::StatusOr<LoadResponse> LoadToSink(const Context& ctx, const LoadRequest& req,
                                        const ByteSink& sink);

}  // namespace hart::app

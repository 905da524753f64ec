// WeightSource: the one narrow interface through which the runtime reads
// weights, so a model runs from NinaDB (StoreWeightSource) or straight from a
// file (FileWeightSource: a .gguf, or a safetensors checkpoint with its
// config.json) alike. A tensor is a name -> {dtype, shape, bytes}.
//
// Two ways to get bytes: Map() gives a zero-copy span valid as long as the
// source lives (everything-mapped mode); Read() copies a byte range into the
// caller's buffer (the streamer's owned buffers under a budget). Prefetch()
// and Release() are hints about ranges soon needed / no longer needed;
// Release(drop_cache = true) also evicts the range from the page cache so the
// next read goes to storage (benchmarks of the storage bound).
//
// The streamer fills its buffers through PlanBuffer()/RunOp(): the source
// lays a group of ranges out in one buffer as suits its reads (the store
// places each run of pack bytes at the pack offset's alignment, so a direct
// read lands in place, and merges ranges adjacent in a pack into one run)
// and cuts the work into independent reads the streamer runs in parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "formats/gguf.h"
#include "nlohmann/json.hpp"
#include "runtime/model_config.h"

namespace hart::store { class Store; }

namespace hart::runtime {

class ResidentCache;  // resident_cache.h

// What one weight source holds in a ResidentCache.
struct ResidentUsage {
  uint64_t bytes = 0;         // its distinct tensors' bytes
  uint64_t shared_bytes = 0;  // of which another holder (another model) holds too
  uint64_t tensors = 0;
};

struct WeightInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;  // outermost first
  uint64_t nbytes = 0;
};

// Bytes [offset, offset + nbytes) of one tensor.
struct WeightPiece {
  const WeightInfo* info = nullptr;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
};

// How one buffer (its base aligned to kBufferAlign) is filled with a set of
// pieces: piece i's first byte lands at piece_at[i]; each op fills its own
// bytes of the buffer, so ops may run in any order and at once.
struct BufferPlan {
  static constexpr uint64_t kBufferAlign = 4096;
  struct Op {
    int kind = 0;       // the source's own
    const WeightInfo* info = nullptr;
    int64_t file = 0;   // the source's own (the store: a pack number)
    uint64_t offset = 0;
    uint64_t size = 0;  // bytes the op delivers
    uint64_t at = 0;    // where in the buffer
  };
  uint64_t bytes = 0;  // buffer size, a multiple of kBufferAlign
  std::vector<uint64_t> piece_at;
  std::vector<Op> ops;
  // An upper bound of `bytes` for any source, so budgets can be checked
  // before planning: each piece rounded to blocks plus three blocks.
  static uint64_t Bound(uint64_t piece_bytes) {
    return (piece_bytes + kBufferAlign - 1) / kBufferAlign * kBufferAlign + 3 * kBufferAlign;
  }
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  // "model.gguf" or "llama@3": the prefix of error messages.
  virtual const std::string& origin() const = 0;
  virtual const std::vector<WeightInfo>& tensors() const = 0;
  const WeightInfo* Find(std::string_view name) const;

  // Hyper-parameters from the GGUF metadata or the HF config.json.
  virtual absl::StatusOr<ModelConfig> Config() const = 0;
  // The GGUF metadata (tokenizer, chat template) when the weights are GGUF.
  virtual const formats::GgufMetadata* gguf_metadata() const { return nullptr; }
  // Frees the GGUF metadata's vocabulary arrays (kTokenizerArrayKeys: 10+
  // MiB for a 100k-token vocabulary) once the tokenizer and the chat format
  // are built from them; everything else stays (Config() reads it). After
  // this, gguf_metadata() lacks those keys, so tokenizers can no longer be
  // built from this source. Not safe against concurrent readers: call it
  // while loading, before the source is shared. Returns the metadata's heap
  // bytes freed (GgufMetadataBytes before minus after); 0 without GGUF.
  virtual uint64_t ReleaseTokenizerArrays() { return 0; }
  // The format the weights were read from (a stored version's original
  // one) and the metadata its reader recorded (ModelSource::metadata, the
  // version's metadata): llama2.c checkpoints keep their header and
  // tokenizer file name there. nullopt / null JSON when unknown.
  virtual std::optional<formats::Format> format() const { return std::nullopt; }
  virtual const nlohmann::json& metadata() const;
  // A companion file of an HF checkpoint ("tokenizer.json",
  // "tokenizer_config.json"); NotFound when absent.
  virtual absl::StatusOr<std::string> ReadCompanionFile(const std::string& name) const = 0;

  // `t` is always an element of tensors() (from Find or the list itself).
  virtual absl::StatusOr<std::span<const uint8_t>> Map(const WeightInfo& t) = 0;
  // Whether Map(t) gives t's rows in the kernels' packed layout
  // (runtime::PackRows) rather than as stored: a ResidentCache holds Q8_0
  // matrices packed once for every model that shares them.
  virtual bool MapPacked(const WeightInfo& t) const { return false; }
  virtual absl::Status Read(const WeightInfo& t, uint64_t offset, std::span<uint8_t> out) = 0;
  virtual void Prefetch(const WeightInfo& t, uint64_t offset, uint64_t n) {}
  virtual void Release(const WeightInfo& t, uint64_t offset, uint64_t n, bool drop_cache) {}
  // Evicts every tensor's bytes from the page cache (before a cold run).
  virtual void DropPageCache() {}

  // Lays `pieces` out in one buffer and cuts the reads into ops of at most
  // about max_op bytes. The default: pieces back to back at 64-byte
  // alignment, ops that Read() (and Release() when dropping the cache).
  virtual absl::StatusOr<BufferPlan> PlanBuffer(std::span<const WeightPiece> pieces, uint64_t max_op);
  // Runs one op of a plan into the buffer at `base`; with drop_cache, evicts
  // what it read from the page cache.
  virtual absl::Status RunOp(const BufferPlan::Op& op, uint8_t* base, bool drop_cache);
  // Whether streamed reads bypass the page cache (O_DIRECT).
  virtual bool direct_io() const { return false; }
  // The op size PlanBuffer reads best with (0: the streamer's default).
  virtual uint64_t preferred_read_op() const { return 0; }
  // Whether Map() takes tensors from a ResidentCache, and what this source
  // holds there now (tensors it has mapped).
  virtual bool resident_cached() const { return false; }
  virtual ResidentUsage resident_usage() const { return {}; }

 protected:
  void Index();  // fills by_name_ from tensors(); implementations call it once
 private:
  std::map<std::string, size_t, std::less<>> by_name_;
};

// The GGUF metadata keys WeightSource::ReleaseTokenizerArrays() frees: the
// vocabulary arrays the tokenizer (and chat format detection) read once.
inline constexpr std::string_view kTokenizerArrayKeys[] = {
    "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"};
// An estimate of the heap a parsed GGUF metadata holds: every entry, value,
// array item and string buffer, at their capacities.
uint64_t GgufMetadataBytes(const formats::GgufMetadata& md);
// Erases kTokenizerArrayKeys from `md`; returns the GgufMetadataBytes freed.
uint64_t EraseTokenizerArrays(formats::GgufMetadata* md);

// A .gguf file (or the first part of a split one), a .safetensors file, a
// sharded checkpoint's index, a directory holding one with config.json, or a
// llama2.c checkpoint with its tokenizer file (`tokenizer`, or "" to find
// it beside the checkpoint).
absl::StatusOr<std::unique_ptr<WeightSource>> OpenFileWeights(const std::string& path,
                                                              const std::string& tokenizer = "");

struct StoreWeightOptions {
  // Streamed reads with O_DIRECT where the packs' file system takes it.
  bool direct_io = true;
  // Test seam: every page-cache eviction the source makes (pack, offset, size).
  std::function<void(int64_t pack, uint64_t offset, uint64_t size)> on_evict;
  // Map() takes each tensor from this cache by its digest, so sources of
  // versions sharing tensors share their resident bytes; null: each source
  // maps its own.
  std::shared_ptr<ResidentCache> cache;
};

// A version of a model in NinaDB ("llama" or "llama@3").
absl::StatusOr<std::unique_ptr<WeightSource>> OpenStoreWeights(std::shared_ptr<store::Store> store,
                                                               const std::string& ref,
                                                               const StoreWeightOptions& opts = {});

}  // namespace hart::runtime

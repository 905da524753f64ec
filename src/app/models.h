// Models: a loaded model version (weights, tokenizer, chat format) shared by
// every request that uses it, and a thread-safe registry that loads each
// version once by ref ("name" = the newest version, "name@3", or, where
// allowed, a file path) and hands out shared pointers to it.
//
// A LoadedModel is immutable once loaded and safe to use from many threads:
// each request or conversation makes its own runtime::Session from `model`.
// The registry keys models by their resolved ref ("name@3"), so "name" and
// "name@3" share one copy while 3 is the newest.
//
// Under a registry budget (RegistryOptions::budget, `hart serve
// --mem-budget`) the resident weights of ALL loaded models together stay
// under it: resident models take their tensors from one ResidentCache by
// digest (a fine-tune next to its base costs only the tensors that differ);
// a load that would pass the budget first evicts idle models (held by no
// session) least recently used; a model still larger than what is free is
// loaded streaming under the free part. Models in use are never evicted.
//
// Tokenizers are shared the same way: a registry's models take them from one
// TokenizerCache by the digest of what they are built from (a fine-tune and
// its base hold one Tokenizer object). Their bytes are reported beside the
// weights' (tokenizer_bytes, each shared tokenizer once) but the budget
// counts resident weights only, as before.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/thread_pool.h"
#include "runtime/chat_template.h"
#include "runtime/model.h"
#include "runtime/resident_cache.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_cache.h"
#include "runtime/weight_source.h"

namespace hart::store { class Store; }

namespace hart::app {

struct ModelLoadOptions {
  runtime::StreamerOptions stream;  // budget (0: everything mapped), drop_page_cache
  int64_t max_context = 0;          // longest session; 0: the model's context length
  int threads = 0;                  // > 0: a pool of its own; 0: the shared default pool
  // A llama2.c checkpoint's tokenizer file (file paths only); "": found beside it.
  std::string tokenizer;
  // Store versions loaded fully resident take their tensors from this cache
  // (shared by digest with every other model using it); null: their own maps.
  std::shared_ptr<runtime::ResidentCache> cache;
  // Tokenizers come from this cache (shared by the digest of their inputs
  // with every other model using it); null: each model builds its own.
  std::shared_ptr<runtime::TokenizerCache> tokenizers;
  // Once the tokenizer, config and chat format are built, frees the source's
  // GGUF vocabulary arrays (WeightSource::ReleaseTokenizerArrays): nothing
  // reads them after load. The registry sets it (many models held at once);
  // off, the source keeps its whole metadata (as `hart run` does).
  bool release_tokenizer_arrays = false;
  // LoRA adapters (stored versions, `hart lora`) applied in the forward pass
  // at `scale` (`hart run BASE --lora ADAPTER[:SCALE]`); store versions only.
  struct Lora {
    std::string ref;
    double scale = 1.0;
  };
  std::vector<Lora> lora;
};

// What a loaded model costs in memory now.
struct Residency {
  bool streamed = false;      // weights streamed under a budget (else all resident)
  uint64_t resident_bytes = 0;  // its resident weight bytes (shared ones included)
  uint64_t shared_bytes = 0;    // of which other loaded models hold too (counted once in totals)
  uint64_t tokenizer_bytes = 0;  // its tokenizer (Tokenizer::memory_bytes), shared or not
  bool tokenizer_shared = false;  // another loaded model holds the same tokenizer (counted once in totals)
};

struct LoadedModel {
  std::string ref;   // "name@3" (store) or the path (file)
  std::string name;  // "name", or the file name
  int64_t version = 0;     // 0 for a file
  int64_t created_at = 0;  // unix seconds (the version's; the file's mtime)
  bool from_store = false;
  std::shared_ptr<store::Store> store;  // keeps the store open while the model lives
  std::unique_ptr<ThreadPool> pool;     // when options asked for threads
  std::unique_ptr<runtime::WeightSource> source;
  // Shared with every other model built from the same tokenizer inputs when
  // loaded through a registry (ModelLoadOptions::tokenizers).
  std::shared_ptr<const runtime::Tokenizer> tokenizer;
  std::unique_ptr<runtime::Model> model;
  // From the model's metadata (tokenizer.chat_template, marker tokens, the
  // architecture); an error status when nothing identifies one.
  absl::StatusOr<runtime::ChatFormat> chat_format = absl::NotFoundError("not detected");

  Residency residency() const;
};

// Whether `ref` names a file (ends in .gguf / .safetensors, or exists)
// rather than a store version.
bool LooksLikePath(const std::string& ref);

// Loads one model without a registry: a file path when LooksLikePath, else a
// version of `store` (NotFound when store is null). Errors: NotFound for an
// unknown model or version, InvalidArgument for a malformed ref,
// FailedPrecondition for a budget too small, DataLoss for bad weights.
absl::StatusOr<std::shared_ptr<const LoadedModel>> LoadModel(const std::string& ref,
                                                             std::shared_ptr<store::Store> store,
                                                             const ModelLoadOptions& opts);

struct RegistryOptions {
  ModelLoadOptions load;
  bool allow_paths = false;  // accept file paths as refs (the CLI); never for the server
  // Resident weight bytes of all loaded models together (0: no limit, and
  // load.stream.budget, if any, applies to each model alone).
  uint64_t budget = 0;
};

// One loaded model as /v1/models and /api/runtime/models show it.
struct LoadedModelInfo {
  std::string ref;
  Residency residency;
  int64_t last_used = 0;  // unix seconds of the last Get
  int64_t holders = 0;    // requests and sessions holding it now (0: idle, evictable)
  nlohmann::json ToJson() const;
};

struct RegistryStats {
  uint64_t budget = 0;          // 0: none
  uint64_t resident_bytes = 0;  // all loaded models, each shared tensor once
  uint64_t saved_bytes = 0;     // what sharing saves: per-model bytes summed, less resident_bytes
  uint64_t tokenizer_bytes = 0;        // tokenizers of all loaded models, each shared one once
  uint64_t tokenizer_saved_bytes = 0;  // per-model tokenizer bytes summed, less tokenizer_bytes
  uint64_t tokenizers = 0;             // distinct tokenizers alive
  uint64_t loads = 0;           // successful loads since start
  uint64_t evictions = 0;       // idle models evicted to make room
  uint64_t streamed_loads = 0;  // loads that had to stream
  std::vector<LoadedModelInfo> models;  // by ref
  nlohmann::json ToJson() const;
};

class ModelRegistry {
 public:
  ModelRegistry(std::shared_ptr<store::Store> store, RegistryOptions opts);
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // The model for `ref`, loading it on first use; concurrent calls for one
  // ref wait for a single load. A failed load is not remembered (the next
  // call tries again).
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Get(const std::string& ref);
  // The models loaded now, by ref.
  std::vector<std::shared_ptr<const LoadedModel>> Loaded() const;
  // Forgets a loaded model (sessions holding it keep it alive); false when
  // it was not loaded.
  bool Unload(const std::string& ref);

  const std::shared_ptr<store::Store>& store() const { return store_; }
  const std::shared_ptr<runtime::ResidentCache>& cache() const { return cache_; }
  const std::shared_ptr<runtime::TokenizerCache>& tokenizers() const { return tokenizers_; }

  // Resident bytes of every loaded model (each shared tensor once), the
  // budget, load and eviction counts, and each loaded model.
  RegistryStats Stats() const;

 private:
  struct Entry;
  absl::StatusOr<std::string> ResolveKey(const std::string& ref);
  // Loads `key` within the budget (load_mu_ held: one load at a time, so
  // two loads never count the same free bytes).
  absl::StatusOr<std::shared_ptr<const LoadedModel>> LoadWithinBudget(const std::string& key);
  // Cache bytes plus the streamed models' buffers (mu_ held).
  uint64_t ResidentBytesLocked() const;
  std::shared_ptr<runtime::ResidentCache> cache_ = std::make_shared<runtime::ResidentCache>();
  std::shared_ptr<runtime::TokenizerCache> tokenizers_ = std::make_shared<runtime::TokenizerCache>();
  std::mutex load_mu_;
  uint64_t loads_ = 0, evictions_ = 0, streamed_loads_ = 0, use_seq_ = 0;
  std::shared_ptr<store::Store> store_;
  RegistryOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // a load finished
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by resolved ref
};

}  // namespace hart::app

// ResidentCache: the resident tensors of every model loaded fully into
// memory, keyed by tensor digest (SHA-256 over the tensor's chunk digests,
// store::TensorRow::sha256), so versions that share tensors (dedup'd chunks
// in NinaDB) share one copy of them: a fine-tune loaded next to its base
// costs only the tensors that differ.
//
// One cache per model registry (one per server process). An entry lives as
// long as some weight source holds it (a shared_ptr); the cache itself keeps
// only weak references, so unloading the last model that uses a tensor frees
// it and takes its bytes off resident_bytes() at once.
//
// What an entry holds is store::TensorBytes: a span of the store's one map
// of the pack (zero-copy, file-backed pages) when the tensor's chunks lie
// back to back, else an owned copy. Every holder gets the SAME span, so a
// shared tensor is one set of pages in this process: RSS counts it once
// (a second map of the same pack range would count it twice, as RSS sums
// over mappings). Entries are faulted in when created (Populate), so
// "resident" means resident after load rather than after the first pass,
// and RSS matches the accounting; the last holder's release drops them
// again (Unpopulate), so an evicted model's pages leave RSS too.
//
// Invariant: resident_bytes() = sum of nbytes over live entries, each
// digest counted once however many models hold it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/weight_source.h"
#include "store/store.h"

namespace hart::runtime {

struct ResidentTensor {
  std::string digest;  // hex tensor digest
  uint64_t nbytes = 0;
  store::TensorBytes bytes;
};

// The cache key of a tensor: its digest, marked when the entry holds the
// rows in the kernels' packed layout (runtime::PackRows), so a packed and a
// stored copy of one digest never stand in for each other.
std::string ResidentKey(const std::string& digest, bool packed);

class ResidentCache {
 public:
  using Handle = std::shared_ptr<const ResidentTensor>;
  ResidentCache();
  ~ResidentCache();
  ResidentCache(const ResidentCache&) = delete;
  ResidentCache& operator=(const ResidentCache&) = delete;

  // The tensor with `digest`: the live entry when some holder has it, else
  // `load`'s bytes (checked to be nbytes long), faulted in and entered.
  // Concurrent calls for one digest may both load; the first to finish is
  // entered and the other gets it (its own bytes dropped).
  absl::StatusOr<Handle> Get(const std::string& digest, uint64_t nbytes,
                             const std::function<absl::StatusOr<store::TensorBytes>()>& load);

  // Bytes of the (digest, nbytes) pairs not resident now, in either layout:
  // what loading a model holding them adds (each digest counted once).
  uint64_t MissingBytes(std::span<const std::pair<std::string, uint64_t>> tensors) const;
  bool Has(const std::string& digest) const;  // in either layout

  uint64_t resident_bytes() const;
  uint64_t tensors() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // outlives the cache while entries live
};

// Faults in the pages of `bytes` (MADV_POPULATE_READ, else a read per page).
void Populate(std::span<const uint8_t> bytes);
// Drops the whole pages inside `bytes` (a read-only file map) from this
// process (MADV_DONTNEED): RSS falls, the page cache keeps them.
void Unpopulate(std::span<const uint8_t> bytes);

}  // namespace hart::runtime

// Nearest weights across the store: an HNSW index (hnswlib, inner product on
// the L2-normalized fingerprints of store/fingerprint.h, so distance =
// 1 - cosine) over every tensor's fingerprint, persisted under
// <store>/index/ and kept current: after an ingest or a delete the saved
// index gets the new fingerprints added and the removed ones marked deleted
// (ids are never reused, see the store's v5 migration); it is built afresh
// only when missing, unreadable or mostly deleted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "store/fingerprint.h"
#include "store/store.h"

namespace hart::query {

struct TensorMatch {
  int64_t id = 0;       // component id
  std::string ref;      // "model@N"
  std::string name;
  double distance = 0;  // 1 - cosine of the fingerprints, in [0, 2]
};

struct VersionMatch {
  int64_t version_id = 0;
  std::string ref;
  double similarity = 0;  // mean over the query's tensors of the best cosine in this version
  uint64_t matched = 0;   // query tensors with a neighbour in this version
};

// Not thread-safe: one per thread (or per request); each holds its own
// catalog connection. The index files under <store>/index/ are shared.
class Similarity {
 public:
  explicit Similarity(store::Store& store);
  ~Similarity();

  // The k nearest tensors to `tensor_id` across the store, itself excluded.
  absl::StatusOr<std::vector<TensorMatch>> NearestTensors(int64_t tensor_id, int k);
  // The versions whose tensors lie nearest, on aggregate, to those of
  // `version_id` (itself excluded): the likely base of a fine-tune first.
  absl::StatusOr<std::vector<VersionMatch>> NearestVersions(int64_t version_id, int k);

  // Raw search for a fingerprint: (component id, distance), nearest first.
  // Exact scans every fingerprint (the benchmark's ground truth).
  absl::StatusOr<std::vector<std::pair<int64_t, float>>> Search(const store::Fingerprint& q, int k,
                                                                bool exact = false);
  absl::StatusOr<store::Fingerprint> FingerprintOf(int64_t tensor_id);
  // Search breadth; higher is slower and more exact. Default 128: recall@10
  // 0.998 on the 300,000-tensor benchmark (docs/PERFORMANCE.md).
  void set_ef(int ef);
  // Makes sure the index matches the catalog (loads or rebuilds it); true
  // when this call rebuilt it.
  absl::StatusOr<bool> Refresh();

 private:
  struct Index;
  // Its own catalog connection (opened on first use): data_version is per
  // connection, and the store's write connection is not ours to use.
  absl::StatusOr<sqlite3*> Db();
  store::Store& store_;
  store::Store::Connection conn_;
  std::unique_ptr<Index> index_;
  int ef_ = 128;
  int64_t seen_data_version_ = -1;
  int64_t seen_changes_ = -1;
};

}  // namespace hart::query

// Ingest's part of the MQE search: in the ingest transaction, a new
// version's full-text rows (fts_doc, from the fts_*_source views of catalog
// migration 3) and one weight fingerprint per decodable tensor (embedding,
// kind 'fingerprint'). Both are derived data; the HNSW index over the
// fingerprints lives outside the catalog and is rebuilt by the MQE.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "store/fingerprint.h"

struct sqlite3;

namespace hart::store {

// comp_ids[i] is the component id of src.tensors[i] and fingerprints[i]
// its fingerprint (none for types without a decoder: similarity simply does
// not see them).
absl::Status IndexVersionForSearch(sqlite3* db, int64_t version_id,
                                   std::span<const int64_t> comp_ids,
                                   std::span<const std::optional<Fingerprint>> fingerprints);

}  // namespace hart::store

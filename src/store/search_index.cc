#include "store/search_index.h"

#include "core/status.h"
#include "store/db.h"
#include "store/fingerprint.h"

namespace hart::store {

absl::Status IndexVersionForSearch(sqlite3* db, int64_t version_id,
                                   std::span<const int64_t> comp_ids,
                                   std::span<const std::optional<Fingerprint>> fingerprints) {
  for (const char* view : {"fts_version_source", "fts_tensor_source"}) {
    ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, fmt::format(
        "INSERT INTO fts_doc(kind, ref, component_id, version_id, name, body) "
        "SELECT * FROM {} WHERE version_id = ?", view)));
    RETURN_IF_ERROR(st.Bind(1, version_id).Run());
  }
  ASSIGN_OR_RETURN(Stmt ins, Stmt::Prepare(db,
      "INSERT OR REPLACE INTO embedding(component_id, kind, vector) VALUES(?, ?, ?)"));
  for (size_t i = 0; i < fingerprints.size() && i < comp_ids.size(); ++i) {
    if (!fingerprints[i]) continue;
    std::vector<uint8_t> blob = FingerprintToBlob(*fingerprints[i]);
    RETURN_IF_ERROR(ins.Bind(1, comp_ids[i]).Bind(2, kFingerprintKind).BindBlob(3, blob).Run());
  }
  return absl::OkStatus();
}

}  // namespace hart::store

// Re-running a recorded derivation: the method's builder called with the
// recorded parameters and inputs. `hart rebuild` writes the result to
// scratch and checks its file digest against the stored version's: a
// derivation is reproducible when the two are equal.
//
// A new method adds one case to BuildFromRecord (recipe.cc).
#pragma once

#include "workshop/derive.h"

namespace hart::workshop {

// The derivation a record describes, built against the stored inputs.
// Unimplemented for a method this build does not know.
absl::StatusOr<Derivation> BuildFromRecord(store::Store& store, const store::DerivationRecord& rec);

struct RebuildResult {
  std::string ref;
  std::string method;
  std::string stored_digest;
  std::string rebuilt_digest;
  bool identical = false;
  DeriveResult derive;  // sizes, time, peak RSS of the re-run
};
// FailedPrecondition for a version that was ingested, not derived.
absl::StatusOr<RebuildResult> Rebuild(store::Store& store, std::string_view ref);

}  // namespace hart::workshop

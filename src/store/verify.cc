#include "store/store.h"
#include "store/store_impl.h"
namespace hart::store {
absl::StatusOr<VerifyReport> Store::Verify(bool progress) { return absl::UnimplementedError("verify"); }
}  // namespace hart::store

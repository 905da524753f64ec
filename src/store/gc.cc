#include "store/store.h"
#include "store/store_impl.h"
namespace hart::store {
absl::StatusOr<GcReport> Store::Gc() { return absl::UnimplementedError("gc"); }
}  // namespace hart::store

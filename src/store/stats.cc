#include "store/store.h"
#include "store/store_impl.h"
namespace hart::store {
absl::StatusOr<std::vector<DiffRow>> Store::Diff(int64_t a, int64_t b) { return absl::UnimplementedError("diff"); }
absl::StatusOr<StatsReport> Store::Stats() { return absl::UnimplementedError("stats"); }
absl::StatusOr<std::vector<Event>> Store::Events(int64_t after_id, int64_t limit) { return absl::UnimplementedError("events"); }
}  // namespace hart::store

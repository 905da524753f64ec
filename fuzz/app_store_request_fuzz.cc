// libFuzzer target: the request readers of the store use cases (app/
// catalog, query, transfer, events) on arbitrary bytes (a request body from
// the network) must return a status, never crash or throw. A request that
// reads must read again from its own ToJson(). Also ParseRangeHeader (an
// HTTP Range header): a range it accepts lies inside the file.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "app/catalog.h"
#include "app/events.h"
#include "app/query.h"
#include "app/transfer.h"

namespace {

template <typename Req>
void RoundTrip(const nlohmann::json& j) {
  auto r = Req::FromJson(j);
  if (!r.ok()) {
    if (r.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return;
  }
  auto again = Req::FromJson(r->ToJson());
  if (!again.ok()) std::abort();
  (void)again->ToJson().dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  uint64_t file_size = data[0] * 977u;
  auto range = hart::app::ParseRangeHeader(text, file_size);
  if (range.ok() && (range->length == 0 || range->offset + range->length > file_size)) std::abort();

  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  using namespace hart::app;
  switch (data[0] % 14) {
    case 0: RoundTrip<ListRequest>(j); break;
    case 1:  // the requests that name one version
      RoundTrip<ShowRequest>(j);
      RoundTrip<ComponentsRequest>(j);
      RoundTrip<TensorsRequest>(j);
      break;
    case 2: RoundTrip<DiffRequest>(j); break;
    case 3: RoundTrip<StatsRequest>(j); break;
    case 4: RoundTrip<VerifyRequest>(j); break;
    case 5: RoundTrip<RemoveRequest>(j); break;
    case 6: RoundTrip<GcRequest>(j); break;
    case 7: RoundTrip<SqlRequest>(j); break;
    case 8: RoundTrip<SearchRequest>(j); break;
    case 9: RoundTrip<SimilarRequest>(j); break;
    case 10: RoundTrip<PlanRequest>(j); break;
    case 11: RoundTrip<LoadRequest>(j); break;
    case 12: RoundTrip<ExportRequest>(j); RoundTrip<IngestRequest>(j); break;
    default: RoundTrip<EventsRequest>(j); break;
  }
  return 0;
}

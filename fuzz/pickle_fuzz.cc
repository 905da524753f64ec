// libFuzzer target: arbitrary bytes through the restricted pickle machine in
// load and scan mode, then the torch walk over whatever loaded. Nothing may
// crash, hang or allocate without bound; errors are DataErrors; and a pickle
// that loads must scan clean (load is never more permissive than scan).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "formats/pickle.h"
#include "formats/torch_internal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hart::formats;
  std::span<const uint8_t> bytes(data, size);
  auto load = RunPickle(bytes, {"fuzz.pkl", 0, false});
  auto scan = RunPickle(bytes, {"fuzz.pkl", 0, true});
  if (!scan.ok()) std::abort();  // scan mode always answers
  if (!scan->error.ok() && scan->error.code() != absl::StatusCode::kDataLoss) std::abort();
  if (!load.ok()) {
    if (load.status().code() != absl::StatusCode::kDataLoss) std::abort();
    return 0;
  }
  if (!load->root || load->end > size) std::abort();
  if (!scan->error.ok() || scan->end != load->end) std::abort();
  for (const auto& f : scan->findings)
    if (!f.allowed) std::abort();
  (void)torch_internal::ValueToJson(load->root).dump();
  auto c = torch_internal::CollectTensors(*load, "fuzz.pkl");
  if (!c.ok() && c.status().code() != absl::StatusCode::kDataLoss) std::abort();
  return 0;
}

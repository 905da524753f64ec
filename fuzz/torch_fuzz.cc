// libFuzzer target: arbitrary bytes as a whole torch checkpoint (zip or
// legacy), read and scanned. Errors must be DataErrors; a checkpoint that
// parses must describe tensors whose bytes exist: spans inside the input or
// owned buffers of exactly nbytes, and nbytes = elements x dtype size.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "formats/torch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hart;
  using namespace hart::formats;
  std::span<const uint8_t> bytes(data, size);
  TorchReadOptions opt;
  opt.max_owned_bytes = 64 << 20;
  auto ck = ParseTorch(bytes, "fuzz.pt", opt);
  if (ck.ok()) {
    for (const auto& t : ck->tensors) {
      auto n = NumElements(t.shape);
      if (!n.ok()) std::abort();
      auto b = ByteSize(t.dtype, *n);
      if (!b.ok() || *b != t.nbytes) std::abort();
      if (t.owned) {
        if (t.owned->size() != t.nbytes) std::abort();
      } else if (t.offset > size || t.nbytes > size - t.offset) {
        std::abort();
      }
    }
    (void)ck->metadata.dump();
  } else if (ck.status().code() != absl::StatusCode::kDataLoss) {
    std::abort();
  }
  auto rep = ScanTorch(bytes, "fuzz.pt");
  if (!rep.ok() && rep.status().code() != absl::StatusCode::kDataLoss) std::abort();
  if (rep.ok() && rep->verdict.empty()) std::abort();
  return 0;
}

// libFuzzer target: arbitrary bytes as a whole .safetensors file. The parser
// must answer with a header or a DataError; a header must yield a layout that
// covers the file exactly.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto h = hart::formats::ParseSafetensorsHeader(bytes, size, "fuzz.safetensors");
  if (!h.ok()) {
    if (h.status().code() != absl::StatusCode::kDataLoss) std::abort();
    return 0;
  }
  uint64_t pos = 0;
  for (const auto& s : hart::formats::SafetensorsLayout(*h, size, 0)) {
    if (s.offset != pos) std::abort();
    if (s.tensor >= 0) {
      const auto& t = h->tensors[static_cast<size_t>(s.tensor)];
      if (t.offset != s.offset || t.nbytes != s.size) std::abort();
    }
    pos += s.size;
  }
  if (pos != size) std::abort();
  return 0;
}

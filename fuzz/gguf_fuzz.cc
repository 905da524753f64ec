// libFuzzer target: ParseGgufHeader on arbitrary bytes must return a status,
// never crash, hang or allocate without bound. On success the header must
// be self-consistent, which checks the parser's own bounds logic.
#include <cstdint>
#include <cstdlib>

#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto h = hart::formats::ParseGgufHeader(bytes, size, "fuzz");
  if (h.ok()) {
    if (h->data_offset % h->alignment != 0) std::abort();
    for (const auto& t : h->tensors)
      if (h->data_offset + t.offset + t.nbytes > size) std::abort();
    (void)h->metadata.ToJson().dump();
  }
  // A prefix must parse no further than the whole: never crash either.
  if (size > 8) (void)hart::formats::ParseGgufHeader(bytes.first(size / 2), size, "fuzz");
  return 0;
}

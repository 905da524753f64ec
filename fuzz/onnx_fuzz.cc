// libFuzzer target: arbitrary bytes as a whole .onnx file. ParseOnnx must
// answer with a model or a DataError; a model's layout must cover the bytes
// exactly, its tensors must lie inside them and their sizes match dtype x
// shape.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/status.h"
#include "formats/onnx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto m = hart::formats::ParseOnnx(bytes, "fuzz.onnx");
  if (!m.ok()) {
    if (m.status().code() != absl::StatusCode::kDataLoss) std::abort();
    return 0;
  }
  if (m->external.size() != m->tensors.size()) std::abort();
  uint64_t pos = 0;
  for (const auto& s : m->layout) {
    if (s.offset != pos || s.size == 0) std::abort();
    if (s.tensor >= 0) {
      const auto& t = m->tensors[static_cast<size_t>(s.tensor)];
      if (t.owned || t.offset != s.offset || t.nbytes != s.size) std::abort();
    }
    pos += s.size;
  }
  if (pos != size) std::abort();
  for (size_t i = 0; i < m->tensors.size(); ++i) {
    const auto& t = m->tensors[i];
    auto elems = hart::NumElements(t.shape);
    if (!elems.ok()) std::abort();
    auto want = hart::ByteSize(t.dtype, *elems);
    if (!want.ok() || *want != t.nbytes) std::abort();
    if (t.owned && t.owned->size() != t.nbytes) std::abort();
    if (!t.owned && !m->external[i] && (t.offset > size || t.nbytes > size - t.offset)) std::abort();
  }
  // Metadata must always serialize (strings are made valid UTF-8).
  (void)m->metadata.dump();
  return 0;
}

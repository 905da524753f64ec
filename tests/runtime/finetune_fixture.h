// A "fine-tune" of a GGUF model for tests and benchmarks of shared resident
// weights: a copy of the file in which the tensors a predicate selects have
// other (still valid) values and every other byte is the same, so a store
// dedups all but the selected tensors against the base.
//
// Values change without becoming NaN or out of range: float types flip each
// element's sign and bits of its lowest byte (low mantissa bits, by
// `pattern`); Q8_0 and Q4_0 keep each block's f16 scale and flip bits of
// its quants by `pattern`.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "fmt/format.h"
#include "formats/gguf.h"

namespace hart::runtime::testing {

// Writes the fine-tune of `base` to `out`; returns the bytes of the tensors
// it changed.
inline absl::StatusOr<uint64_t> WriteFineTune(const std::string& base, const std::string& out,
                                              const std::function<bool(const std::string&)>& change,
                                              uint8_t pattern = 0x5a) {
  auto src = formats::ReadGguf(base);
  if (!src.ok()) return src.status();
  std::ifstream in(base, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t changed = 0;
  for (const auto& t : src->tensors) {
    if (!change(t.name) || t.nbytes == 0) continue;
    uint64_t step = 0, skip = 0, span = 0;  // per unit: its size, bytes kept at its start, bytes flipped
    switch (t.dtype) {
      case DType::kF32: step = 4, skip = 0, span = 1; break;
      case DType::kF16:
      case DType::kBF16: step = 2, skip = 0, span = 1; break;
      case DType::kQ8_0: step = 34, skip = 2, span = 32; break;
      case DType::kQ4_0: step = 18, skip = 2, span = 16; break;
      default:
        return absl::UnimplementedError(fmt::format("{}: no fine-tune rule for {}", t.name, std::string(Name(t.dtype))));
    }
    if (t.offset + t.nbytes > bytes.size()) return absl::OutOfRangeError(t.name + ": past the file's end");
    const bool is_float = span == 1;
    for (uint64_t u = 0; u + step <= t.nbytes; u += step) {
      for (uint64_t b = skip; b < skip + span; ++b) bytes[t.offset + u + b] ^= static_cast<char>(pattern);
      if (is_float) bytes[t.offset + u + step - 1] ^= static_cast<char>(0x80);  // the sign (little-endian)
    }
    changed += t.nbytes;
  }
  std::ofstream o(out, std::ios::binary | std::ios::trunc);
  o.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!o.good()) return absl::InternalError("cannot write " + out);
  return changed;
}

}  // namespace hart::runtime::testing

#include "core/shape.h"

#include "absl/strings/str_join.h"

namespace hart {

absl::StatusOr<uint64_t> NumElements(const Shape& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n))
      return absl::InvalidArgumentError("shape " + ShapeToString(shape) +
                                        " has more than 2^64 elements");
  return n;
}

std::string ShapeToString(const Shape& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace hart

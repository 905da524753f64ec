// Shape: tensor dimensions, outermost first (row-major, as numpy and PyTorch
// write them). GGUF stores ne[] innermost first; its reader reverses them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hart {

using Shape = std::vector<uint64_t>;

// Product of the dimensions; InvalidArgument on overflow. A 0-d shape has 1.
absl::StatusOr<uint64_t> NumElements(const Shape& shape);
// "[4096, 11008]"
std::string ShapeToString(const Shape& shape);

}  // namespace hart

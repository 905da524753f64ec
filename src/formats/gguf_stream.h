// WriteGgufStreamed: formats::WriteGguf with each tensor's bytes handed over
// in consecutive pieces, so a writer never needs a tensor whole (the
// workshop's derivations; see workshop/derive.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "formats/gguf.h"

namespace hart::formats {

// Hands the next consecutive piece of a tensor's bytes to the file.
using TensorPieceSink = std::function<absl::Status(std::span<const uint8_t> piece)>;
// Writes tensor `index`'s bytes through `write`, in order, in pieces of any
// size; their total must be exactly the tensor's byte size.
using TensorStreamFn = std::function<absl::Status(size_t index, const TensorPieceSink& write)>;
// The same file as WriteGguf, byte for byte.
absl::Status WriteGgufStreamed(const std::string& path, const GgufMetadata& metadata,
                               const std::vector<TensorDesc>& tensors,
                               const TensorStreamFn& stream, uint64_t alignment = 32);

}  // namespace hart::formats

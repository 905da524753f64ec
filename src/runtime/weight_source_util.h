// Internal helpers shared by the WeightSource implementations.
#pragma once

#include <cstdint>

namespace hart::runtime {

// madvise over the whole pages covering [p, p + n); failures are ignored
// because every use is a hint.
void AdviseRange(const uint8_t* p, uint64_t n, int advice);

}  // namespace hart::runtime

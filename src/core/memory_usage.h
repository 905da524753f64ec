// This process's memory use, for the figures commands, benchmarks and tests
// report.
#pragma once

#include <cstdint>

namespace hart {

// Peak resident set size of this process in bytes (getrusage); 0 when unknown.
uint64_t PeakRssBytes();
// Resident set size of this process now in bytes (/proc/self/statm); 0 when
// unknown.
uint64_t RssBytes();

}  // namespace hart

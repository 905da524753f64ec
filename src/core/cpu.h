// CPU feature checks that work with gcc and clang alike (clang 14 rejects
// __builtin_cpu_supports("f16c")): CPUID leaf 1 and 7 bits, and whether the
// OS saves AVX state (XGETBV).
#pragma once

namespace hart {

struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false, f16c = false;
};
const CpuFeatures& Cpu();

}  // namespace hart

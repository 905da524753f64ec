// CPU feature checks that work with gcc and clang alike (clang 14 rejects
// __builtin_cpu_supports("f16c")): CPUID leaf 1 and 7 bits, and whether the
// OS saves the register state they need (XGETBV).
#pragma once

namespace hart {

struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false, f16c = false;
  // AVX-512 Foundation, Byte/Word, Vector Length and VNNI, each only set when
  // the OS also saves the opmask and ZMM state (XCR0 bits 5-7).
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false;
};
const CpuFeatures& Cpu();

}  // namespace hart

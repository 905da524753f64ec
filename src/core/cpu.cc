#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace hart {

const CpuFeatures& Cpu() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
    bool osxsave = cx & (1u << 27);
    bool avx_hw = cx & (1u << 28);
    bool os_avx = false, os_avx512 = false;
    if (osxsave) {
      unsigned lo, hi;
      __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      os_avx = (lo & 0x06) == 0x06;        // XMM and YMM state saved by the OS
      os_avx512 = (lo & 0xE6) == 0xE6;     // and opmask, ZMM0-15 upper, ZMM16-31
    }
    c.avx = avx_hw && os_avx;
    c.fma = c.avx && (cx & (1u << 12));
    c.f16c = c.avx && (cx & (1u << 29));
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
      c.avx2 = c.avx && (b & (1u << 5));
      const bool z = c.avx && os_avx512;
      c.avx512f = z && (b & (1u << 16));
      c.avx512bw = c.avx512f && (b & (1u << 30));
      c.avx512vl = c.avx512f && (b & (1u << 31));
      c.avx512vnni = c.avx512f && (cx & (1u << 11));
    }
#endif
    return c;
  }();
  return f;
}

}  // namespace hart

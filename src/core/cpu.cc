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
    bool os_avx = false;
    if (osxsave) {
      unsigned lo, hi;
      __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      os_avx = (lo & 6) == 6;  // XMM and YMM state saved by the OS
    }
    c.avx = avx_hw && os_avx;
    c.fma = c.avx && (cx & (1u << 12));
    c.f16c = c.avx && (cx & (1u << 29));
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) c.avx2 = c.avx && (b & (1u << 5));
#endif
    return c;
  }();
  return f;
}

}  // namespace hart

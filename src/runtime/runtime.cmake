# Link dependencies of hart_runtime beyond the defaults (included from the
# top-level CMakeLists.txt). ICU: Unicode regexes of the BPE pre-tokenizers,
# NFD and character categories of WordPiece (see pretokenize.h).
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-uc icu-i18n)
target_link_libraries(hart_runtime PUBLIC PkgConfig::ICU)

# Only the per-ISA kernel files get AVX2/AVX-512 code generation: the rest of
# the library must run on any x86-64, and kernels.cc calls into each file
# only after CPUID (core/cpu.h) says the CPU and OS can.
#
# The kernel files build at -O3 whatever the build type: at the default
# RelWithDebInfo (-O2) gcc 12 leaves the AVX-512 Q4_0 kernel at half its
# -O3 speed (kernels_bench --in-cache: 11 vs 22 GB/s per core).
set_source_files_properties(${CMAKE_SOURCE_DIR}/src/runtime/kernels_portable.cc
  PROPERTIES COMPILE_OPTIONS "-O3")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i.86)$")
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/runtime/kernels_avx2.cc
    PROPERTIES COMPILE_OPTIONS "-O3;-mavx2;-mfma;-mf16c")
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/runtime/kernels_avx512.cc
    PROPERTIES COMPILE_OPTIONS "-O3;-mavx512f;-mavx512bw;-mavx512vl;-mavx512vnni;-mavx2;-mfma;-mf16c")
  # Attention (attention.h): the AVX2 kernel, called after the same CPUID check.
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/runtime/attention_avx2.cc
    PROPERTIES COMPILE_OPTIONS "-O3;-mavx2;-mfma;-mf16c")
endif()

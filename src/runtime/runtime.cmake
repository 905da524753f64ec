# Link dependencies of hart_runtime beyond the defaults (included from the
# top-level CMakeLists.txt). ICU: Unicode regexes of the BPE pre-tokenizers,
# NFD and character categories of WordPiece (see pretokenize.h).
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-uc icu-i18n)
target_link_libraries(hart_runtime PUBLIC PkgConfig::ICU)

# Only the AVX2 kernels get AVX2/FMA/F16C code generation: the rest of the
# library must run on any x86-64, and kernels.cc calls into that file only
# after __builtin_cpu_supports says the CPU can.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i.86)$")
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/runtime/kernels_avx2.cc
    PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
endif()

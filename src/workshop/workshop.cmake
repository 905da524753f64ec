# The quantizers must round exactly as ggml's reference C does: no fused
# multiply-adds the C source does not spell out (GCC contracts a*b+c into
# an FMA in GNU modes when the target has FMA).
target_compile_options(hart_workshop PRIVATE -ffp-contract=off)
# The merge's element loops (decode, merge, BF16/F16 encode) vectorize at
# -O3 (SSE2; no reassociation without -ffast-math, so the same bits: each
# element's operations stay as written and in order).
set_source_files_properties(${CMAKE_SOURCE_DIR}/src/workshop/merge.cc
                            ${CMAKE_SOURCE_DIR}/src/workshop/merge_math.cc
                            PROPERTIES COMPILE_OPTIONS "-O3")

# The quantizers must round exactly as ggml's reference C does: no fused
# multiply-adds the C source does not spell out (GCC contracts a*b+c into
# an FMA in GNU modes when the target has FMA).
target_compile_options(hart_workshop PRIVATE -ffp-contract=off)

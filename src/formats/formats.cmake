# Extra link dependencies of hart_formats, included by the top CMakeLists.
# zlib: CRC-32 and DEFLATE entries of zip archives (PyTorch checkpoints).
find_package(ZLIB REQUIRED)
target_link_libraries(hart_formats PUBLIC ZLIB::ZLIB)

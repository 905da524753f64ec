# Extra link dependencies of hart_formats, included by the top CMakeLists.
# zlib: CRC-32 and DEFLATE entries of zip archives (PyTorch checkpoints).
find_package(ZLIB REQUIRED)
target_link_libraries(hart_formats PUBLIC ZLIB::ZLIB)
# protobuf + Debian's ONNX protos: the ModelProto graph, nodes and attributes
# (.onnx files). Tensor bytes are located by our own wire scanner.
find_package(Protobuf REQUIRED)
find_package(ONNX REQUIRED)
target_link_libraries(hart_formats PUBLIC onnx_proto protobuf::libprotobuf)

# mcp/: the Model Context Protocol server (src/mcp/): JSON-RPC core, the
# tool/resource/prompt tables over app/, the stdio transport, and /mcp on
# the HTTP server (so it sits above serve/).
target_link_libraries(hart_mcp PUBLIC hart_serve hart_app absl::strings)

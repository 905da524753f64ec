# The official MCP SDK client (tests/mcp/node_modules, `npm ci --prefix
# tests/mcp` in scripts/install-deps) against `hart mcp` and /mcp on
# `hart serve`, when node and the packages are present.
find_program(HART_NODE node)
if(HART_NODE AND EXISTS ${CMAKE_SOURCE_DIR}/tests/mcp/node_modules/@modelcontextprotocol/sdk AND TARGET hart)
  add_test(NAME mcp_sdk_client
           COMMAND ${HART_NODE} --test ${CMAKE_SOURCE_DIR}/tests/mcp/mcp_client_test.mjs)
  set_tests_properties(mcp_sdk_client PROPERTIES TIMEOUT 180
    ENVIRONMENT "HART_BIN=${CMAKE_BINARY_DIR}/hart;HART_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endif()
if(HART_NODE AND EXISTS ${CMAKE_SOURCE_DIR}/tests/mcp/node_modules/@modelcontextprotocol/inspector
   AND EXISTS ${CMAKE_SOURCE_DIR}/tests/mcp/node_modules/@modelcontextprotocol/conformance AND TARGET hart)
  add_test(NAME mcp_inspector_conformance
           COMMAND ${HART_NODE} --test ${CMAKE_SOURCE_DIR}/tests/mcp/mcp_tools_test.mjs)
  set_tests_properties(mcp_inspector_conformance PROPERTIES TIMEOUT 180
    ENVIRONMENT "HART_BIN=${CMAKE_BINARY_DIR}/hart;HART_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endif()

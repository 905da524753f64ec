# The official `openai` npm client against `hart serve` (node's test runner),
# when node and web/node_modules (scripts/install-deps) are present.
find_program(HART_NODE node)
if(HART_NODE AND EXISTS ${CMAKE_SOURCE_DIR}/web/node_modules/openai AND TARGET hart)
  add_test(NAME serve_openai_client
           COMMAND ${HART_NODE} --test ${CMAKE_SOURCE_DIR}/tests/serve/openai_client_test.mjs)
  set_tests_properties(serve_openai_client PROPERTIES TIMEOUT 120
    ENVIRONMENT "HART_BIN=${CMAKE_BINARY_DIR}/hart;HART_SOURCE_DIR=${CMAKE_SOURCE_DIR};HART_WEB_DIR=${CMAKE_SOURCE_DIR}/web")
endif()
# Structured output, tool calls, n and logit_bias through the same client.
if(HART_NODE AND EXISTS ${CMAKE_SOURCE_DIR}/web/node_modules/openai AND TARGET hart)
  add_test(NAME serve_openai_structured
           COMMAND ${HART_NODE} --test ${CMAKE_SOURCE_DIR}/tests/serve/openai_structured_test.mjs)
  set_tests_properties(serve_openai_structured PROPERTIES TIMEOUT 180
    ENVIRONMENT "HART_BIN=${CMAKE_BINARY_DIR}/hart;HART_SOURCE_DIR=${CMAKE_SOURCE_DIR};HART_WEB_DIR=${CMAKE_SOURCE_DIR}/web")
endif()

# The web UI's tests (node's test runner): data shaping unit tests, and the
# end-to-end run of the built UI in Debian's chromium (playwright-core) against
# `hart serve`; when node, web/node_modules and /usr/bin/chromium are present.
find_program(HART_NODE node)
if(HART_NODE AND EXISTS ${CMAKE_SOURCE_DIR}/web/node_modules/typescript/package.json)
  add_test(NAME ui_shape COMMAND ${HART_NODE} --test ${CMAKE_SOURCE_DIR}/tests/ui/shape_test.mjs)
  set_tests_properties(ui_shape PROPERTIES TIMEOUT 60 ENVIRONMENT "HART_WEB_DIR=${CMAKE_SOURCE_DIR}/web")
endif()
if(HART_NODE AND TARGET hart_web_ui AND EXISTS /usr/bin/chromium
   AND EXISTS ${CMAKE_SOURCE_DIR}/web/node_modules/playwright-core/package.json)
  add_test(NAME ui_e2e COMMAND ${HART_NODE} --test --test-concurrency=1 ${CMAKE_SOURCE_DIR}/tests/ui/ui_test.mjs)
  set_tests_properties(ui_e2e PROPERTIES TIMEOUT 180 RUN_SERIAL TRUE
    ENVIRONMENT "HART_BIN=${CMAKE_BINARY_DIR}/hart;HART_SOURCE_DIR=${CMAKE_SOURCE_DIR};HART_WEB_DIR=${CMAKE_SOURCE_DIR}/web;HART_UI_DIR=${CMAKE_BINARY_DIR}/web/ui;HART_UI_OUT=${CMAKE_BINARY_DIR}/tests/ui-output")
endif()
if(HART_NODE AND TARGET hart_web_ui AND EXISTS /usr/bin/chromium
   AND EXISTS ${CMAKE_SOURCE_DIR}/web/node_modules/playwright-core/package.json)
  # Sign-in: a node OIDC provider, `hart serve --auth`, the SPA's PKCE flow.
  add_test(NAME ui_signin COMMAND ${HART_NODE} --test --test-concurrency=1 ${CMAKE_SOURCE_DIR}/tests/ui/signin_test.mjs)
  set_tests_properties(ui_signin PROPERTIES TIMEOUT 90 RUN_SERIAL TRUE
    ENVIRONMENT "HART_BIN=${CMAKE_BINARY_DIR}/hart;HART_WEB_DIR=${CMAKE_SOURCE_DIR}/web;HART_UI_DIR=${CMAKE_BINARY_DIR}/web/ui;HART_UI_OUT=${CMAKE_BINARY_DIR}/tests/ui-output")
endif()

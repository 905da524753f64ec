# serve/: Boost.Beast/Asio (header-only, Debian libboost-dev) for HTTP.
find_package(Boost 1.74 REQUIRED)
target_link_libraries(hart_serve PUBLIC Boost::headers)
# Beast's error categories are header-only since Boost 1.69.
target_compile_definitions(hart_serve PUBLIC BOOST_BEAST_USE_STD_STRING_VIEW)

# /docs serves the Swagger UI from the swagger-ui-dist npm package
# (web/package-lock.json, installed by scripts/install-deps), copied next to
# the `hart` binary at build time; never committed.
set(HART_SWAGGER_SRC ${CMAKE_SOURCE_DIR}/web/node_modules/swagger-ui-dist)
set(HART_SWAGGER_DST ${CMAKE_BINARY_DIR}/web/swagger-ui)
if(EXISTS ${HART_SWAGGER_SRC}/swagger-ui-bundle.js)
  set(swagger_files swagger-ui-bundle.js swagger-ui.css favicon-32x32.png)
  set(swagger_outs)
  foreach(f ${swagger_files})
    add_custom_command(OUTPUT ${HART_SWAGGER_DST}/${f}
      COMMAND ${CMAKE_COMMAND} -E copy_if_different ${HART_SWAGGER_SRC}/${f} ${HART_SWAGGER_DST}/${f}
      DEPENDS ${HART_SWAGGER_SRC}/${f})
    list(APPEND swagger_outs ${HART_SWAGGER_DST}/${f})
  endforeach()
  add_custom_target(hart_swagger_ui ALL DEPENDS ${swagger_outs})
else()
  message(STATUS "web/node_modules missing: /docs will answer 503 (run scripts/install-deps)")
endif()

# The web UI (web/, TypeScript built by Vite) goes next to `hart` as
# web/ui, where `hart serve` serves it at /. Built when node and the npm
# packages are there (scripts/install-deps); otherwise / answers 503 with
# how to build it.
find_program(HART_NPM npm)
if(HART_NPM AND EXISTS ${CMAKE_SOURCE_DIR}/web/node_modules/vite/package.json)
  file(GLOB_RECURSE HART_UI_SRCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/web/src/*)
  set(HART_UI_DST ${CMAKE_BINARY_DIR}/web/ui)
  add_custom_command(OUTPUT ${HART_UI_DST}/index.html
    COMMAND ${HART_NPM} run --silent --prefix ${CMAKE_SOURCE_DIR}/web build -- --outDir ${HART_UI_DST} --emptyOutDir --logLevel warn
    DEPENDS ${HART_UI_SRCS} ${CMAKE_SOURCE_DIR}/web/index.html ${CMAKE_SOURCE_DIR}/web/vite.config.ts
            ${CMAKE_SOURCE_DIR}/web/tsconfig.json ${CMAKE_SOURCE_DIR}/web/package-lock.json
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/web
    COMMENT "Building the web UI (vite) into ${HART_UI_DST}")
  add_custom_target(hart_web_ui ALL DEPENDS ${HART_UI_DST}/index.html)
else()
  message(STATUS "npm or web/node_modules missing: the web UI at / will answer 503 (run scripts/install-deps)")
endif()

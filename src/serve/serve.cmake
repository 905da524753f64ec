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

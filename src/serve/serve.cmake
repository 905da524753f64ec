# serve/: Boost.Beast/Asio (header-only, Debian libboost-dev) for HTTP.
find_package(Boost 1.74 REQUIRED)
target_link_libraries(hart_serve PUBLIC Boost::headers)
# Beast's error categories are header-only since Boost 1.69.
target_compile_definitions(hart_serve PUBLIC BOOST_BEAST_USE_STD_STRING_VIEW)

# Extra link dependencies of hart_auth, included by the top CMakeLists.
# cpp-httplib (Debian libcpp-httplib-dev, built with OpenSSL): the client that
# fetches the OIDC discovery document and the JWKS. Its pkg-config flags carry
# CPPHTTPLIB_OPENSSL_SUPPORT, so https works the same way http does.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
target_link_libraries(hart_auth PUBLIC PkgConfig::HTTPLIB OpenSSL::SSL OpenSSL::Crypto)

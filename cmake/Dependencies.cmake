# Every dependency is a Debian 12 package (see README "Dependencies"); nothing is downloaded.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)          # libcrypto: SHA-256 (SHA-NI through EVP)
find_package(SQLite3 REQUIRED)            # metadata, WAL
find_package(zstd CONFIG REQUIRED)        # manifest compression
find_package(CURL 7.85 REQUIRED)          # registry transport (HTTP/1.1 keep-alive, TLS, proxies)
find_package(nlohmann_json 3.11 CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)   # XXH3-128
# treesnap.toml; through pkg-config, whose flags carry TOML_HEADER_ONLY=0 for Debian's shared build
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
if(TREESNAP_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()

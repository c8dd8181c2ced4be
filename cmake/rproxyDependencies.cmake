# Finds the libraries behind rproxy's optional INTERFACE targets. Shared by the build tree and
# the installed package (rproxyConfig.cmake includes this file).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(OpenSSL)
find_dependency(yaml-cpp)
find_dependency(spdlog)
find_dependency(CLI11)
find_dependency(PkgConfig)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2>=1.52)
find_dependency(ZLIB)
pkg_check_modules(BROTLIENC REQUIRED IMPORTED_TARGET libbrotlienc)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

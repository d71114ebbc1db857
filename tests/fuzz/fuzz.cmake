# fuzz.cmake: -DP2X_FUZZ=ON builds the libFuzzer targets of tests/fuzz/ and only the libraries
# they need, with clang (libFuzzer is clang's): every object with
# -fsanitize=fuzzer-no-link,address,undefined (coverage feedback plus ASan and UBSan), the
# fuzz programs linked with -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt).
# Debian's DCMTK, Boost, spdlog and libstdc++ (built by g++) link unchanged; they are not
# instrumented, so libFuzzer sees coverage of our code and of the header-only libraries only.
#   cmake -S . -B build-fuzz -DP2X_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14
# scripts/test's fuzz run builds and runs them (tests/fuzz/run); see README.md.
# Included from the top-level CMakeLists.txt before the first add_subdirectory.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "P2X_FUZZ needs clang for libFuzzer: -DCMAKE_CXX_COMPILER=clang++-14 "
                      "(Debian 12: apt-get install clang-14 libclang-rt-14-dev)")
endif()
if(P2X_SANITIZE)
  message(FATAL_ERROR "P2X_FUZZ brings its own sanitizers (address,undefined); "
                      "leave P2X_SANITIZE empty")
endif()
# clang warns where g++ does not (-Wunused-private-field...); the plain g++ build is the one that
# keeps warnings at zero, as for the sanitized builds (cmake/sanitize.cmake).
if(P2X_WERROR)
  message(FATAL_ERROR "P2X_FUZZ needs -DP2X_WERROR=OFF (clang's warnings differ from g++'s)")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                    -fno-sanitize-recover=all)
set(P2X_FUZZ_LINK_OPTIONS -fsanitize=fuzzer,address,undefined)
message(STATUS "Fuzz targets: libFuzzer + address,undefined")

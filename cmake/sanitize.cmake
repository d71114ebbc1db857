# sanitize.cmake: -DP2X_SANITIZE=<list> builds every target (product, tests, tools, benchmarks)
# with those GCC sanitizers, e.g. "address,undefined" or "thread". Frame pointers stay in so the
# reports' stacks are whole, and UBSan findings abort like ASan's instead of printing and going
# on. scripts/test builds build-asan and build-tsan this way; see README.md for running them.
# Include before the first add_subdirectory: the flags apply to targets defined after it.
set(P2X_SANITIZE "" CACHE STRING
    "Sanitizers for every target, comma separated: address,undefined | thread | empty for none")

if(P2X_SANITIZE)
  string(REPLACE ";" "," p2x_sanitize "${P2X_SANITIZE}")
  string(REPLACE "," ";" p2x_sanitizers "${p2x_sanitize}")
  foreach(p2x_one IN LISTS p2x_sanitizers)
    if(NOT p2x_one MATCHES "^(address|undefined|thread|leak)$")
      message(FATAL_ERROR "P2X_SANITIZE: unknown sanitizer '${p2x_one}' "
                          "(address, undefined, thread, leak)")
    endif()
  endforeach()
  if("thread" IN_LIST p2x_sanitizers AND
     ("address" IN_LIST p2x_sanitizers OR "leak" IN_LIST p2x_sanitizers))
    message(FATAL_ERROR "P2X_SANITIZE: thread cannot be combined with address or leak")
  endif()
  # GCC's manual advises against -Werror with sanitizers: they raise false warnings (with g++ 12
  # -Wmaybe-uninitialized in <regex>). The plain build is the one that keeps warnings at zero.
  if(P2X_WERROR)
    message(FATAL_ERROR "P2X_SANITIZE needs -DP2X_WERROR=OFF (sanitizers cause false warnings)")
  endif()
  add_compile_options(-fsanitize=${p2x_sanitize} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  # UBSan without its vptr and alignment checks: with g++ 12 they more than double the compile
  # time of ASan+UBSan (lib/xnat/http_client.cpp: 187 s -> 93 s CPU at -O1), and neither is
  # worth it here: x86-64 tolerates misaligned loads and the DICOM byte parsing is DCMTK's
  # (not instrumented anyway); vptr checks the dynamic type of polymorphic calls and casts.
  if("undefined" IN_LIST p2x_sanitizers)
    add_compile_options(-fno-sanitize=vptr,alignment)
  endif()
  add_link_options(-fsanitize=${p2x_sanitize})
  message(STATUS "Sanitizers: ${p2x_sanitize}")
endif()

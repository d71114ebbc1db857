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
  # UBSan without its vptr and alignment checks: with g++ 12 they double the compile time of
  # ASan+UBSan (lib/xnat/http_client.cpp at -O1: 187 s CPU with them, 93 s without), and neither
  # is worth it here: x86-64 tolerates misaligned loads and the DICOM byte parsing is DCMTK's
  # (not instrumented anyway); vptr checks the dynamic type of polymorphic calls and casts.
  if("undefined" IN_LIST p2x_sanitizers)
    add_compile_options(-fno-sanitize=vptr,alignment)
    # With g++'s shared libubsan beside libasan, UBSan reports ignore log_path and go to stderr
    # (GCC bug 94328: the two runtimes each keep their own report file, and libasan's
    # __sanitizer_set_report_path interposes libubsan's). Linked statically, libubsan keeps its
    # own, so UBSAN_OPTIONS=log_path works in every process, the daemon under test included.
    add_link_options(-static-libubsan)
  endif()
  # TSan does not model std::atomic_thread_fence, which Boost.Asio's std_fenced_block uses around
  # every handler (g++ warns in each file that includes Asio). Asio hands handlers between threads
  # under its scheduler's mutex too, which TSan does see; a report inside Asio: look here first.
  if("thread" IN_LIST p2x_sanitizers)
    add_compile_options(-Wno-tsan)
  endif()
  add_link_options(-fsanitize=${p2x_sanitize})
  message(STATUS "Sanitizers: ${p2x_sanitize}")
endif()

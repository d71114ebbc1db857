// fuzz/expect: how a fuzz target states a property of the code under test beyond "no crash".
// A broken property prints what broke and aborts; libFuzzer reports that as a crash and saves
// the input that caused it (crash-<sha1> in the working directory or -artifact_prefix).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace p2x::fuzz {

[[noreturn]] inline void broken(const char* condition, const std::string& detail, const char* file,
                                int line) {
  std::fprintf(stderr, "%s:%d: property broken: %s\n  %s\n", file, line, condition, detail.c_str());
  std::abort();
}

}  // namespace p2x::fuzz

// P2X_FUZZ_EXPECT(condition, detail): `detail` (a std::string) is built only when it fails.
#define P2X_FUZZ_EXPECT(condition, detail)                                           \
  do {                                                                               \
    if (!(condition)) ::p2x::fuzz::broken(#condition, (detail), __FILE__, __LINE__); \
  } while (false)

// fuzz_dimse: the nesting guard of our DICOM connections (lib/pacs/dimse_guard.hpp), what every
// byte a PACS or a Storage SCP peer sends passes before DCMTK parses it. The first byte chooses
// what is fed (a data set in one of the three syntaxes, or a whole PDU stream to DimseGuard) and
// the second the size of the pieces it comes in. Besides crashes, sanitizer reports and hangs
// it checks that the verdict does not depend on how the bytes are cut: fed at once and fed in
// pieces, the scanner finds the same depth and the guard the same answer.
#include "expect.hpp"
#include "pacs/dimse_guard.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace {

namespace d = p2x::pacs::detail;

struct Verdict {
  bool passed = true;
  int deepest = 0;
  bool lost = false;
};

Verdict scan(d::Syntax syntax, const std::uint8_t* data, std::size_t size, std::size_t piece) {
  d::NestingScanner s(syntax);
  Verdict v;
  for (std::size_t at = 0; at < size && v.passed; at += piece)
    v.passed = s.feed(data + at, std::min(piece, size - at));
  v.deepest = s.deepest();
  v.lost = s.lost();
  return v;
}

bool guard(const std::uint8_t* data, std::size_t size, std::size_t piece) {
  d::DimseGuard g;
  for (std::size_t at = 0; at < size; at += piece)
    if (!g.on_read(data + at, std::min(piece, size - at))) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const unsigned mode = data[0] % 4;
  const std::size_t piece = 1 + data[1] % 64;
  data += 2;
  size -= 2;
  if (mode == 3) {
    P2X_FUZZ_EXPECT(guard(data, size, size + 1) == guard(data, size, piece),
                    "guard verdict depends on the pieces (" + std::to_string(piece) + ")");
    return 0;
  }
  const auto syntax = static_cast<d::Syntax>(mode);
  const Verdict whole = scan(syntax, data, size, size + 1);
  const Verdict pieces = scan(syntax, data, size, piece);
  P2X_FUZZ_EXPECT(
      whole.passed == pieces.passed &&
          (!whole.passed || (whole.deepest == pieces.deepest && whole.lost == pieces.lost)),
      "whole: " + std::to_string(whole.passed) + "/" + std::to_string(whole.deepest) +
          ", in pieces of " + std::to_string(piece) + ": " + std::to_string(pieces.passed) + "/" +
          std::to_string(pieces.deepest));
  P2X_FUZZ_EXPECT(!whole.passed || whole.deepest <= d::kMaxNesting,
                  "passed at depth " + std::to_string(whole.deepest));
  return 0;
}

// fuzz_xnat_json: the JSON listings XNAT answers, as lib/xnat reads them (requests.hpp):
// experiments, scans, one scan, an experiment with its scans, files and resources per scan, the
// prearchive, and the plain-text settings (anonymisation enabled, prearchive code). The first
// byte chooses the reader, the rest is the answer. Besides crashes, sanitizer reports (a count
// like 1e300 cast to an integer was undefined behaviour) and hangs it checks what requests.hpp
// promises: what cannot be read throws XnatError Unreadable (Protocol only where the client
// asks again differently), never another exception; every row read has the keys its listing
// needs; every count and size is within 0..kMaxCount.
#include "expect.hpp"
#include "xnat/requests.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace {

namespace x = p2x::xnat;
namespace d = p2x::xnat::detail;
using Counts = std::map<std::string, std::pair<std::int64_t, std::int64_t>>;

void check_counts(const Counts& counts) {
  for (const auto& [scan, c] : counts) {
    P2X_FUZZ_EXPECT(!scan.empty(), "counts of a scan without ID");
    P2X_FUZZ_EXPECT(
        c.first >= 0 && c.first <= d::kMaxCount && c.second >= 0 && c.second <= d::kMaxCount,
        "scan " + scan + ": " + std::to_string(c.first) + " files, " + std::to_string(c.second) +
            " bytes");
  }
}

// Runs reader `which` over `body` and checks what it read (throws what the reader throws).
void read(unsigned which, const std::string& body) {
  switch (which % 10) {
    case 0:
      for (const auto& s : d::parse_experiments(body))
        P2X_FUZZ_EXPECT(!s.id.empty() && !s.label.empty(), "experiment '" + s.id + "'");
      break;
    case 1:
      for (const auto& s : d::parse_scans(body)) P2X_FUZZ_EXPECT(!s.id.empty(), "scan");
      break;
    case 2: {
      x::ScanInfo scan;
      d::parse_scan_item(body, scan);
      break;
    }
    case 3:
      for (const auto& s : d::parse_experiment_scans(body)) P2X_FUZZ_EXPECT(!s.id.empty(), "scan");
      break;
    case 4:
      check_counts(d::parse_scan_files(body));
      break;
    case 5:
      check_counts(d::parse_scan_resources(body));
      break;
    case 6:
      for (const auto& e : d::parse_prearchive(body)) P2X_FUZZ_EXPECT(!e.url.empty(), e.name);
      break;
    case 7:
      d::parse_enabled(body);
      break;
    case 8:
      if (const auto code = d::parse_prearchive_code(body))
        P2X_FUZZ_EXPECT(*code >= 0 && *code <= 999, std::to_string(*code));
      break;
    default:
      if (const auto n = d::parse_count(body))
        P2X_FUZZ_EXPECT(*n >= 0 && *n <= d::kMaxCount, std::to_string(*n));
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    read(data[0], body);
  } catch (const x::XnatError& e) {
    const bool shape = e.kind == x::ErrorKind::Protocol && (data[0] % 10 == 3 || data[0] % 10 == 5);
    P2X_FUZZ_EXPECT(
        (e.kind == x::ErrorKind::Unreadable && e.transient()) || shape,
        "reader " + std::to_string(data[0] % 10) + ": " + x::to_string(e.kind) + ": " + e.what());
  }
  return 0;
}

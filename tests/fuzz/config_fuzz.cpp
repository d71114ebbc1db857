// fuzz_config: config::parse, what the daemon runs on its configuration file (at start, on
// SIGHUP and for --check-config). Besides crashes, sanitizer reports and hangs it checks
// config.hpp's promise: bad input throws ConfigError naming the source (never another exception,
// which would bypass the daemon's error handling), and an accepted configuration is usable.
#include "config/config.hpp"
#include "expect.hpp"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kSource = "fuzz.json";

void check_config(const p2x::config::Config& c) {
  P2X_FUZZ_EXPECT(!c.pacs.empty(), "accepted without a PACS");
  std::set<std::string> names;
  for (const auto& pacs : c.pacs) {
    P2X_FUZZ_EXPECT(names.insert(pacs.name).second, "PACS name twice: " + pacs.name);
    P2X_FUZZ_EXPECT(c.find_pacs(pacs.name) == &pacs, pacs.name);
    P2X_FUZZ_EXPECT(!pacs.ae_title.empty() && pacs.ae_title.size() <= 16 && !pacs.host.empty() &&
                        pacs.port >= 1 && pacs.max_associations >= 1,
                    "PACS " + pacs.name);
    for (const auto& w : pacs.windows) {
      P2X_FUZZ_EXPECT(w.start_min >= 0 && w.start_min < w.end_min && w.end_min <= 24 * 60,
                      "window " + std::to_string(w.start_min) + "-" + std::to_string(w.end_min));
    }
  }
  P2X_FUZZ_EXPECT(!c.ae_title.empty() && c.ae_title.size() <= 16, c.ae_title);
  P2X_FUZZ_EXPECT(!c.xnat.url.empty() && !c.xnat.credentials_file.empty(), c.xnat.url);
  P2X_FUZZ_EXPECT(c.paths.state_dir.rfind('/', 0) == 0 && c.paths.spool_dir.rfind('/', 0) == 0,
                  c.paths.state_dir + " " + c.paths.spool_dir);
  P2X_FUZZ_EXPECT(c.limits.backoff_initial_s <= c.limits.backoff_max_s, "backoff");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    check_config(p2x::config::parse(text, kSource));
  } catch (const p2x::config::ConfigError& e) {
    const std::string_view message = e.what();
    P2X_FUZZ_EXPECT(message.substr(0, kSource.size()) == kSource,
                    "error without the file name: " + std::string(message.substr(0, 300)));
  }
  return 0;
}

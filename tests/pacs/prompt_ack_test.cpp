// The receiver never stalls a sender with Nagle on (lib/pacs/prompt_ack.hpp): a few hundred
// small instances retrieved from a stock PACS (Orthanc and dcmqrscp without TCP_NODELAY, as
// shipped) take at most a generous bound of the same retrieval from the same PACS restarted
// with TCP_NODELAY=1, measured here, for C-MOVE into our Storage SCP and for C-GET. Without
// the mechanism (P2X_PROMPT_ACK=0) every C-STORE waits ~40 ms for our delayed ACK and the bound
// fails by an order of magnitude. A regression guard, not a benchmark (bench/ gives figures).
#include "pacs/pacs.hpp"
#include "pacs/prompt_ack.hpp"
#include "support/pacs_fixture.hpp"
#include "support/testdata.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

namespace fs = std::filesystem;
using namespace p2x;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kOurAe = "P2XACKTEST";
constexpr int kInstances = 300;  // 2 series x 150, 64x64 pixels (~9 KB each)
// Generous: with prompt ACKs the stock PACS is within ~1.3x; without, 300 x ~40 ms = ~12 s.
constexpr double kFactor = 3.0, kSlackS = 1.0;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Env {
  fs::path root;
  test::GeneratedStudy study;
  std::uint16_t scp_port = 0;
  std::unique_ptr<pacs::StorageScp> scp;
  int dirs = 0;

  Env() {
    pacs::init_network();
    root = fs::temp_directory_path() / ("p2x-prompt-ack-test-" + std::to_string(::getpid()));
    fs::remove_all(root);
    auto spec = test::uniform_corpus(1, 2, kInstances / 2, "MR", "ACK");
    spec[0].rows = spec[0].cols = 64;
    study = test::generate(spec, (root / "src").string()).front();
    scp_port = test::free_port();
    pacs::ScpOptions opts;
    opts.staging_dir = (root / "staging").string();
    scp = std::make_unique<pacs::StorageScp>(kOurAe, scp_port, 4, opts);
    scp->start();
  }
  ~Env() {
    scp.reset();
    std::error_code ec;
    if (std::getenv("P2X_KEEP_TEST_DIR") == nullptr) fs::remove_all(root, ec);
  }

  pacs::Peer peer(const test::PacsFixture& f) const {
    pacs::Peer p;
    p.ae_title = f.ae_title();
    p.host = "127.0.0.1";
    p.port = f.port();
    p.our_ae = kOurAe;
    p.timeouts.connect_s = 3;
    p.timeouts.acse_s = 10;
    p.timeouts.dimse_s = 30;
    p.timeouts.idle_s = 30;
    return p;
  }
  std::string new_dir(const std::string& tag) {
    return (root / "out" / (tag + "-" + std::to_string(++dirs))).string();
  }

  // Seconds for a whole-study C-MOVE into the Storage SCP; REQUIREs every instance.
  double move(const test::PacsFixture& f) {
    auto route = scp->expect(study.study_uid, new_dir("move"), {f.ae_title()});
    pacs::Client client(peer(f));
    const auto t0 = Clock::now();
    const auto r = client.move({study.study_uid, {}, {}});
    const double s = seconds_since(t0);
    REQUIRE(r.completed == kInstances);
    REQUIRE(route->received() == kInstances);
    return s;
  }
  // Seconds for a whole-study C-GET; REQUIREs every instance.
  double get(const test::PacsFixture& f) {
    pacs::Client client(peer(f));
    const auto t0 = Clock::now();
    const auto r = client.get({study.study_uid, {}, {}}, new_dir("get"));
    const double s = seconds_since(t0);
    REQUIRE(r.received == kInstances);
    return s;
  }
};

// The PACS loaded once; each retrieval timed from it with TCP_NODELAY=1, then restarted stock.
void check_stock_within_bound(Env& env, test::PacsKind kind) {
  test::PacsFixture pacs(kind, (env.root / test::to_string(kind)).string(),
                         {{kOurAe, env.scp_port}});
  pacs.start();
  pacs.load(env.study.files());
  const auto timed = [&](const char* what, const std::function<double()>& once) {
    pacs.set_stock(false);
    pacs.restart();
    const double nodelay = once();
    pacs.set_stock(true);
    pacs.restart();
    const auto rearms = pacs::detail::prompt_ack_rearms();
    const double stock = once();
    const auto added = pacs::detail::prompt_ack_rearms() - rearms;
    INFO(pacs.label() << " " << what << ": stock " << stock << " s, TCP_NODELAY " << nodelay
                      << " s; TCP_QUICKACK re-armed " << added << " times ("
                      << static_cast<double>(added) / kInstances << " per instance)");
    CHECK(stock <= kFactor * nodelay + kSlackS);
    CHECK(added >= static_cast<std::uint64_t>(kInstances));  // at least one per instance
  };
  timed("C-MOVE", [&] { return env.move(pacs); });
  timed("C-GET", [&] { return env.get(pacs); });
}

}  // namespace

TEST_CASE("A stock (Nagle-on) PACS sends as fast as a TCP_NODELAY one: Orthanc", "[pacs][nagle]") {
  Env env;
  check_stock_within_bound(env, test::PacsKind::Orthanc);
}

TEST_CASE("A stock (Nagle-on) PACS sends as fast as a TCP_NODELAY one: dcmqrscp", "[pacs][nagle]") {
  Env env;
  check_stock_within_bound(env, test::PacsKind::Dcmqrscp);
}

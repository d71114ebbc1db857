// Benchmark: one study of N instances (default 600 MR, 4 series) retrieved from dcmqrscp and
// Orthanc by our Client + StorageScp (C-MOVE) and Client::get (C-GET), against DCMTK's
// movescu + storescp and getscu (TCP_NODELAY=1 everywhere). Prints the median of R runs and
// how many TCP_QUICKACK re-arms (one setsockopt each, lib/pacs/prompt_ack.hpp) an instance cost;
// then ours with and without prompt ACKs, alternated (ABBA), to show they cost nothing here.
// Usage: pacs_bench [instances=600] [runs=3]
#include "pacs/pacs.hpp"
#include "pacs/prompt_ack.hpp"
#include "support/pacs_fixture.hpp"
#include "support/process.hpp"
#include "support/testdata.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
using namespace p2x;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kOurAe = "P2XBENCH";
constexpr const char* kRawAe = "RAWSTORESCP";

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) ++n;
  return n;
}

double median_of(int runs, const std::function<double(int)>& once) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) t.push_back(once(i));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Medians of `once` with prompt ACKs on and off, 2 x runs calls in ABBA order (on, off, off,
// on, ...); prompt ACKs are on again afterwards.
std::pair<double, double> on_off(int runs, const std::function<double(int)>& once) {
  std::vector<double> on, off;
  for (int i = 0; i < 2 * runs; ++i) {
    const bool enable = i % 4 == 0 || i % 4 == 3;
    pacs::detail::set_prompt_ack_enabled(enable);
    (enable ? on : off).push_back(once(100 + i));
  }
  pacs::detail::set_prompt_ack_enabled(true);
  std::sort(on.begin(), on.end());
  std::sort(off.begin(), off.end());
  return {on[on.size() / 2], off[off.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  const int instances = argc > 1 ? std::atoi(argv[1]) : 600;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  try {
    pacs::init_network();
    const fs::path root =
        fs::temp_directory_path() / ("p2x-pacs-bench-" + std::to_string(::getpid()));
    fs::create_directories(root);
    auto spec = test::uniform_corpus(1, 4, instances / 4, "MR", "BENCH");
    const auto studies = test::generate(spec, (root / "src").string());
    const auto& study = studies.front();
    const int n = study.instance_count();
    std::uintmax_t bytes = 0;
    for (const auto& f : study.files()) bytes += fs::file_size(f);
    std::printf("study: %d instances, %.1f MB\n", n, static_cast<double>(bytes) / 1e6);

    const std::uint16_t scp_port = test::free_port();
    const std::uint16_t raw_port = test::free_port();
    const std::vector<test::MoveDestination> dests = {{kOurAe, scp_port}, {kRawAe, raw_port}};

    pacs::StorageScp scp(kOurAe, scp_port, 4, {(root / "staging").string()});
    scp.start();
    test::SpawnOptions so;
    so.log_path = (root / "storescp.log").string();
    const fs::path raw_out = root / "raw";
    fs::create_directories(raw_out);
    const pid_t storescp = test::spawn(
        {"storescp", "-aet", kRawAe, "-od", raw_out.string(), std::to_string(raw_port)}, so);

    for (auto kind : {test::PacsKind::Dcmqrscp, test::PacsKind::Orthanc}) {
      test::PacsFixture pacs(kind, (root / test::to_string(kind)).string(), dests);
      pacs.start();
      pacs.load(study.files());
      pacs::Peer peer{pacs.ae_title(), "127.0.0.1", pacs.port(), kOurAe, {}, {}};
      pacs::Client client(peer);

      const auto move_once = [&](int i) {
        const auto dir = root / ("move-" + std::string(test::to_string(kind)) + std::to_string(i));
        auto route = scp.expect(study.study_uid, dir.string(), {pacs.ae_title()});
        const auto t0 = Clock::now();
        const auto r = client.move({study.study_uid, {}, {}});
        // Like storescp (and the daemon's spool, see lib/pipeline/spool.hpp): no fsync.
        route.reset();
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (r.completed != n || count_files(dir) != static_cast<std::size_t>(n))
          throw std::runtime_error("our move incomplete");
        return s;
      };
      const auto rearms_before_move = pacs::detail::prompt_ack_rearms();
      const double ours_move = median_of(runs, move_once);
      const double move_rearms =
          static_cast<double>(pacs::detail::prompt_ack_rearms() - rearms_before_move) / (runs * n);
      const double raw_move = median_of(runs, [&](int i) {
        const auto dir = raw_out;
        fs::remove_all(dir);
        fs::create_directories(dir);
        (void)i;
        const auto t0 = Clock::now();
        const int rc = test::run(
            {"movescu", "-S", "-aet", kOurAe, "-aem", kRawAe, "-aec", pacs.ae_title(), "-k",
             "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + study.study_uid, "127.0.0.1",
             std::to_string(pacs.port())},
            so, 120000);
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (rc != 0 || count_files(dir) != static_cast<std::size_t>(n))
          throw std::runtime_error("movescu failed");
        return s;
      });
      const auto get_once = [&](int i) {
        const auto dir = root / ("get-" + std::string(test::to_string(kind)) + std::to_string(i));
        const auto t0 = Clock::now();
        const auto r = client.get({study.study_uid, {}, {}}, dir.string());
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (r.received != n) throw std::runtime_error("our get incomplete");
        return s;
      };
      const auto rearms_before_get = pacs::detail::prompt_ack_rearms();
      const double ours_get = median_of(runs, get_once);
      const double get_rearms =
          static_cast<double>(pacs::detail::prompt_ack_rearms() - rearms_before_get) / (runs * n);
      const double raw_get = median_of(runs, [&](int i) {
        const auto dir =
            root / ("rawget-" + std::string(test::to_string(kind)) + std::to_string(i));
        fs::create_directories(dir);
        const auto t0 = Clock::now();
        const int rc = test::run(
            {"getscu", "-S", "-aet", kOurAe, "-aec", pacs.ae_title(), "-od", dir.string(), "-k",
             "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + study.study_uid, "127.0.0.1",
             std::to_string(pacs.port())},
            so, 120000);
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (rc != 0 || count_files(dir) != static_cast<std::size_t>(n))
          throw std::runtime_error("getscu failed");
        return s;
      });
      std::printf(
          "%-9s C-MOVE ours %.3f s  movescu+storescp %.3f s  ratio %.2f  "
          "TCP_QUICKACK setsockopt per instance %.1f\n",
          test::to_string(kind), ours_move, raw_move, ours_move / raw_move, move_rearms);
      std::printf(
          "%-9s C-GET  ours %.3f s  getscu           %.3f s  ratio %.2f  "
          "TCP_QUICKACK setsockopt per instance %.1f\n",
          test::to_string(kind), ours_get, raw_get, ours_get / raw_get, get_rearms);
      // Harmless where the sender has TCP_NODELAY: ours with and without prompt ACKs.
      for (const auto& [what, once] :
           {std::pair<const char*, std::function<double(int)>>{"C-MOVE", move_once},
            {"C-GET ", get_once}}) {
        const auto [on, off] = on_off(runs, once);
        std::printf("%-9s %s ours with prompt ACKs %.3f s, without %.3f s  ratio %.3f\n",
                    test::to_string(kind), what, on, off, on / off);
      }
    }
    test::stop_pid(storescp, 5000);
    scp.stop();
    if (std::getenv("P2X_KEEP_TEST_DIR") == nullptr) fs::remove_all(root);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pacs_bench: %s\n", e.what());
    return 1;
  }
}

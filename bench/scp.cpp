// bench_scp: the C-MOVE stage alone, one study at a time, no daemon around it. From the same
// PACS and study, alternately: raw movescu + storescp (TCP_NODELAY=1) and lib/pacs in this
// process (pacs::Client::move into a pacs::StorageScp route, then Route::sync, timed apart).
// Shows whether a gap in bench_retrieve comes from receiving the files or from the rest of the
// pipeline (C-FIND, store, validation).
// Usage: bench_scp [instances=400] [reps=5] [pacs=orthanc|dcmqrscp]
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common.hpp"
#include "pacs/pacs.hpp"

using namespace p2x;
using namespace p2x::bench;

int main(int argc, char** argv) {
  const int n_inst = argc > 1 ? std::atoi(argv[1]) : 400;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  const bool dcmqrscp = argc > 3 && std::strcmp(argv[3], "dcmqrscp") == 0;
  print_header("bench_scp");
  const std::string dir = test::make_temp_dir("p2x-bench-scp");
  int rc = 0;
  try {
    auto studies = test::generate(test::uniform_corpus(1, 4, n_inst / 4, "MR", "SACC"),
                                  dir + "/data", 17);
    auto files = studies[0].files();
    const double mb = static_cast<double>(total_bytes(files)) / 1e6;
    Rig rig(dir, dcmqrscp ? test::PacsKind::Dcmqrscp : test::PacsKind::Orthanc, files);
    std::printf("one study, %zu instances, %.1f MB, from %s; %d repetitions\n", files.size(), mb,
                dcmqrscp ? "dcmqrscp" : "orthanc", reps);

    pacs::init_network();
    pacs::StorageScp scp(Rig::kOurAe, rig.our_port(), 4, {dir + "/staging"});
    scp.start();
    pacs::Peer peer{rig.pacs().ae_title(), "127.0.0.1", rig.pacs().port(), Rig::kOurAe, {}};
    pacs::Client client(peer);

    std::vector<double> raw, ours, syncs;
    for (int r = 0; r < reps; ++r) {
      const std::string out = dir + "/raw" + std::to_string(r);
      raw.push_back(raw_move(rig, studies, 1, out));
      test::remove_tree(out);

      const std::string spool = dir + "/ours" + std::to_string(r);
      auto t0 = Clock::now();
      auto route = scp.expect(studies[0].study_uid, spool);
      auto res = client.move({studies[0].study_uid, {}, {}});
      ours.push_back(seconds_since(t0));
      auto t1 = Clock::now();
      route->sync();
      syncs.push_back(seconds_since(t1));
      if (route->received() != static_cast<int>(files.size())) {
        throw std::runtime_error("received " + std::to_string(route->received()) + " of " +
                                 std::to_string(files.size()) + " (" + res.status_text + ")");
      }
      route.reset();
      test::remove_tree(spool);
      std::printf("  rep %d: raw %.3f s   lib/pacs move %.3f s + sync %.3f s\n", r + 1, raw.back(),
                  ours.back(), syncs.back());
    }
    const double a = median_of(raw), b = median_of(ours), c = median_of(syncs);
    std::printf("median: raw %.3f s, lib/pacs move %.3f s (ratio %.3f), + sync %.3f s (ratio %.3f)\n",
                a, b, b / a, c, (b + c) / a);
    std::printf("RESULT scp raw_s=%.3f move_s=%.3f sync_s=%.3f\n", a, b, c);
    scp.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_scp: %s\n", e.what());
    rc = 1;
  }
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(dir);
  return rc;
}

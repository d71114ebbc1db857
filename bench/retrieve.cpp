// bench_retrieve: retrieval speed of the daemon against raw DCMTK (movescu + storescp), per test
// PACS (Orthanc, dcmqrscp), same studies, same run, median of R runs each; and the daemon's
// retrieval from the same PACS restarted stock (no TCP_NODELAY: Nagle on, as Debian ships it),
// whose C-STOREs stall on a receiver's delayed ACKs unless it acknowledges promptly. Each run
// alternates which PACS mode (and, with TCP_NODELAY, which of raw/daemon) goes first. The raw
// tools' retrieval from the stock PACS is measured once per PACS (it is slow).
//  raw:    storescp (TCP_NODELAY=1, writing to a temp dir) + `lanes` concurrent movescu, one
//          C-MOVE per StudyInstanceUID.
//  daemon: a fresh pacs2xnatd (max_associations = lanes) per run; time from `pacs2xnat submit`
//          of the accession CSV until every item is at least `retrieved` (polled every 10 ms).
//          That includes the daemon's C-FINDs and the polling grain. Neither side fsyncs the
//          files (the daemon's spool is re-fetched after a power loss: lib/pipeline/spool.hpp).
//          Pushes are held back (stand-in fault knob set right after submit: 503 on the
//          session lookup that precedes every upload) so zipping and uploading do not compete for
//          the CPU; the daemon just backs off.
// Then the daemon's peak RSS (VmHWM) through retrieval and validation of one 2,000-instance
// study (dcmqrscp).
// Targets: daemon/raw <= 1.05 per PACS (TCP_NODELAY); daemon stock/NODELAY <= 1.3; peak RSS
// < 100 MB.
// Usage: bench_retrieve [studies=6] [series=4] [instances=25] [runs=3] [lanes=2] [big=2000]
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common.hpp"

using namespace p2x;
using namespace p2x::bench;

namespace {

// The pusher first asks XNAT whether the session exists; failing that lookup (503, transient)
// makes it back off before it zips anything. Called right after submit (whose pre-flight
// lists the project's sessions), well before the first study is retrieved.
void block_pushes(test::XnatStandin& xnat) {
  xnat.admin("POST", "/_admin/fail?count=1000000&status=503&path=/data/projects/PROJ/experiments");
}

double daemon_retrieve(Rig& rig, const std::vector<test::GeneratedStudy>& studies, int lanes,
                       const std::string& name, long* hwm_kb) {
  auto daemon = rig.make_daemon(name, lanes);
  daemon->start();
  const std::string csv = rig.dir() + "/" + name + ".csv";
  test::write_file(csv, accession_csv(studies, "_" + name));
  auto t0 = Clock::now();
  const int job = submit(*daemon, csv);
  block_pushes(rig.xnat());
  double s = wait_items(*daemon, job, kRetrievedOrLater, t0, 600);
  if (hwm_kb) {
    // Let validation finish too, so the figure covers retrieve + validate.
    wait_items(*daemon, job, {"validated", "pushing", "pushed", "verified"}, t0, 600, 100);
    *hwm_kb = proc_status_kb(daemon->pid(), "VmHWM");
  }
  json st = status(*daemon, job);
  if (st["instances"]["received"].get<long>() != st["instances"]["expected"].get<long>()) {
    throw std::runtime_error("daemon received " + st["instances"].dump());
  }
  daemon->stop();
  rig.xnat().admin("POST", "/_admin/clear_knobs");
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(rig.dir() + "/" + name);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int def) { return argc > i ? std::atoi(argv[i]) : def; };
  const int n_studies = arg(1, 6), n_series = arg(2, 4), n_inst = arg(3, 25), runs = arg(4, 3),
            lanes = arg(5, 2), big = arg(6, 2000);
  print_header("bench_retrieve");
  const std::string dir = test::make_temp_dir("p2x-bench-retrieve");
  int rc = 0;
  try {
    auto studies = test::generate(test::uniform_corpus(n_studies, n_series, n_inst, "MR", "RACC"),
                                  dir + "/data", 11);
    std::vector<std::string> files;
    for (const auto& s : studies) {
      auto f = s.files();
      files.insert(files.end(), f.begin(), f.end());
    }
    const double mb = static_cast<double>(total_bytes(files)) / 1e6;
    std::printf(
        "corpus: %zu studies, %zu instances (256x256 16-bit MR), %.1f MB; %d lanes "
        "(daemon max_associations = %d), median of %d runs\n",
        studies.size(), files.size(), mb, lanes, lanes, runs);

    struct Row {
      std::string pacs;
      double raw, daemon, sync, daemon_stock, raw_stock;
    };
    std::vector<Row> rows;
    for (auto kind : {test::PacsKind::Orthanc, test::PacsKind::Dcmqrscp}) {
      auto tl = Clock::now();
      Rig rig(dir, kind, files);
      std::printf("%s: started and loaded in %.1f s\n", test::to_string(kind), seconds_since(tl));
      std::vector<double> raw, ours, syncs, stock;
      for (int r = 0; r < runs; ++r) {
        const std::string tag = std::string(test::to_string(kind)) + std::to_string(r);
        double a = 0, b = 0, c = 0, sync = 0;
        // TCP_NODELAY PACS: raw and daemon, alternating which goes first.
        const auto nodelay_pair = [&] {
          rig.use_stock_pacs(false);
          if (r % 2 == 0) {
            a = raw_move(rig, studies, lanes, dir + "/raw-" + tag, &sync);
            b = daemon_retrieve(rig, studies, lanes, "d-" + tag, nullptr);
          } else {
            b = daemon_retrieve(rig, studies, lanes, "d-" + tag, nullptr);
            a = raw_move(rig, studies, lanes, dir + "/raw-" + tag, &sync);
          }
        };
        // Stock (Nagle-on) PACS: the daemon; before or after the pair, alternating too.
        const auto stock_run = [&] {
          rig.use_stock_pacs(true);
          c = daemon_retrieve(rig, studies, lanes, "s-" + tag, nullptr);
        };
        if (r % 2 == 0) {
          nodelay_pair();
          stock_run();
        } else {
          stock_run();
          nodelay_pair();
        }
        syncs.push_back(sync);
        test::remove_tree(dir + "/raw-" + tag);
        raw.push_back(a);
        ours.push_back(b);
        stock.push_back(c);
        std::printf(
            "  run %d: TCP_NODELAY PACS: raw %.3f s (+ fsync of its files afterwards "
            "%.3f s)  daemon %.3f s;  stock PACS: daemon %.3f s  (load %s)\n",
            r + 1, a, sync, b, c, load_average().c_str());
        std::fflush(stdout);
      }
      // What the raw tools pay against the stock PACS (storescp has TCP_NODELAY=1, which only
      // governs its own sends): once, it is slow.
      rig.use_stock_pacs(true);
      const double raw_stock = raw_move(rig, studies, lanes, dir + "/raw-stock", nullptr);
      test::remove_tree(dir + "/raw-stock");
      std::printf("  stock PACS: raw movescu+storescp %.3f s (once)  (load %s)\n", raw_stock,
                  load_average().c_str());
      rows.push_back({test::to_string(kind), median_of(raw), median_of(ours), median_of(syncs),
                      median_of(stock), raw_stock});
    }

    // Peak RSS with one big study.
    long hwm_kb = -1;
    double big_s = 0, big_mb = 0;
    if (big > 0) {
      auto big_studies =
          test::generate(test::uniform_corpus(1, 4, big / 4, "MR", "BIGACC"), dir + "/big", 13);
      auto big_files = big_studies[0].files();
      big_mb = static_cast<double>(total_bytes(big_files)) / 1e6;
      Rig rig(dir + "/bigrig", test::PacsKind::Dcmqrscp, big_files);
      big_s = daemon_retrieve(rig, big_studies, lanes, "d-big", &hwm_kb);
    }

    std::printf("\n%-9s %9s %12s %8s %16s %20s %15s %12s %16s\n", "PACS", "raw (s)", "daemon (s)",
                "ratio", "raw+fsync (s)", "daemon/(raw+fsync)", "stock daemon", "stock/NODELAY",
                "stock raw (s)");
    for (const auto& r : rows) {
      std::printf("%-9s %9.3f %12.3f %8.3f %16.3f %20.3f %15.3f %12.3f %16.3f\n", r.pacs.c_str(),
                  r.raw, r.daemon, r.daemon / r.raw, r.raw + r.sync, r.daemon / (r.raw + r.sync),
                  r.daemon_stock, r.daemon_stock / r.daemon, r.raw_stock);
    }
    for (const auto& r : rows) {
      const double ratio = r.daemon / r.raw;
      const double stock_ratio = r.daemon_stock / r.daemon;
      std::printf(
          "%s: daemon/raw retrieval %.3f (raw %.3f s, daemon %.3f s)   target <= 1.05   %s\n",
          r.pacs.c_str(), ratio, r.raw, r.daemon, ratio <= 1.05 ? "MET" : "MISSED");
      std::printf(
          "%s: daemon retrieval stock/NODELAY PACS %.3f (stock %.3f s, NODELAY %.3f s; "
          "raw tools from the stock PACS %.3f s)   target <= 1.3   %s\n",
          r.pacs.c_str(), stock_ratio, r.daemon_stock, r.daemon, r.raw_stock,
          stock_ratio <= 1.3 ? "MET" : "MISSED");
      std::printf(
          "RESULT retrieve_%s raw_s=%.3f daemon_s=%.3f ratio=%.3f inst_per_s_raw=%.0f "
          "inst_per_s_daemon=%.0f stock_daemon_s=%.3f stock_ratio=%.3f stock_raw_s=%.3f\n",
          r.pacs.c_str(), r.raw, r.daemon, ratio, static_cast<double>(files.size()) / r.raw,
          static_cast<double>(files.size()) / r.daemon, r.daemon_stock, stock_ratio, r.raw_stock);
    }
    if (big > 0) {
      std::printf(
          "daemon peak RSS (VmHWM) retrieving + validating one %d-instance study "
          "(%.0f MB, dcmqrscp, retrieved in %.2f s): %.1f MB   target < 100 MB   %s\n",
          big / 4 * 4, big_mb, big_s, static_cast<double>(hwm_kb) / 1024.0,
          hwm_kb >= 0 && hwm_kb < 100 * 1024 ? "MET" : "MISSED");
      std::printf("RESULT retrieve_big_rss_mb=%.1f\n", static_cast<double>(hwm_kb) / 1024.0);
    }
    std::printf("load average at the end: %s\n", load_average().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_retrieve: %s\n", e.what());
    rc = 1;
  }
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(dir);
  return rc;
}

// bench_small_studies: many small studies (chest X-rays and other one- or two-image studies make
// the per-study cost the limit, issue 23). `studies` studies of 2 series x 3 instances by
// accession, CSV to all verified through the daemon (max_associations = max_pushes = lanes),
// against the raw DCMTK tools doing the retrieval alone: findscu by accession + movescu of the
// study, `lanes` studies at once (same parallelism). The daemon runs against two stand-ins in
// the same run: the default one (each answer in one write, TCP_NODELAY) and one started with
// `--nagle` (headers and body in two writes, Nagle on: Python's http.server as it ships).
// Raw, daemon-nodelay and daemon-nagle alternate, rotating which goes first; medians of `runs`.
//
// Where the push lanes' time goes, from the stand-in's request log (tests/xnat_standin README,
// "Request log": each request's arrival, answer and own time `ms`, stand-in clock):
//  - XNAT's own time per study: the sum of `ms` over the requests about the study's session
//    (the session lookup before the upload, the import, the verification listings);
//  - the lanes' busy time per study, as XNAT sees it: from the arrival of the study's first
//    request to the answer of its last one (the last answer's way back to the daemon is not in
//    it); and, the other bound, push lanes x (last answer - first arrival of any study's
//    request), which counts a lane idle between studies as busy.
// Targets: daemon / raw <= 1.1 (each stand-in); XNAT's own time >= 80% of the lanes' busy time.
// Usage: bench_small_studies [studies=300] [runs=3] [lanes=2] [pacs=orthanc]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>

#include "common.hpp"

using namespace p2x;
using namespace p2x::bench;

namespace {

// What the stand-in's request log says about one daemon run.
struct XnatSide {
  double own_per_study_ms = 0;   // mean over the studies
  double span_per_study_ms = 0;  // mean first arrival -> last answer per study
  double phase_s = 0;            // first per-study arrival -> last answer, all studies
  std::size_t requests_per_study = 0;
};

// P2X_BENCH_REQUEST_LOG=DIR keeps each run's request log as DIR/<run>.json (where the time goes).
XnatSide xnat_side(const test::XnatStandin& xnat, std::size_t n_studies, const std::string& run) {
  const json log = xnat.admin("GET", "/_admin/requests")["requests"];
  if (const char* keep = std::getenv("P2X_BENCH_REQUEST_LOG"))
    test::write_file(std::string(keep) + "/" + run + ".json", log.dump(1));
  struct PerStudy {
    double own = 0, first = std::numeric_limits<double>::max(), last = 0;
    std::size_t n = 0;
  };
  std::map<std::string, PerStudy> per;
  double first = std::numeric_limits<double>::max(), last = 0;
  std::size_t requests = 0;
  for (const auto& r : log) {
    if (!r["session"].is_string()) continue;  // login, project checks: not a study's
    auto& p = per[r["session"].get<std::string>()];
    const double arrived = r["arrived"].get<double>(), answered = r["answered"].get<double>();
    p.own += r["ms"].get<double>();
    p.first = std::min(p.first, arrived);
    p.last = std::max(p.last, answered);
    ++p.n;
    ++requests;
    first = std::min(first, arrived);
    last = std::max(last, answered);
  }
  if (per.size() != n_studies)
    throw std::runtime_error("the stand-in's request log names " + std::to_string(per.size()) +
                             " sessions, not " + std::to_string(n_studies));
  XnatSide x;
  for (const auto& [session, p] : per) {
    x.own_per_study_ms += p.own;
    x.span_per_study_ms += (p.last - p.first) * 1e3;
  }
  const double n = static_cast<double>(n_studies);
  x.own_per_study_ms /= n;
  x.span_per_study_ms /= n;
  x.phase_s = last - first;
  x.requests_per_study = requests / n_studies;
  return x;
}

struct DaemonRun {
  double verified_s = 0, retrieved_s = 0;
  XnatSide xnat;
};

// A fresh daemon pushing to `xnat` (emptied first): submit until every item is verified; checks
// every instance verified and every session uploaded once.
DaemonRun daemon_run(Rig& rig, test::XnatStandin& xnat,
                     const std::vector<test::GeneratedStudy>& studies, int lanes,
                     const std::string& name) {
  xnat.admin("POST", "/_admin/reset");
  auto daemon =
      rig.make_daemon(name, lanes, json{{"xnat", {{"url", xnat.url()}, {"max_pushes", lanes}}}});
  daemon->start();
  const std::string csv = rig.dir() + "/" + name + ".csv";
  test::write_file(csv, accession_csv(studies));
  DaemonRun r;
  auto t0 = Clock::now();
  const int job = submit(*daemon, csv);
  r.retrieved_s = wait_items(*daemon, job, kRetrievedOrLater, t0, 900, 50);
  r.verified_s = wait_items(*daemon, job, {"verified"}, t0, 900, 50);
  const json st = status(*daemon, job);
  std::size_t n_files = 0;
  for (const auto& s : studies) n_files += static_cast<std::size_t>(s.instance_count());
  if (st["instances"]["verified"].get<std::size_t>() != n_files)
    throw std::runtime_error("verified " + st["instances"].dump());
  auto uploads = xnat.uploads_per_session();
  for (const auto& s : studies) {
    const std::string key = "PROJ/SUBJ_" + s.spec.patient_id + "/SESS_" + s.spec.accession;
    if (uploads[key] != 1)
      throw std::runtime_error(key + " uploaded " + std::to_string(uploads[key]) + " times");
  }
  daemon->stop();
  r.xnat = xnat_side(xnat, studies.size(), name);
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(rig.dir() + "/" + name);
  return r;
}

struct Medians {
  double raw = 0;
  std::map<std::string, double> verified, retrieved, own, span, phase;
  std::map<std::string, std::size_t> requests;
};

void report(const std::string& side, const Medians& m, int lanes, int n_studies) {
  const double ratio = m.verified.at(side) / m.raw;
  const double share = m.own.at(side) / m.span.at(side);
  const double phase_share = m.own.at(side) * 1e-3 * n_studies / (m.phase.at(side) * lanes);
  std::printf(
      "stand-in %s: daemon CSV -> all verified %.2f s (all retrieved %.2f s), raw "
      "find+move %.2f s: daemon/raw %.2f   target <= 1.1   %s\n",
      side.c_str(), m.verified.at(side), m.retrieved.at(side), m.raw, ratio,
      ratio <= 1.1 ? "MET" : "MISSED");
  std::printf(
      "stand-in %s: per study %zu requests, XNAT's own time %.1f ms, lane busy (first "
      "arrival -> last answer) %.1f ms: share %.0f%%   target >= 80%%   %s\n",
      side.c_str(), m.requests.at(side), m.own.at(side), m.span.at(side), 100 * share,
      share >= 0.8 ? "MET" : "MISSED");
  std::printf(
      "stand-in %s: push phase %.2f s x %d lanes, XNAT's own time %.0f%% of it (lower "
      "bound: a lane idle between studies counts as busy)\n",
      side.c_str(), m.phase.at(side), lanes, 100 * phase_share);
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int def) { return argc > i ? std::atoi(argv[i]) : def; };
  const int n_studies = arg(1, 300), runs = arg(2, 3), lanes = arg(3, 2);
  const std::string pacs_name = argc > 4 ? argv[4] : "orthanc";
  print_header("bench_small_studies");
  const std::string dir = test::make_temp_dir("p2x-bench-small");
  int rc = 0;
  try {
    auto specs = test::uniform_corpus(n_studies, 2, 3, "MR", "SACC");
    for (auto& s : specs) s.rows = s.cols = 128;
    auto studies = test::generate(specs, dir + "/data", 23);
    std::vector<std::string> files;
    for (const auto& s : studies) {
      auto f = s.files();
      files.insert(files.end(), f.begin(), f.end());
    }
    std::printf(
        "corpus: %zu studies x 2 series x 3 instances = %zu instances (128x128 16-bit "
        "MR), %.1f MB; PACS %s; %d lanes on both sides (daemon max_associations = "
        "max_pushes = %d); median of %d\n",
        studies.size(), files.size(), static_cast<double>(total_bytes(files)) / 1e6,
        pacs_name.c_str(), lanes, lanes, runs);
    Rig rig(dir, test::parse_pacs_kind(pacs_name), files);
    test::XnatStandin nagle(dir + "/xnat-nagle", {"admin:admin"}, {"PROJ"}, false, {"--nagle"});
    std::map<std::string, test::XnatStandin*> xnats{{"nodelay", &rig.xnat()}, {"nagle", &nagle}};
    std::vector<std::string> order{"raw", "nodelay", "nagle"};
    std::vector<double> raw;
    std::map<std::string, std::vector<double>> verified, retrieved, own, span, phase;
    std::map<std::string, std::size_t> requests;
    for (int r = 0; r < runs; ++r) {
      std::printf("  run %d:", r + 1);
      for (std::size_t i = 0; i < order.size(); ++i) {
        const std::string& v = order[(i + static_cast<std::size_t>(r)) % order.size()];
        if (v == "raw") {
          const std::string out = dir + "/raw-" + std::to_string(r);
          raw.push_back(raw_find_move(rig, studies, lanes, out));
          test::remove_tree(out);
          std::printf("  raw %.2f s", raw.back());
        } else {
          DaemonRun d = daemon_run(rig, *xnats[v], studies, lanes, v + std::to_string(r));
          verified[v].push_back(d.verified_s);
          retrieved[v].push_back(d.retrieved_s);
          own[v].push_back(d.xnat.own_per_study_ms);
          span[v].push_back(d.xnat.span_per_study_ms);
          phase[v].push_back(d.xnat.phase_s);
          requests[v] = d.xnat.requests_per_study;
          std::printf("  daemon-%s %.2f s (own %.1f ms, busy %.1f ms per study)", v.c_str(),
                      d.verified_s, d.xnat.own_per_study_ms, d.xnat.span_per_study_ms);
        }
        std::fflush(stdout);
      }
      std::printf("  (load %s)\n", load_average().c_str());
    }
    Medians m;
    m.raw = median_of(raw);
    for (const auto& v : {"nodelay", "nagle"}) {
      m.verified[v] = median_of(verified[v]);
      m.retrieved[v] = median_of(retrieved[v]);
      m.own[v] = median_of(own[v]);
      m.span[v] = median_of(span[v]);
      m.phase[v] = median_of(phase[v]);
      m.requests[v] = requests[v];
    }
    for (const auto& v : {"nodelay", "nagle"}) report(v, m, lanes, n_studies);
    for (const auto& v : {"nodelay", "nagle"}) {
      std::printf(
          "RESULT small_studies_%s studies=%d raw_s=%.3f daemon_s=%.3f ratio=%.3f "
          "retrieved_s=%.3f own_ms=%.2f busy_ms=%.2f share=%.3f\n",
          v, n_studies, m.raw, m.verified[v], m.verified[v] / m.raw, m.retrieved[v], m.own[v],
          m.span[v], m.own[v] / m.span[v]);
    }
    std::printf("load average at the end: %s\n", load_average().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_small_studies: %s\n", e.what());
    rc = 1;
  }
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(dir);
  return rc;
}

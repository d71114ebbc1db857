// bench_heavy: one study of more than 4 GiB (the site procedure's "complex data": raw PET, CBCT)
// through the whole daemon — C-MOVE from the test PACS, validation, the streamed ZIP64 upload
// to the XNAT stand-in, verification — as one job (issue 20, item 6).
// Reported: wall time from submit to verified; the push itself (the daemon's own log line:
// upload seconds); the daemon's peak RSS (VmHWM, target < 100 MB: nothing in the daemon may
// hold a study or a file of it in memory); and curl POSTing a ready stored zip of the same
// files to the same stand-in (the push's ratio to it). The stand-in (Python + pydicom) is the
// slowest part of the upload either way; the ratio compares like with like.
// Not a CI test: it needs ~25 GB of free disk (the generated study, the PACS's copy, the spool,
// the stand-in's archive and curl's zip) and several minutes.
// Usage: bench_heavy [gib=4.2] [pacs=orthanc|dcmqrscp]
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>

#include "common.hpp"
#include "support/process.hpp"

using namespace p2x;
using namespace p2x::bench;
namespace fs = std::filesystem;

namespace {

// Seconds of the upload from the daemon's log ("... (plan X s, upload Y s, Z MB/s)"); -1 if absent.
double upload_seconds(const std::string& log) {
  std::smatch m;
  if (std::regex_search(log, m, std::regex(R"(plan ([0-9.]+) s, upload ([0-9.]+) s)")))
    return std::stod(m[2]);
  return -1;
}

// One study of 1024x1024 16-bit PET-like slices (2 MiB each) in 4 series, `gib` GiB in all.
test::GeneratedStudy make_study(double gib, const std::string& dir) {
  const int per_series = static_cast<int>(gib * 1024.0 / 2.0 / 4.0) + 1;
  auto specs = test::uniform_corpus(1, 4, per_series, "PT", "HEAVY");
  specs[0].rows = specs[0].cols = 1024;
  return test::generate(specs, dir, 23).at(0);
}

}  // namespace

int main(int argc, char** argv) {
  const double gib = argc > 1 ? std::atof(argv[1]) : 4.2;
  const auto kind = argc > 2 && std::string(argv[2]) == "dcmqrscp" ? test::PacsKind::Dcmqrscp
                                                                   : test::PacsKind::Orthanc;
  print_header("bench_heavy");
  const std::string dir = test::make_temp_dir("p2x-bench-heavy");
  int rc = 0;
  try {
    auto t_gen = Clock::now();
    const auto study = make_study(gib, dir + "/data");
    const double bytes = static_cast<double>(total_bytes(study.files()));
    std::printf("study: %d instances, %.2f GiB (generated in %.0f s)\n", study.instance_count(),
                bytes / (1 << 30), seconds_since(t_gen));
    auto t_load = Clock::now();
    Rig rig(dir + "/rig", kind, study.files());
    std::printf("PACS loaded in %.0f s (load %s)\n", seconds_since(t_load), load_average().c_str());

    auto daemon = rig.make_daemon("heavy", 2);
    daemon->start();
    const std::string csv = rig.dir() + "/heavy.csv";
    test::write_file(csv, accession_csv({study}));
    auto t0 = Clock::now();
    const int job = submit(*daemon, csv);
    const double retrieved_s = wait_items(*daemon, job, kRetrievedOrLater, t0, 7200, 500);
    const double verified_s = wait_items(*daemon, job, {"verified"}, t0, 7200, 500);
    const long hwm_kb = proc_status_kb(daemon->pid(), "VmHWM");
    const json st = status(*daemon, job);
    if (st["instances"]["verified"].get<int>() != study.instance_count())
      throw std::runtime_error("verified " + st["instances"].dump());
    const double push_s = upload_seconds(daemon->log());
    daemon->stop();
    test::remove_tree(rig.dir() + "/heavy");  // the spool is empty; the store goes too

    // curl with a ready zip of the same files (made outside the timing), to the same stand-in.
    const std::string study_dir = fs::path(study.files()[0]).parent_path().parent_path().string();
    const std::string zip = dir + "/curl.zip";
    make_stored_zip(study_dir, zip, dir + "/curl.log");
    const double curl_s =
        curl_import(rig.xnat().url(), zip, "SUBJ_CURL", "SESS_CURL", dir + "/curl.log");
    fs::remove(zip);

    std::printf("\n%-28s %10s\n", "", "seconds");
    std::printf("%-28s %10.1f\n", "submit -> retrieved", retrieved_s);
    std::printf("%-28s %10.1f\n", "submit -> verified", verified_s);
    std::printf("%-28s %10.1f  (%.1f MB/s)\n", "daemon push (upload)", push_s,
                bytes / 1e6 / push_s);
    std::printf("%-28s %10.1f  (%.1f MB/s)\n", "curl, ready zip", curl_s, bytes / 1e6 / curl_s);
    std::printf(
        "RESULT heavy gib=%.2f instances=%d retrieved_s=%.1f verified_s=%.1f push_s=%.1f "
        "curl_s=%.1f ratio=%.3f rss_mb=%.1f\n",
        bytes / (1 << 30), study.instance_count(), retrieved_s, verified_s, push_s, curl_s,
        push_s / curl_s, static_cast<double>(hwm_kb) / 1024.0);
    std::printf("daemon push / curl: %.3f; daemon peak RSS %.1f MB: target < 100 MB %s\n",
                push_s / curl_s, static_cast<double>(hwm_kb) / 1024.0,
                hwm_kb > 0 && hwm_kb < 100 * 1024 ? "MET" : "MISSED");
    std::printf("load average at the end: %s\n", load_average().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_heavy: %s\n", e.what());
    rc = 1;
  }
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(dir);
  return rc;
}

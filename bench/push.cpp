// bench_push: upload speed and memory of lib/xnat's Client::import_files against the XNAT
// stand-in, for one study of N instances and one of 2N (256x256 16-bit MR, ~131 kB each).
// Each upload runs in a fresh child process (this program re-executed with --child), so its
// peak RSS (VmHWM) is the upload's alone, not the corpus generator's.
// Baseline: curl POSTing a ready-made stored zip of the same files to the same endpoint (the
// stand-in parses every file with pydicom, so it bounds both).
// The daemon uploads the files validation accepted, whose sizes and CRC-32s validation recorded
// in the pass that parsed them (issue 21): so the child computes those first, untimed, as
// validation would, and times Client::import_files alone (streamed upload, each file's bytes
// checked against its CRC as it goes; no CRC pass before the request). The daemon and curl
// alternate which goes first in each run; figures are medians over the runs.
// Then the same pair against a discarding HTTP sink (bench/http_sink.py: reads the body and
// throws it away), where the time is the client's own (reading files, CRCs, socket writes) and
// not the Python stand-in's ingest, which is noisy from run to run.
// Targets: import_files <= 1.05x curl (stand-in); against the sink, the client's own cost
// <= 0.5x curl's at 159 MB (issue 21); peak RSS < 100 MB and not growing with study size.
// Usage: bench_push [instances=600] [runs=5]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <thread>

#include "common.hpp"
#include "support/process.hpp"
#include "xnat/xnat.hpp"
#include "xnat/zip_writer.hpp"

using namespace p2x;
using namespace p2x::bench;
namespace fs = std::filesystem;

namespace {

// Child: one import, then "CHILD seconds=.. hwm_kb=.." on stdout.
int child(const std::string& url, const std::string& study_dir, const std::string& session) {
  try {
    xnat::Settings s;
    s.url = url;
    s.timeout_s = 120;
    xnat::Client client(s, {"admin", "admin"});
    client.login();
    std::vector<xnat::StudyFile> files;  // what validation records (untimed)
    for (const auto& e : xnat::detail::plan_zip(study_dir).entries)
      files.push_back({e.path, e.name, e.size, e.crc});
    auto t0 = Clock::now();
    client.import_files("PROJ", "SUBJ_PUSH", session, files, xnat::ImportOptions{});
    const double secs = seconds_since(t0);
    std::printf("CHILD seconds=%.4f hwm_kb=%ld\n", secs, proc_status_kb(getpid(), "VmHWM"));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
    return 1;
  }
}

struct Upload {
  double seconds = 0, zip_s = -1, upload_s = -1;
  long hwm_kb = -1;
};

Upload run_child(const std::string& self, const std::string& url, const std::string& study_dir,
                 const std::string& session, const std::string& log) {
  test::SpawnOptions o;
  o.log_path = log;
  { std::ofstream(log, std::ios::trunc); }
  int rc = test::run({self, "--child", url, study_dir, session}, o, 600000);
  std::string out = test::file_tail(log, 1 << 16);
  if (rc != 0) throw std::runtime_error("push child failed: " + out);
  Upload u;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(CHILD seconds=([0-9.]+) hwm_kb=(-?[0-9]+))"))) {
    u.seconds = std::stod(m[1]);
    u.hwm_kb = std::stol(m[2]);
  } else {
    throw std::runtime_error("push child printed no result: " + out);
  }
  if (std::regex_search(out, m,
                        std::regex(R"((?:zip|crc|plan) ([0-9.]+) s, upload ([0-9.]+) s)"))) {
    u.zip_s = std::stod(m[1]);
    u.upload_s = std::stod(m[2]);
  }
  return u;
}

double curl_upload(const std::string& url, const std::string& study_dir, const std::string& session,
                   const std::string& work) {
  const std::string zip = work + "/" + session + ".zip";
  make_stored_zip(study_dir, zip, work + "/curl.log");
  double s = curl_import(url, zip, "SUBJ_PUSH", session, work + "/curl.log");
  fs::remove(zip);
  return s;
}

struct Row {
  int instances;
  double mb, ours_s, curl_s, zip_s, upload_s;
  long hwm_kb;
};

// `runs` alternating pairs (import_files in a child, curl) of one study to `url`; medians.
Row measure(const std::string& self, const std::string& url, const std::string& what,
            const std::string& study_dir, int instances, double mb, int runs,
            const std::string& dir, int& n_session) {
  std::vector<double> ours, curl, zip, up;
  long hwm = 0;
  for (int r = 0; r < runs; ++r) {
    // Alternate which goes first so neither always meets a warmer server.
    Upload u;
    double c = 0;
    if (r % 2 == 1) c = curl_upload(url, study_dir, "SESS_C" + std::to_string(++n_session), dir);
    u = run_child(self, url, study_dir, "SESS_P" + std::to_string(++n_session), dir + "/child.log");
    if (r % 2 == 0) c = curl_upload(url, study_dir, "SESS_C" + std::to_string(++n_session), dir);
    std::printf(
        "  %s, %d instances run %d: import_files %.2f s (plan %.2f + upload %.2f), "
        "peak RSS %.1f MB; curl %.2f s (load %s)\n",
        what.c_str(), instances, r + 1, u.seconds, u.zip_s, u.upload_s,
        static_cast<double>(u.hwm_kb) / 1024.0, c, load_average().c_str());
    std::fflush(stdout);
    ours.push_back(u.seconds);
    curl.push_back(c);
    zip.push_back(u.zip_s);
    up.push_back(u.upload_s);
    hwm = std::max(hwm, u.hwm_kb);
  }
  return {instances, mb, median_of(ours), median_of(curl), median_of(zip), median_of(up), hwm};
}

// bench/http_sink.py on a free port, stopped on scope exit.
struct HttpSink {
  std::uint16_t port = test::free_port();
  pid_t pid = -1;
  explicit HttpSink(const std::string& log) {
    test::SpawnOptions o;
    o.log_path = log;
    pid = test::spawn(
        {"/usr/bin/python3", std::string(P2X_BENCH_DIR) + "/http_sink.py", std::to_string(port)},
        o);
    for (int i = 0; test::file_tail(log, 64).find("ready") == std::string::npos; ++i) {
      if (i > 200) throw std::runtime_error("http_sink.py did not start; see " + log);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ~HttpSink() { test::stop_pid(pid, 3000); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--child") return child(argv[2], argv[3], argv[4]);
  const int instances = argc > 1 ? std::atoi(argv[1]) : 600;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  print_header("bench_push");
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string dir = test::make_temp_dir("p2x-bench-push");
  int rc = 0;
  try {
    test::XnatStandin xnat(dir + "/xnat", {"admin:admin"}, {"PROJ"});
    HttpSink sink(dir + "/sink.log");
    std::vector<Row> rows, sink_rows;
    int n_session = 0;
    for (int mult : {1, 2}) {
      const int n = instances * mult;
      auto studies =
          test::generate(test::uniform_corpus(1, 4, n / 4, "MR", "PUSH" + std::to_string(mult)),
                         dir + "/data" + std::to_string(mult), 17);
      const auto& st = studies[0];
      const double mb = static_cast<double>(total_bytes(st.files())) / 1e6;
      const std::string study_dir = fs::path(st.files()[0]).parent_path().parent_path().string();
      rows.push_back(measure(self, xnat.url(), "stand-in", study_dir, st.instance_count(), mb, runs,
                             dir, n_session));
      // Keep the stand-in's archive from filling the disk between sizes.
      xnat.admin("POST", "/_admin/reset");
      sink_rows.push_back(measure(self, sink.url(), "sink", study_dir, st.instance_count(), mb,
                                  runs, dir, n_session));
      test::remove_tree(dir + "/data" + std::to_string(mult));
    }
    std::printf(
        "\nimport = streamed upload of validated files (CRCs known, each checked as sent); "
        "curl = upload of a ready zip (medians of %d)\n",
        runs);
    std::printf("%-10s %8s %11s %8s %9s %10s %9s %12s %14s\n", "instances", "MB", "import (s)",
                "MB/s", "plan (s)", "upload (s)", "curl (s)", "import/curl", "peak RSS (MB)");
    for (const auto& r : rows) {
      std::printf("%-10d %8.1f %11.2f %8.1f %9.2f %10.2f %9.2f %12.2f %14.1f\n", r.instances, r.mb,
                  r.ours_s, r.mb / r.ours_s, r.zip_s, r.upload_s, r.curl_s, r.ours_s / r.curl_s,
                  static_cast<double>(r.hwm_kb) / 1024.0);
      std::printf(
          "RESULT push_%d mb=%.1f seconds=%.2f mb_per_s=%.1f crc_s=%.2f upload_s=%.2f "
          "curl_s=%.2f ratio=%.3f rss_mb=%.1f\n",
          r.instances, r.mb, r.ours_s, r.mb / r.ours_s, r.zip_s, r.upload_s, r.curl_s,
          r.ours_s / r.curl_s, static_cast<double>(r.hwm_kb) / 1024.0);
      std::printf("import_files / curl, %d instances: %.3f: target <= 1.05 %s\n", r.instances,
                  r.ours_s / r.curl_s, r.ours_s <= 1.05 * r.curl_s ? "MET" : "MISSED");
    }
    std::printf(
        "\nthe client's own cost: the same against a discarding HTTP sink (medians of %d)\n", runs);
    std::printf("%-10s %8s %11s %8s %9s %10s %9s %12s\n", "instances", "MB", "import (s)", "MB/s",
                "plan (s)", "upload (s)", "curl (s)", "import/curl");
    for (const auto& r : sink_rows) {
      std::printf("%-10d %8.1f %11.2f %8.1f %9.2f %10.2f %9.2f %12.2f\n", r.instances, r.mb,
                  r.ours_s, r.mb / r.ours_s, r.zip_s, r.upload_s, r.curl_s, r.ours_s / r.curl_s);
      std::printf(
          "RESULT push_sink_%d mb=%.1f seconds=%.3f crc_s=%.3f upload_s=%.3f curl_s=%.3f "
          "ratio=%.3f\n",
          r.instances, r.mb, r.ours_s, r.zip_s, r.upload_s, r.curl_s, r.ours_s / r.curl_s);
      if (r.mb > 150)
        std::printf("client's own cost / curl's, %.0f MB: %.3f: target <= 0.5 %s\n", r.mb,
                    r.ours_s / r.curl_s, r.ours_s <= 0.5 * r.curl_s ? "MET" : "MISSED");
    }
    const double a = static_cast<double>(rows[0].hwm_kb) / 1024.0;
    const double b = static_cast<double>(rows[1].hwm_kb) / 1024.0;
    const bool flat = b <= a * 1.10 + 2.0;
    std::printf(
        "peak RSS: %.1f MB -> %.1f MB for 2x the data: target < 100 MB %s, independent of "
        "size %s\n",
        a, b, std::max(a, b) < 100 ? "MET" : "MISSED", flat ? "MET" : "MISSED");
    std::printf("load average at the end: %s\n", load_average().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_push: %s\n", e.what());
    rc = 1;
  }
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(dir);
  return rc;
}

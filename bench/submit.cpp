// bench_submit: `pacs2xnat submit` of a 100k-row accession CSV, end to end (CLI start to exit),
// then `status JOB` over the daemon's socket 1000 times (p50/p99/max), plus a few `pacs2xnat
// status` CLI runs. The PACS port is closed (nothing listens), so the retrieval workers fail to
// connect, open the circuit breaker and let items wait: the daemon is busy as in real life.
// Targets: submit < 2 s; status p99 < 50 ms.
// Usage: bench_submit [rows=100000] [status_calls=1000]
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "common.hpp"
#include "ipc/client.hpp"

using namespace p2x;
using namespace p2x::bench;

int main(int argc, char** argv) {
  const int rows = argc > 1 ? std::atoi(argv[1]) : 100000;
  const int calls = argc > 2 ? std::atoi(argv[2]) : 1000;
  print_header("bench_submit");
  const std::string dir = test::make_temp_dir("p2x-bench-submit");
  int rc = 0;
  try {
    test::XnatStandin xnat(dir + "/xnat", {"admin:admin"}, {"PROJ"});
    const std::uint16_t closed_port = test::free_port();  // nothing listens here
    test::Daemon daemon(dir, json{{"pacs",
                                   {{{"name", "testpacs"},
                                     {"ae_title", "NOPACS"},
                                     {"host", "127.0.0.1"},
                                     {"port", closed_port}}}},
                                  {"xnat", {{"url", xnat.url()}}},
                                  {"limits", {{"spool_min_free_mb", 10}}},
                                  {"log_level", "info"}});
    daemon.start();

    std::ostringstream csv;
    csv << "Accession Number,Subject,Session\n";
    char line[96];
    for (int i = 1; i <= rows; ++i) {
      std::snprintf(line, sizeof line, "ACC%07d,SUBJ%07d,SESS%07d\n", i, i, i);
      csv << line;
    }
    const std::string csv_path = dir + "/accessions.csv";
    test::write_file(csv_path, csv.str());
    std::printf("CSV: %d rows, %.1f MB\n", rows, static_cast<double>(csv.str().size()) / 1e6);

    auto t0 = Clock::now();
    const int job = submit(daemon, csv_path);
    const double submit_s = seconds_since(t0);
    json st = status(daemon, job);
    if (st.value("total", 0) != rows) throw std::runtime_error("job has " + st.dump());
    std::printf("submit (CLI, end to end): %.3f s   target < 2 s   %s\n", submit_s,
                submit_s < 2.0 ? "MET" : "MISSED");

    Stats s = time_status_calls(daemon.socket(), job, calls);
    std::printf(
        "status over the socket x%zu: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms"
        "   target p99 < 50 ms   %s\n",
        s.n, s.p50, s.p90, s.p99, s.max, s.p99 < 50 ? "MET" : "MISSED");

    std::vector<double> cli_ms;
    for (int i = 0; i < 50; ++i) {
      auto t = Clock::now();
      auto r = daemon.cli({"status", std::to_string(job)});
      cli_ms.push_back(seconds_since(t) * 1e3);
      if (r.exit_code != 0) throw std::runtime_error("pacs2xnat status: " + r.err);
    }
    Stats c = stats_of(cli_ms);
    std::printf("pacs2xnat status (CLI process) x%zu: p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", c.n,
                c.p50, c.p99, c.max);
    st = status(daemon, job);
    std::printf("job state during the run: %s; daemon peak RSS %.1f MB; load average %s\n",
                st["counts"].dump().c_str(),
                static_cast<double>(proc_status_kb(daemon.pid(), "VmHWM")) / 1024.0,
                load_average().c_str());
    std::printf("RESULT submit_s=%.3f status_p50_ms=%.2f status_p99_ms=%.2f status_max_ms=%.2f\n",
                submit_s, s.p50, s.p99, s.max);
    daemon.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_submit: %s\n", e.what());
    rc = 1;
  }
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(dir);
  return rc;
}

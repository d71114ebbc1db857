// bench_web: the web door's cost.
// 1. With 1,000,000 items in the store (one job, a mix of states), `calls` requests each of
//    GET /metrics and of the job page's data (GET /api/jobs/<id>?offset=0&limit=100, what
//    app.js polls), and of the page itself (GET /jobs/<id>); target p99 < 50 ms for /metrics
//    and the job page. Also the list (/api/jobs) and a deep page and a state filter (no target).
// 2. A whole import (bench_e2e's corpus shape, smaller) through a daemon without the web door
//    vs a daemon with it whose job page is polled every second by 10 logged-in clients,
//    `runs` times alternating which goes first; medians; target with/without <= 1.05.
// Usage: bench_web [items=1000000] [calls=1000] [studies=24] [series=5] [instances=25] [runs=5]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common.hpp"
#include "store/store.hpp"
#include "web_client.hpp"

using namespace p2x;
using namespace p2x::bench;
namespace fs = std::filesystem;

namespace {

// One job of n items: the first fifth verified, 100 failed, the rest queued.
std::int64_t build_store(const std::string& db_path, int n_items) {
  store::Store st(db_path);
  store::NewJob job;
  job.project = "PROJ";
  job.pacs = "testpacs";
  job.csv_name = "big.csv";
  char buf[64];
  for (int i = 1; i <= n_items; ++i) {
    store::NewItem it;
    it.row = i;
    it.line = i + 1;
    it.kind = p2x::domain::RowKind::Accession;
    std::snprintf(buf, sizeof buf, "BIG%07d", i);
    it.accession = buf;
    it.subject = std::string("SUBJ_") + buf;
    it.session = std::string("SESS_") + buf;
    job.items.push_back(std::move(it));
  }
  const std::int64_t id = st.create_job(job);
  job = store::NewJob{};
  using S = store::ItemState;
  for (const auto& it : st.items_page(id, std::nullopt, 0, n_items / 5 + 100)) {
    if (it.row > n_items / 5) {
      store::ItemPatch p;
      p.last_error = "synthetic failure for the benchmark";
      st.transition(it.id, S::Queued, S::Failed, "bench", p);
      continue;
    }
    for (auto [a, b] : {std::pair{S::Queued, S::Querying},
                        {S::Querying, S::Retrieving},
                        {S::Retrieving, S::Retrieved},
                        {S::Retrieved, S::Validating},
                        {S::Validating, S::Validated},
                        {S::Validated, S::Pushing},
                        {S::Pushing, S::Pushed},
                        {S::Pushed, S::Verifying},
                        {S::Verifying, S::Verified}}) {
      if (!st.transition(it.id, a, b, "bench")) throw std::runtime_error("transition refused");
    }
  }
  return id;
}

Stats time_gets(test::WebClient& c, const std::string& target, int calls) {
  std::vector<double> ms;
  for (int i = 0; i < calls; ++i) {
    const auto t0 = Clock::now();
    const auto r = c.get(target);
    ms.push_back(seconds_since(t0) * 1000.0);
    if (r.status != 200) throw std::runtime_error(target + " answered " + std::to_string(r.status));
  }
  return stats_of(ms);
}

void report(const std::string& what, const Stats& s, bool target) {
  std::printf("%-44s p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %6.2f ms%s\n", what.c_str(),
              s.p50, s.p90, s.p99, s.max,
              target
                  ? (s.p99 < 50 ? "   target p99 < 50 ms   MET" : "   target p99 < 50 ms   MISSED")
                  : "");
}

void big_store(const std::string& dir, int n_items, int calls) {
  auto tb = Clock::now();
  const std::string build_dir = fs::is_directory("/dev/shm")
                                    ? "/dev/shm/" + fs::path(dir).filename().string()
                                    : dir + "/build";
  fs::create_directories(build_dir);
  const std::int64_t job = build_store(build_dir + "/pacs2xnat.db", n_items);
  fs::create_directories(dir + "/big/state");
  fs::copy_file(build_dir + "/pacs2xnat.db", dir + "/big/state/pacs2xnat.db");
  test::remove_tree(build_dir);
  std::printf("store: one job of %d items (%.0f MB, built in %.1f s)\n", n_items,
              static_cast<double>(fs::file_size(dir + "/big/state/pacs2xnat.db")) / 1e6,
              seconds_since(tb));
  test::XnatStandin xnat(dir + "/xnat", {"admin:admin"}, {"PROJ"});
  const std::uint16_t port = test::free_port();
  test::Daemon daemon(
      dir + "/big",
      json{{"pacs",
            {{{"name", "testpacs"},
              {"ae_title", "NOPACS"},
              {"host", "127.0.0.1"},
              {"port", test::free_port()}}}},
           {"xnat", {{"url", xnat.url()}}},
           {"limits", {{"spool_min_free_mb", 10}}},
           {"web", {{"listen", "127.0.0.1:" + std::to_string(port)}, {"admins", {"admin"}}}},
           {"log_level", "info"}});
  daemon.start();
  test::WebClient c(port);
  if (c.login("admin", "admin").status != 303) throw std::runtime_error("login failed");
  const std::string j = std::to_string(job);
  std::printf("load before: %s\n", load_average().c_str());
  report("GET /metrics", time_gets(c, "/metrics", calls), true);
  report("GET /api/jobs/" + j + "?offset=0&limit=100 (page data)",
         time_gets(c, "/api/jobs/" + j + "?offset=0&limit=100", calls), true);
  report("GET /jobs/" + j + " (page)", time_gets(c, "/jobs/" + j, calls), true);
  report("GET /api/jobs (list)", time_gets(c, "/api/jobs", calls), false);
  report("GET ...?state=failed&limit=100",
         time_gets(c, "/api/jobs/" + j + "?state=failed&limit=100", calls / 10), false);
  report("GET ...?offset=500000&limit=100 (deep page)",
         time_gets(c, "/api/jobs/" + j + "?offset=500000&limit=100", calls / 10), false);
  std::printf("load after: %s\n", load_average().c_str());
  daemon.stop();
}

// One import; with `pollers` logged-in clients polling the job page's data every second.
// `*polls` is how many page requests they made meanwhile.
double import_once(Rig& rig, const std::vector<test::GeneratedStudy>& studies,
                   const std::string& name, int pollers, long* poll_count) {
  const std::uint16_t port = test::free_port();
  json extra = json::object();
  if (pollers > 0)
    extra["web"] = {{"listen", "127.0.0.1:" + std::to_string(port)}, {"admins", {"admin"}}};
  auto daemon = rig.make_daemon(name, 2, extra);
  daemon->start();
  std::atomic<int> job{0};
  std::atomic<bool> done{false};
  std::atomic<long> polls{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < pollers; ++i) {
    clients.emplace_back([&, port] {
      test::WebClient c(port);
      c.login("admin", "admin");
      while (!done) {
        const int id = job.load();
        c.get(id ? "/api/jobs/" + std::to_string(id) + "?offset=0&limit=100" : "/api/jobs");
        ++polls;
        for (int t = 0; t < 20 && !done; ++t)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  const std::string csv = rig.dir() + "/" + name + ".csv";
  test::write_file(csv, accession_csv(studies, "_" + name));
  const auto t0 = Clock::now();
  job = submit(*daemon, csv);
  const double s = wait_items(*daemon, job, {"verified"}, t0, 900, 50);
  done = true;
  for (auto& t : clients) t.join();
  daemon->stop();
  *poll_count = polls.load();
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(rig.dir() + "/" + name);
  return s;
}

void import_with_and_without(const std::string& dir, int n_studies, int n_series, int n_inst,
                             int runs) {
  auto studies = test::generate(test::uniform_corpus(n_studies, n_series, n_inst, "MR", "WACC"),
                                dir + "/data", 23);
  std::vector<std::string> files;
  for (const auto& s : studies) {
    auto f = s.files();
    files.insert(files.end(), f.begin(), f.end());
  }
  std::printf("corpus: %zu studies, %zu instances, %.1f MB (Orthanc)\n", studies.size(),
              files.size(), static_cast<double>(total_bytes(files)) / 1e6);
  Rig rig(dir, test::PacsKind::Orthanc, files);
  std::vector<double> with, without;
  for (int r = 0; r < runs; ++r) {
    for (int side = 0; side < 2; ++side) {
      const bool web = (side == 0) == (r % 2 == 1);
      long polls = 0;
      const double s = import_once(rig, studies, (web ? "web" : "plain") + std::to_string(r),
                                   web ? 10 : 0, &polls);
      (web ? with : without).push_back(s);
      std::printf("  run %d: %-30s %.2f s", r + 1,
                  web ? "web door, 10 clients polling:" : "no web door:", s);
      if (web) std::printf(" (%ld page polls)", polls);
      std::printf(" (load %s)\n", load_average().c_str());
      std::fflush(stdout);
    }
  }
  const double ratio = median_of(with) / median_of(without);
  std::printf(
      "import CSV -> verified, median of %d: with the polled web door %.2f s, without "
      "%.2f s, ratio %.3f   target <= 1.05   %s\n",
      runs, median_of(with), median_of(without), ratio, ratio <= 1.05 ? "MET" : "MISSED");
  std::printf("RESULT web_e2e with_s=%.2f without_s=%.2f ratio=%.3f\n", median_of(with),
              median_of(without), ratio);
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int def) { return argc > i ? std::atoi(argv[i]) : def; };
  const int items = arg(1, 1000000), calls = arg(2, 1000), studies = arg(3, 24), series = arg(4, 5),
            instances = arg(5, 25), runs = arg(6, 5);
  print_header("bench_web");
  const std::string dir = test::make_temp_dir("p2x-bench-web");
  int rc = 0;
  try {
    if (items > 0) big_store(dir, items, calls);
    if (studies > 0) import_with_and_without(dir, studies, series, instances, runs);
    std::printf("load average at the end: %s\n", load_average().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_web: %s\n", e.what());
    rc = 1;
  }
  if (!std::getenv("P2X_KEEP_BENCH_DIR")) test::remove_tree(dir);
  return rc;
}

#include "common.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include "ipc/client.hpp"
#include "support/process.hpp"

namespace p2x::bench {

namespace fs = std::filesystem;

const std::vector<std::string> kRetrievedOrLater{"retrieved", "validating", "validated",
                                                 "pushing",   "pushed",     "verified"};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double p) {
    auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.p50 = rank(0.50);
  s.p90 = rank(0.90);
  s.p99 = rank(0.99);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  return s;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

long proc_status_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

void print_header(const std::string& title) {
  // Line-buffered even into a pipe: children that reopen stdout must not flush our lines twice.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  std::printf("== %s ==\n%s, %ld cores, load average %s\n", title.c_str(), when,
              sysconf(_SC_NPROCESSORS_ONLN), load_average().c_str());
  std::fflush(stdout);
}

std::uintmax_t total_bytes(const std::vector<std::string>& files) {
  std::uintmax_t n = 0;
  for (const auto& f : files) n += fs::file_size(f);
  return n;
}

std::size_t count_files(const std::string& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) ++n;
  }
  return n;
}

std::string accession_csv(const std::vector<test::GeneratedStudy>& studies,
                          const std::string& suffix) {
  std::ostringstream s;
  s << "Accession Number,Subject,Session\n";
  for (const auto& st : studies) {
    s << st.spec.accession << ",SUBJ_" << st.spec.patient_id << ",SESS_" << st.spec.accession
      << suffix << "\n";
  }
  return s.str();
}

Rig::Rig(const std::string& dir, test::PacsKind kind, const std::vector<std::string>& files)
    : Rig(dir, kind, files, test::free_port(), test::free_port()) {}

void Rig::use_stock_pacs(bool stock) {
  if (pacs_->stock() == stock) return;
  pacs_->stop();
  pacs_->set_stock(stock);
  pacs_->start();
}

Rig::Rig(const std::string& dir, test::PacsKind kind, const std::vector<std::string>& files,
         std::uint16_t our_port, std::uint16_t raw_port, std::vector<test::MoveDestination> dests)
    : dir_(dir), our_port_(our_port), raw_port_(raw_port) {
  if (dests.empty()) dests = {{kOurAe, our_port_}, {kRawAe, raw_port_}};
  pacs_ = std::make_unique<test::PacsFixture>(kind, dir + "/pacs-" + test::to_string(kind),
                                              std::move(dests));
  pacs_->start();
  if (!files.empty()) pacs_->load(files);
  xnat_ = std::make_unique<test::XnatStandin>(dir + "/xnat-" + test::to_string(kind),
                                              std::vector<std::string>{"admin:admin"},
                                              std::vector<std::string>{"PROJ"});
}

Rig::~Rig() {
  xnat_.reset();
  if (pacs_) pacs_->stop();
}

std::unique_ptr<test::Daemon> Rig::make_daemon(const std::string& name, int max_associations,
                                               const json& extra) {
  std::string d = dir_ + "/" + name;
  fs::create_directories(d);
  json cfg{{"ae_title", kOurAe},
           {"storage_port", our_port_},
           {"pacs",
            {{{"name", "testpacs"},
              {"ae_title", pacs_->ae_title()},
              {"host", "127.0.0.1"},
              {"port", pacs_->port()},
              {"retrieve", "move"},
              {"max_associations", max_associations}}}},
           {"xnat", {{"url", xnat_->url()}}},
           {"limits", {{"spool_min_free_mb", 10}}},
           {"log_level",
            std::getenv("P2X_BENCH_LOG_LEVEL") ? std::getenv("P2X_BENCH_LOG_LEVEL") : "info"}};
  cfg.merge_patch(extra);
  return std::make_unique<test::Daemon>(d, cfg);
}

int submit(const test::Daemon& daemon, const std::string& csv_path, const std::string& project) {
  auto r = daemon.cli({"submit", csv_path, "--project", project, "--pacs", "testpacs", "--json"});
  if (r.exit_code != 0) {
    throw std::runtime_error("submit failed (exit " + std::to_string(r.exit_code) + "): " + r.err +
                             r.out);
  }
  return json::parse(r.out).at("job").get<int>();
}

json items(const test::Daemon& daemon, int job) {
  json r = ipc::call(daemon.socket(), "items", json{{"job", job}}, 30);
  if (!r.value("ok", false)) throw std::runtime_error("items: " + r.dump());
  return r["result"]["items"];
}

json status(const test::Daemon& daemon, int job) {
  json r = ipc::call(daemon.socket(), "status", json{{"job", job}}, 30);
  if (!r.value("ok", false)) throw std::runtime_error("status: " + r.dump());
  return r["result"]["jobs"][0];
}

double wait_items(const test::Daemon& daemon, int job, const std::vector<std::string>& states,
                  Clock::time_point t0, int timeout_s, int poll_ms) {
  for (;;) {
    json its = items(daemon, job);
    bool all = !its.empty();
    for (const auto& it : its) {
      const std::string st = it.value("state", "");
      if (st == "failed" || st == "cancelled") {
        throw std::runtime_error("item " + it.dump() + " ended " + st + "\ndaemon log tail:\n" +
                                 test::file_tail(daemon.state_dir() + "/../daemon.log", 4000));
      }
      if (std::find(states.begin(), states.end(), st) == states.end()) all = false;
    }
    if (all) return seconds_since(t0);
    if (seconds_since(t0) > timeout_s) {
      throw std::runtime_error("job " + std::to_string(job) + " not done after " +
                               std::to_string(timeout_s) + " s: " + its.dump() +
                               "\ndaemon log tail:\n" +
                               test::file_tail(daemon.state_dir() + "/../daemon.log", 4000));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

double fsync_tree(const std::string& dir) {
  auto t0 = Clock::now();
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  return seconds_since(t0);
}

std::vector<std::string> study_keys(const std::string& study_uid) {
  return {"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + study_uid};
}

std::vector<std::string> series_keys(const std::string& study_uid, const std::string& series_uid) {
  return {"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + study_uid,
          "SeriesInstanceUID=" + series_uid};
}

namespace {

// storescp (fork mode when lanes > 1) as Rig::kRawAe on the rig's raw port; stopped on scope exit.
struct RawScp {
  pid_t pid = -1;
  RawScp(Rig& rig, int lanes, const std::string& out_dir) {
    test::SpawnOptions so;
    so.log_path = out_dir + ".storescp.log";
    std::vector<std::string> argv{"storescp", "-aet", Rig::kRawAe, "-od", out_dir};
    if (lanes > 1) argv.insert(argv.begin() + 1, "--fork");
    argv.push_back(std::to_string(rig.raw_port()));
    pid = test::spawn(argv, so);
    for (int i = 0; !test::echo(rig.raw_port(), Rig::kRawAe, 1); ++i) {
      if (i > 100) throw std::runtime_error("storescp did not start; see " + so.log_path);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~RawScp() { test::stop_pid(pid, 5000); }
};

std::vector<std::string> raw_argv(Rig& rig, const std::vector<std::string>& keys,
                                  const std::string& out_dir, const RawRoute& route) {
  std::vector<std::string> a{
      route.get ? "getscu" : "movescu", "-S", "-aet", Rig::kOurAe, "-aec", rig.pacs().ae_title()};
  if (route.get) {
    a.insert(a.end(), {"-od", out_dir});
  } else {
    a.insert(a.end(), {"-aem", route.move_dest});
  }
  for (const auto& k : keys) a.insert(a.end(), {"-k", k});
  a.insert(a.end(),
           {"127.0.0.1", std::to_string(route.pacs_port ? route.pacs_port : rig.pacs().port())});
  return a;
}

}  // namespace

double raw_retrieve(Rig& rig, const std::vector<std::vector<std::string>>& requests,
                    std::size_t expected, int lanes, const std::string& out_dir,
                    const RawRoute& route) {
  fs::remove_all(out_dir);
  fs::create_directories(out_dir);
  std::unique_ptr<RawScp> scp;
  if (!route.get) scp = std::make_unique<RawScp>(rig, lanes, out_dir);
  std::atomic<std::size_t> next{0};
  std::atomic<int> failures{0};
  test::SpawnOptions mo;
  mo.log_path = out_dir + (route.get ? ".getscu.log" : ".movescu.log");
  auto lane = [&] {
    for (std::size_t i; (i = next++) < requests.size();) {
      if (test::run(raw_argv(rig, requests[i], out_dir, route), mo, 600000) != 0) ++failures;
    }
  };
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int l = 0; l < lanes; ++l) threads.emplace_back(lane);
  for (auto& t : threads) t.join();
  double s = seconds_since(t0);
  std::size_t got = count_files(out_dir);
  if (failures > 0 || got != expected) {
    throw std::runtime_error("raw retrieval: " + std::to_string(failures.load()) + " failures, " +
                             std::to_string(got) + " of " + std::to_string(expected) +
                             " files; see " + mo.log_path);
  }
  return s;
}

double raw_move(Rig& rig, const std::vector<test::GeneratedStudy>& studies, int lanes,
                const std::string& out_dir, double* fsync_s) {
  std::vector<std::vector<std::string>> requests;
  std::size_t expected = 0;
  for (const auto& st : studies) {
    requests.push_back(study_keys(st.study_uid));
    expected += static_cast<std::size_t>(st.instance_count());
  }
  const double s = raw_retrieve(rig, requests, expected, lanes, out_dir);
  if (fsync_s) *fsync_s = fsync_tree(out_dir);
  return s;
}

namespace {

// findscu by AccessionNumber with the answer extracted (-X) under dir; the StudyInstanceUID it
// names, "" when none came.
std::string find_study_uid(Rig& rig, const std::string& accession, const std::string& dir,
                           const test::SpawnOptions& o) {
  fs::create_directories(dir);
  const int rc =
      test::run({"findscu", "-S", "-aet", Rig::kOurAe, "-aec", rig.pacs().ae_title(), "-X", "-od",
                 dir, "-k", "QueryRetrieveLevel=STUDY", "-k", "AccessionNumber=" + accession, "-k",
                 "StudyInstanceUID", "127.0.0.1", std::to_string(rig.pacs().port())},
                o, 600000);
  if (rc != 0) return "";
  DcmFileFormat ff;
  OFString uid;
  if (ff.loadFile((dir + "/rsp0001.dcm").c_str()).bad() ||
      ff.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, uid).bad())
    return "";
  return uid.c_str();
}

}  // namespace

double raw_find_move(Rig& rig, const std::vector<test::GeneratedStudy>& studies, int lanes,
                     const std::string& out_dir) {
  fs::remove_all(out_dir);
  fs::create_directories(out_dir);
  const std::string find_dir = out_dir + ".find";
  fs::remove_all(find_dir);
  std::size_t expected = 0;
  for (const auto& st : studies) expected += static_cast<std::size_t>(st.instance_count());
  RawScp scp(rig, lanes, out_dir);
  std::atomic<std::size_t> next{0};
  std::atomic<int> failures{0};
  test::SpawnOptions o;
  o.log_path = out_dir + ".findmove.log";
  auto lane = [&] {
    for (std::size_t i; (i = next++) < studies.size();) {
      const std::string uid =
          find_study_uid(rig, studies[i].spec.accession, find_dir + "/" + std::to_string(i), o);
      if (uid.empty() ||
          test::run(raw_argv(rig, study_keys(uid), out_dir, RawRoute{}), o, 600000) != 0)
        ++failures;
    }
  };
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int l = 0; l < lanes; ++l) threads.emplace_back(lane);
  for (auto& t : threads) t.join();
  const double s = seconds_since(t0);
  const std::size_t got = count_files(out_dir);
  fs::remove_all(find_dir);
  if (failures > 0 || got != expected)
    throw std::runtime_error("raw find+move: " + std::to_string(failures.load()) + " failures, " +
                             std::to_string(got) + " of " + std::to_string(expected) +
                             " files; see " + o.log_path);
  return s;
}

void make_stored_zip(const std::string& dir, const std::string& zip, const std::string& log) {
  test::SpawnOptions o;
  o.log_path = log;
  int rc = test::run({"/usr/bin/python3", "-c",
                      "import os,sys,zipfile\n"
                      "z=zipfile.ZipFile(sys.argv[2],'w',zipfile.ZIP_STORED)\n"
                      "for r,_,fs in os.walk(sys.argv[1]):\n"
                      "  for f in sorted(fs):\n"
                      "    p=os.path.join(r,f); z.write(p, os.path.relpath(p, sys.argv[1]))\n"
                      "z.close()\n",
                      dir, zip},
                     o, 300000);
  if (rc != 0) throw std::runtime_error("zip of " + dir + " failed; see " + log);
}

double curl_import(const std::string& url, const std::string& zip, const std::string& subject,
                   const std::string& session, const std::string& log) {
  const std::string target = url +
                             "/data/services/import?import-handler=DICOM-zip&PROJECT_ID=PROJ"
                             "&SUBJECT_ID=" +
                             subject + "&EXPT_LABEL=" + session + "&dest=/archive&inbody=true";
  test::SpawnOptions o;
  o.log_path = log;
  auto t0 = Clock::now();
  int rc = test::run({"curl", "-sS", "--fail", "-o", "/dev/null", "-u", "admin:admin", "-X", "POST",
                      "-H", "Content-Type: application/zip", "-T", zip, target},
                     o, 600000);
  if (rc != 0) throw std::runtime_error("curl upload of " + zip + " failed; see " + log);
  return seconds_since(t0);
}

Stats time_status_calls(const std::string& socket, std::int64_t job, int calls) {
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    auto t = Clock::now();
    nlohmann::json r = ipc::call(socket, "status", nlohmann::json{{"job", job}}, 30);
    ms.push_back(seconds_since(t) * 1e3);
    if (!r.value("ok", false)) throw std::runtime_error("status: " + r.dump());
  }
  return stats_of(ms);
}

}  // namespace p2x::bench

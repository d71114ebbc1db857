// Integration tests of p2x::xnat::Client against the XNAT stand-in (tests/xnat_standin/standin.py,
// started here as a child process): import and verification listings, TLS verification, error
// classification (409, 5xx, dropped uploads, timeouts, misrouted uploads), session renewal, the
// streamed zip (multi-megabyte over http and https; a file changed after the CRC pass aborts the
// request and nothing is imported).
// The hidden test "[.bench]" uploads a ~80 MB study and prints MB/s and peak RSS.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/prompt_ack.hpp"
#include "xnat/http_client.hpp"
#include "xnat/requests.hpp"
#include "xnat/zip_writer.hpp"
#include "support/temp_dir.hpp"
#include "xnat/xnat.hpp"

namespace fs = std::filesystem;
using namespace p2x::xnat;
using p2x::test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

// The stand-in as a child process; killed by PID in the destructor.
class Standin {
 public:
  explicit Standin(bool https, const std::string& host = "127.0.0.1",
                   const std::string& cert_dir = "", int port = 0,
                   const std::vector<std::string>& extra_args = {}) {
    data_ = dir_.file("data");
    certs_ = cert_dir.empty() ? dir_.file("certs") : cert_dir;
    fs::path port_file = dir_.file("port");
    std::vector<std::string> args = {"/usr/bin/python3",
                                     "-B",
                                     std::string(P2X_SOURCE_DIR) + "/tests/xnat_standin/standin.py",
                                     "--port",
                                     std::to_string(port),
                                     "--port-file",
                                     port_file.string(),
                                     "--data-dir",
                                     data_.string(),
                                     "--users",
                                     "alice:secret",
                                     "--projects",
                                     "P1,P2",
                                     "--readonly-projects",
                                     "P3",
                                     "--host",
                                     host};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    if (https) {
      args.push_back("--https");
      args.push_back("--cert-dir");
      args.push_back(certs_);
    }
    std::string log = dir_.file("standin.log");
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid_ < 0) throw std::runtime_error("fork failed");
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      std::ifstream in(port_file);
      if (in >> port_) break;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (port_ == 0) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), {});
      stop();
      throw std::runtime_error("stand-in did not start: " + text);
    }
    std::string h = host;
    url_ = std::string(https ? "https" : "http") + "://" + h + ":" + std::to_string(port_);
  }
  ~Standin() { stop(); }

  const std::string& url() const { return url_; }
  int port() const { return port_; }
  std::string ca() const { return certs_ + "/ca.pem"; }

  Settings settings() const {
    Settings s;
    s.url = url_;
    s.timeout_s = 10;
    if (url_.rfind("https", 0) == 0) s.ca_file = ca();
    return s;
  }

  // Admin knobs (no auth); returns the body, throws unless 200.
  std::string admin(const std::string& method, const std::string& path_query) {
    auto u = p2x::xnat::detail::parse_url(url_);
    p2x::xnat::detail::TlsContext tls(false, "");
    p2x::xnat::detail::Connection c(u, &tls, std::chrono::seconds(10));
    p2x::xnat::detail::HttpRequest req;
    req.method = method;
    req.target = "/_admin/" + path_query;
    auto r = c.perform(req);
    if (r.status != 200) throw std::runtime_error("admin " + path_query + ": " + r.body);
    return r.body;
  }
  nlohmann::json admin_json(const std::string& path) {
    return nlohmann::json::parse(admin("GET", path));
  }

 private:
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  TempDir dir_{"p2x-xnat-it"};
  fs::path data_;
  std::string certs_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string url_;
};

Standin& plain() {
  static Standin s(false);
  return s;
}
Standin& secure() {
  static Standin s(true);
  return s;
}

std::string new_uid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

struct Study {
  std::string uid;
  std::vector<std::string> series_uids;
  int per_series = 0;
};

// Writes series x per_series MR images of rows x cols 16-bit pixels under dir.
Study write_study(const fs::path& dir, int series, int per_series, int rows = 16, int cols = 16) {
  Study st;
  st.uid = new_uid();
  st.per_series = per_series;
  std::vector<Uint16> pixels(static_cast<size_t>(rows) * cols);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<Uint16>(i * 7);
  for (int s = 1; s <= series; ++s) {
    std::string series_uid = new_uid();
    st.series_uids.push_back(series_uid);
    fs::create_directories(dir / std::to_string(s));
    for (int i = 1; i <= per_series; ++i) {
      DcmFileFormat ff;
      DcmDataset* ds = ff.getDataset();
      ds->putAndInsertString(DCM_SOPClassUID, UID_MRImageStorage);
      ds->putAndInsertString(DCM_SOPInstanceUID, new_uid().c_str());
      ds->putAndInsertString(DCM_StudyInstanceUID, st.uid.c_str());
      ds->putAndInsertString(DCM_SeriesInstanceUID, series_uid.c_str());
      ds->putAndInsertString(DCM_Modality, "MR");
      ds->putAndInsertString(DCM_PatientName, "Test^Patient");
      ds->putAndInsertString(DCM_PatientID, "PID1");
      ds->putAndInsertString(DCM_StudyDate, "20240102");
      ds->putAndInsertString(DCM_SeriesDescription, ("series " + std::to_string(s)).c_str());
      ds->putAndInsertString(DCM_SeriesNumber, std::to_string(s).c_str());
      ds->putAndInsertString(DCM_InstanceNumber, std::to_string(i).c_str());
      ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(rows));
      ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(cols));
      ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
      ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
      ds->putAndInsertUint16(DCM_BitsAllocated, 16);
      ds->putAndInsertUint16(DCM_BitsStored, 12);
      ds->putAndInsertUint16(DCM_HighBit, 11);
      ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
      ds->putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size());
      auto path = dir / std::to_string(s) / (std::to_string(i) + ".dcm");
      if (ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).bad())
        throw std::runtime_error("cannot write " + path.string());
    }
  }
  return st;
}

Credentials alice() {
  return {"alice", "secret"};
}

template <class F>
XnatError xnat_error(F&& f) {
  try {
    f();
  } catch (const XnatError& e) {
    return e;
  }
  FAIL("no XnatError thrown");
  throw std::logic_error("unreachable");
}

bool no_temp_zips(const fs::path& parent) {
  for (const auto& e : fs::directory_iterator(parent))
    if (e.path().filename().string().find(".upload-") != std::string::npos) return false;
  return true;
}

}  // namespace

TEST_CASE("import - then session() lists the scans with file counts", "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  Study st = write_study(d.file("study"), 2, 3);

  Client c(x.settings(), alice());
  CHECK(c.project_exists("P1"));
  CHECK_FALSE(c.project_exists("NOPE"));
  std::string uri = c.import_study("P1", "Subj-1", "Sess_1", d.file("study"));
  CHECK(uri == "/data/archive/projects/P1/subjects/Subj-1/experiments/Sess_1");
  CHECK(no_temp_zips(d.path()));

  auto s = c.session("P1", "Sess_1");
  REQUIRE(s);
  CHECK(s->label == "Sess_1");
  CHECK(s->subject_label == "Subj-1");
  CHECK(s->study_uid == st.uid);
  REQUIRE(s->scans.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(s->scans[i].id == std::to_string(i + 1));
    CHECK(s->scans[i].series_uid == st.series_uids[i]);
    CHECK(s->scans[i].files == 3);
    CHECK(s->scans[i].bytes > 3 * 512);
    CHECK(s->scans[i].description == "series " + std::to_string(i + 1));
  }
  CHECK_FALSE(c.session("P1", "Sess_2"));
  CHECK_FALSE(c.session("P1", "sess_1"));  // exact label match

  auto all = c.sessions("P1");
  REQUIRE(all.size() == 1);
  CHECK(all[0].label == "Sess_1");
  CHECK(all[0].subject_label == "Subj-1");
  CHECK(all[0].study_uid == st.uid);

  auto up = x.admin_json("uploads");
  CHECK(up["per_session"]["P1/Subj-1/Sess_1"] == 1);
  CHECK(c.logins_made() == 1);
  // keep-alive: the GETs share connections; the upload used its own.
  CHECK(c.connections_opened() < c.requests_made());

  // The User-Agent is not browser-like and the password is never in a URL.
  const auto requests = x.admin_json("requests");  // named: a temporary's member would dangle
  for (const auto& r : requests["requests"]) CHECK(r.dump().find("secret") == std::string::npos);
}

TEST_CASE("streamed zip of several MB is accepted over http and https and verified", "[standin]") {
  TempDir d("p2x-xnat-it");
  write_study(d.file("big"), 3, 12, 256, 256);  // 36 files x 131 kB: several 1 MB writes
  for (Standin* x : {&plain(), &secure()}) {
    x->admin("POST", "reset");
    Client c(x->settings(), alice());
    CHECK(c.import_study("P1", "SBIG", "EBIG", d.file("big")) ==
          "/data/archive/projects/P1/subjects/SBIG/experiments/EBIG");
    auto s = c.session("P1", "EBIG");
    REQUIRE(s);
    REQUIRE(s->scans.size() == 3);
    for (const auto& scan : s->scans) CHECK(scan.files == 12);
    CHECK(no_temp_zips(d.path()));
  }
}

namespace {
struct StreamBody : p2x::xnat::detail::BodySource {
  explicit StreamBody(const p2x::xnat::detail::ZipPlan& p) : z(p) {}
  std::uint64_t size() const override { return z.size(); }
  void restart() override { z.restart(); }
  std::size_t read(char* b, std::size_t n) override { return z.read(b, n); }
  p2x::xnat::detail::ZipStream z;
};
}  // namespace

TEST_CASE("a file changed after the CRC pass aborts the upload - nothing is imported",
          "[standin]") {
  namespace dt = p2x::xnat::detail;
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 30, 256, 256);  // ~4 MB: the change is met after a few writes
  const dt::ZipPlan plan = dt::plan_zip(d.file("a"));
  const fs::path changed = plan.entries.back().path;
  {
    std::fstream f(changed, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x7f');
  }
  const auto url = dt::parse_url(x.url());
  dt::Connection conn(url, nullptr, std::chrono::seconds(10));
  StreamBody body(plan);
  dt::HttpRequest req;
  req.method = "POST";
  req.target = dt::make_target(url, "/data/services/import",
                               dt::import_query("P1", "S1", "E_changed", false, false));
  req.headers = {{"Authorization", dt::basic_auth("alice", "secret")}};
  req.content_type = "application/zip";
  req.body_source = &body;
  CHECK_THROWS_WITH(conn.perform(req), "study file " + changed.string() +
                                           " changed since it was checked (the bytes read have "
                                           "another CRC-32)");
  CHECK_FALSE(conn.reusable());
  Client c(x.settings(), alice());
  CHECK_FALSE(c.session("P1", "E_changed"));
  CHECK(x.admin_json("uploads")["per_session"].count("P1/S1/E_changed") == 0);
  // The same files, now unchanged since their CRC pass, go through.
  CHECK(c.import_study("P1", "S1", "E_changed", d.file("a")).find("E_changed") !=
        std::string::npos);
}

TEST_CASE(
    "validated files: exactly those are sent, one changed since validation is refused "
    "with its path and nothing is imported",
    "[standin]") {
  namespace dt = p2x::xnat::detail;
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 6);
  // What validation records: each file's size and CRC; a crash leftover beside them.
  std::vector<StudyFile> files;
  for (const auto& e : dt::plan_zip(d.file("a")).entries)
    files.push_back({e.path, e.name, e.size, e.crc});
  std::ofstream(d.file("a") + "/.p2x-99-1-x.part") << "a half-received instance";
  Client c(x.settings(), alice());
  ImportOptions o;
  {
    std::fstream f(files[3].path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x7f');
  }
  try {
    c.import_files("P1", "S1", "E_valid", files, o);
    FAIL("no exception");
  } catch (const StudyFileChanged& e) {
    CHECK(e.path == files[3].path);
    CHECK(e.transient());
  }
  CHECK_FALSE(c.session("P1", "E_valid"));
  files.erase(files.begin() + 3);  // (the pipeline fetches it again; here: leave it out)
  CHECK(c.import_files("P1", "S1", "E_valid", files, o).find("E_valid") != std::string::npos);
  const auto s = c.session("P1", "E_valid");
  REQUIRE(s);
  std::int64_t held = 0;
  for (const auto& scan : s->scans) held += scan.files;
  CHECK(held == 5);  // not the changed file, not the .part
}

TEST_CASE(
    "files a session already holds: refused as XNAT refuses them, with XNAT's reason from "
    "the prearchive log, accepted with overwrite_files, without duplicates",
    "[standin]") {
  namespace dt = p2x::xnat::detail;
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 2);
  Client c(x.settings(), alice());
  c.import_study("P1", "S1", "E1", d.file("a"));
  // MergeSessionsA: the same instances again (append or not: code 4 merges anyway).
  for (bool append : {false, true}) {
    auto e = xnat_error([&] { c.import_study("P1", "S1", "E1", d.file("a"), append); });
    CHECK(e.kind == ErrorKind::BadRequest);
    CHECK(e.http_status == 400);
    CHECK_FALSE(e.transient());
    CHECK_THAT(e.what(), Catch::Contains("unable to archive for the Prearchive session") &&
                             Catch::Contains("XNAT's prearchive log: Session already exists"));
    CHECK_THAT(e.what(), !Catch::Contains("Status page") && !Catch::Contains("technical details"));
  }
  std::vector<StudyFile> files;
  for (const auto& e : dt::plan_zip(d.file("a")).entries)
    files.push_back({e.path, e.name, e.size, e.crc});
  ImportOptions o;
  o.append = true;
  o.overwrite_files = true;
  CHECK_NOTHROW(c.import_files("P1", "S1", "E1", files, o));
  auto s = c.session("P1", "E1");
  REQUIRE(s);
  REQUIRE(s->scans.size() == 1);
  CHECK(s->scans[0].files == 2);
  CHECK(no_temp_zips(d.path()));
}

TEST_CASE(
    "a second upload of the same study into the prearchive joins its entry "
    "(PrearcDatabase.eitherGetOrCreateSession): the session holds both parts",
    "[standin]") {
  namespace dt = p2x::xnat::detail;
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 2, 2);
  Settings pre = x.settings();
  pre.prearchive = true;
  Client c(pre, alice());
  std::vector<StudyFile> all;
  for (const auto& e : dt::plan_zip(d.file("a")).entries)
    all.push_back({e.path, e.name, e.size, e.crc});
  REQUIRE(all.size() == 4);
  const std::vector<StudyFile> first(all.begin(), all.begin() + 2),
      rest(all.begin() + 2, all.end());
  ImportOptions o;
  o.prearchive = true;
  const std::string a = c.import_files("P1", "S1", "E_PRE", first, o);
  const std::string b = c.import_files("P1", "S1", "E_PRE", rest, o);
  CHECK(a == b);  // one prearchive entry
  const auto s = c.prearchive_session("P1", "E_PRE", "");
  REQUIRE(s);
  std::int64_t files = 0;
  for (const auto& scan : s->scans) files += scan.files;
  CHECK(files == 4);
}

TEST_CASE("5xx and dropped uploads are transient - the caller's retry succeeds", "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 2);
  Client c(x.settings(), alice());
  x.admin("POST", "fail?count=3&status=500&path=/data/services/import");
  for (int i = 0; i < 3; ++i) {
    auto e = xnat_error([&] { c.import_study("P1", "S1", "E1", d.file("a")); });
    CHECK(e.transient());
    CHECK(e.http_status == 500);
  }
  CHECK(c.import_study("P1", "S1", "E1", d.file("a")).find("/archive/") != std::string::npos);

  x.admin("POST", "drop_upload?count=1");
  auto e = xnat_error([&] { c.import_study("P1", "S2", "E2", d.file("a")); });
  CHECK(e.transient());
  CHECK(e.http_status == 0);
  CHECK(no_temp_zips(d.path()));
  CHECK(c.import_study("P1", "S2", "E2", d.file("a")).find("E2") != std::string::npos);
  CHECK(x.admin_json("uploads")["per_session"]["P1/S2/E2"] == 1);

  // A GET answered 503 is transient as well.
  x.admin("POST", "fail?count=1&status=503&path=/data/projects");
  e = xnat_error([&] { c.project_exists("P1"); });
  CHECK(e.kind == ErrorKind::Transient);
  CHECK(e.http_status == 503);
}

TEST_CASE("a slow answer hits the deadline and is transient", "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  Settings s = x.settings();
  s.timeout_s = 1;
  Client c(s, alice());
  CHECK(c.project_exists("P1"));
  x.admin("POST", "delay?ms=4000&count=1&path=/data/projects");
  auto t0 = Clock::now();
  auto e = xnat_error([&] { c.project_exists("P1"); });
  auto took = Clock::now() - t0;
  CHECK(e.transient());
  CHECK_THAT(e.what(), Catch::Contains("timed out after 1 s"));
  CHECK(took < std::chrono::milliseconds(3500));
  CHECK(c.project_exists("P1"));  // next call on a fresh connection

  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 1);
  // (The stand-in finishes this import after we gave up: the label is not reused elsewhere.)
  x.admin("POST", "slow_import?ms=3000&count=1");
  e = xnat_error([&] { c.import_study("P1", "S_slow", "E_slow", d.file("a")); });
  CHECK(e.transient());
  CHECK_THAT(e.what(), Catch::Contains("waiting for the answer timed out"));
  CHECK(no_temp_zips(d.path()));
}

TEST_CASE("session expiry is renewed transparently - bad credentials fail fast", "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  Client c(x.settings(), alice());
  CHECK(c.project_exists("P1"));
  x.admin("POST", "expire_sessions");
  CHECK(c.project_exists("P2"));
  CHECK(c.logins_made() == 2);
  c.logout();  // DELETE /data/JSESSION; the next call logs in again
  CHECK(c.project_exists("P2"));
  CHECK(c.logins_made() == 3);

  Client bad(x.settings(), Credentials{"alice", "WrongPassword1"});
  auto t0 = Clock::now();
  auto e = xnat_error([&] { bad.project_exists("P1"); });
  CHECK(Clock::now() - t0 < std::chrono::seconds(2));
  CHECK(e.kind == ErrorKind::Auth);
  CHECK(std::string(e.what()) == "XNAT refused the credentials for user alice");
  CHECK(bad.logins_made() == 1);

  // Refused even after a fresh login: Auth, without looping.
  x.admin("POST", "refuse_auth?on=1");
  e = xnat_error([&] { c.project_exists("P1"); });
  CHECK(e.kind == ErrorKind::Auth);
  CHECK(std::string(e.what()).find("secret") == std::string::npos);
  CHECK(c.logins_made() == 4);
  x.admin("POST", "refuse_auth?on=0");
}

TEST_CASE("several threads share one client and one session", "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 2);
  Client c(x.settings(), alice());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      try {
        // Each thread uploads its own copy of the files (separate study directories).
        const fs::path dir = d.file("t" + std::to_string(t));
        fs::copy(d.file("a"), dir, fs::copy_options::recursive);
        c.import_study("P2", "S" + std::to_string(t), "E" + std::to_string(t), dir.string());
        for (int i = 0; i < 5; ++i)
          if (c.project_exists("P2")) ok++;
      } catch (const std::exception& e) {
        std::cerr << "thread " << t << ": " << e.what() << "\n";
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 20);
  CHECK(c.logins_made() == 1);
  CHECK(c.sessions("P2").size() == 4);
}

TEST_CASE("upload into the wrong place is an error", "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 1);
  Client c(x.settings(), alice());
  // dest=/archive into a project XNAT does not have, or one alice may only read: XNAT files the
  // upload in the prearchive and cannot archive it (the daemon checks the project first).
  for (const char* project : {"NOPE", "P3"}) {
    auto e = xnat_error([&] { c.import_study(project, "S", "E", d.file("a")); });
    CHECK(e.kind == ErrorKind::BadRequest);
    CHECK_THAT(e.what(), Catch::Contains("unable to archive for the Prearchive session"));
  }

  Settings pre = x.settings();
  pre.prearchive = true;
  Client cp(pre, alice());
  CHECK(cp.import_study("P1", "S", "E", d.file("a")).rfind("/data/prearchive/projects/P1/", 0) ==
        0);
  // dest=/prearchive into an unknown project: XNAT's Unassigned prearchive.
  auto e = xnat_error([&] { cp.import_study("NOPE", "S", "E", d.file("a")); });
  CHECK(e.kind == ErrorKind::Misrouted);
  CHECK_THAT(e.what(), Catch::Contains("Unassigned"));

  // Not DICOM at all: XNAT's 400 reason comes through, without its status page.
  fs::create_directories(d.file("junk"));
  std::ofstream(d.file("junk/x.txt")) << "not dicom";
  e = xnat_error([&] { c.import_study("P1", "S", "E9", d.file("junk")); });
  CHECK(e.kind == ErrorKind::BadRequest);
  CHECK_THAT(e.what(), Catch::Contains("unable to read DICOM object x.txt"));
  CHECK_THAT(e.what(), !Catch::Contains("Status page"));
  CHECK(no_temp_zips(d.path()));
}

TEST_CASE("XNAT restart: stale keep-alive connection replaced - session renewed", "[standin]") {
  auto first = std::make_unique<Standin>(false);
  int port = first->port();
  Client c(first->settings(), alice());
  CHECK(c.project_exists("P1"));
  CHECK(c.project_exists("P1"));
  CHECK(c.connections_opened() == 1);  // login + 2 GETs on one keep-alive connection
  first.reset();                       // the pooled connection is now closed by the peer
  Standin second(false, "127.0.0.1", "", port);
  CHECK(c.project_exists("P1"));  // stale connection -> fresh one -> 401 -> login -> retry
  CHECK(c.logins_made() == 2);
  CHECK(c.connections_opened() == 2);
}

TEST_CASE("connection refused is transient", "[standin]") {
  Settings s;
  s.url = "http://127.0.0.1:1";
  s.timeout_s = 2;
  Client c(s, alice());
  auto e = xnat_error([&] { c.project_exists("P1"); });
  CHECK(e.transient());
  CHECK_THAT(e.what(), Catch::Contains("connecting failed"));
}

TEST_CASE("https: verified with the CA - refused without it - optional opt-out", "[standin][tls]") {
  auto& x = secure();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("a"), 1, 2);
  {
    Client c(x.settings(), alice());
    CHECK(c.project_exists("P1"));
    CHECK(c.import_study("P1", "S", "E", d.file("a")).find("/archive/") != std::string::npos);
    auto s = c.session("P1", "E");
    REQUIRE(s);
    CHECK(s->scans.at(0).files == 2);
  }
  {
    Settings s = x.settings();  // by host name (SAN DNS:localhost)
    s.url = "https://localhost:" + std::to_string(x.port());
    Client c(s, alice());
    CHECK(c.project_exists("P1"));
  }
  {
    Settings s = x.settings();
    s.ca_file.clear();  // system store does not know the stand-in's CA
    Client c(s, alice());
    auto e = xnat_error([&] { c.project_exists("P1"); });
    CHECK(e.kind == ErrorKind::Tls);
    CHECK_FALSE(e.transient());
    CHECK_THAT(e.what(), Catch::Contains("certificate not trusted: unable to get local issuer"));
    CHECK(c.logins_made() <= 1);
  }
  {
    Settings s = x.settings();
    s.ca_file.clear();
    s.verify_tls = false;
    Client c(s, alice());
    CHECK(c.project_exists("P1"));
  }
  {
    Settings s = x.settings();
    s.url = "http://127.0.0.1:" + std::to_string(x.port());  // plain HTTP to a TLS port
    s.timeout_s = 2;
    Client c(s, alice());
    CHECK_THROWS_AS(c.project_exists("P1"), XnatError);
  }
  {
    Settings s = x.settings();
    s.ca_file = d.path() + "/missing.pem";
    CHECK_THROWS_AS(Client(s, alice()), XnatError);
  }
}

TEST_CASE("https: a certificate for another host name is refused", "[standin][tls]") {
  auto& x = secure();
  // Same CA and server certificate (IP:127.0.0.1, DNS:localhost), served on 127.0.0.2.
  Standin other(true, "127.0.0.2", fs::path(x.ca()).parent_path().string());
  Client c(other.settings(), alice());
  auto e = xnat_error([&] { c.project_exists("P1"); });
  CHECK(e.kind == ErrorKind::Tls);
  CHECK_THAT(e.what(), Catch::Contains("not valid for host name 127.0.0.2"));
  Settings s = other.settings();
  s.verify_tls = false;
  Client c2(s, alice());
  CHECK(c2.project_exists("P1"));
}

TEST_CASE("upload of an 80 MB study: throughput and peak RSS", "[.bench]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  write_study(d.file("big"), 4, 40, 512, 512);  // 160 files x 512 KB
  std::int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(d.file("big")))
    if (e.is_regular_file()) total += static_cast<std::int64_t>(e.file_size());
  struct rusage before {};
  getrusage(RUSAGE_SELF, &before);
  for (const char* which : {"http", "https"}) {
    Standin& srv = std::string(which) == "http" ? plain() : secure();
    Client c(srv.settings(), alice());
    c.project_exists("P1");
    auto t0 = Clock::now();
    c.import_study("P1", "BIG", std::string("BIG_") + which, d.file("big"));
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    std::cout << which << ": " << total / 1e6 << " MB in " << secs << " s = " << total / 1e6 / secs
              << " MB/s (zip + upload + XNAT's parse); peak RSS " << ru.ru_maxrss / 1024 << " MB"
              << " (before: " << before.ru_maxrss / 1024 << " MB)\n";
    CHECK(ru.ru_maxrss / 1024 < 100);
    auto s = c.session("P1", std::string("BIG_") + which);
    REQUIRE(s);
    REQUIRE(s->scans.size() == 4);
    CHECK(s->scans[3].files == 40);
  }
}

// --- XNAT as it really answers (issue 14) ------------------------------------------------------

namespace {

// Rewrites (or, with "", removes) the SeriesNumber of every file under dir.
void set_series_number(const fs::path& dir, const std::string& number) {
  for (const auto& e : fs::directory_iterator(dir)) {
    DcmFileFormat ff;
    REQUIRE(ff.loadFile(e.path().c_str()).good());
    if (number.empty()) {
      ff.getDataset()->findAndDeleteElement(DCM_SeriesNumber);
    } else {
      ff.getDataset()->putAndInsertString(DCM_SeriesNumber, number.c_str());
    }
    REQUIRE(ff.saveFile(e.path().c_str(), EXS_LittleEndianExplicit).good());
  }
}

std::map<std::string, std::pair<std::string, std::int64_t>> scans_by_uid(const SessionInfo& s) {
  std::map<std::string, std::pair<std::string, std::int64_t>> out;
  for (const auto& scan : s.scans) out[scan.series_uid] = {scan.id, scan.files};
  return out;
}

}  // namespace

// The socket options themselves; what they are worth in time is bench_small_studies' figure.
TEST_CASE(
    "every connection has TCP_NODELAY and acknowledges each read at once, also against a "
    "server that writes headers and body apart with Nagle on",
    "[standin]") {
  constexpr int kRequests = 20;
  auto health = [](detail::Connection& c) {
    detail::HttpRequest req;
    req.method = "GET";
    req.target = "/_admin/health";
    detail::Response r = c.perform(req);
    REQUIRE(r.status == 200);
    REQUIRE(nlohmann::json::parse(r.body)["ok"] == true);  // the body, sent in its own write
  };
  for (bool https : {false, true}) {
    INFO((https ? "https" : "http"));
    Standin nagle(https, "127.0.0.1", "", 0, {"--nagle"});
    detail::TlsContext tls(false, "");
    SECTION("prompt ACKs on (the default)") {
      REQUIRE(p2x::net::prompt_ack_enabled());
      detail::Connection c(detail::parse_url(nagle.url()), &tls, std::chrono::seconds(10));
      CHECK(c.socket_state().no_delay);
      const auto at_connect = c.socket_state().quick_ack_rearms;
      CHECK(at_connect >= 1);
      for (int i = 0; i < kRequests; ++i) health(c);
      CHECK(c.reusable());  // one keep-alive connection for all of them
      // Every read that got data re-armed TCP_QUICKACK: at least one per answer.
      CHECK(c.socket_state().quick_ack_rearms >= at_connect + kRequests);
    }
    SECTION("prompt ACKs switched off (P2X_PROMPT_ACK=0): no re-arms, TCP_NODELAY still on") {
      p2x::net::set_prompt_ack_enabled(false);
      struct Restore {
        ~Restore() { p2x::net::set_prompt_ack_enabled(true); }
      } restore;
      detail::Connection c(detail::parse_url(nagle.url()), &tls, std::chrono::seconds(10));
      for (int i = 0; i < 3; ++i) health(c);
      CHECK(c.socket_state().no_delay);
      CHECK(c.socket_state().quick_ack_rearms == 0);
    }
  }
}

TEST_CASE("scans XNAT renames (3-MR1) or numbers from the UID are matched by SeriesInstanceUID",
          "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  Study st = write_study(d.file("study"), 3, 2);
  set_series_number(fs::path(d.file("study")) / "2", "1");  // clashes with series 1
  set_series_number(fs::path(d.file("study")) / "3", "");   // none: derived from the UID
  Client c(x.settings(), alice());
  c.import_study("P1", "S1", "E1", d.file("study"));
  auto s = c.session("P1", "E1");
  REQUIRE(s);
  const auto by_uid = scans_by_uid(*s);
  REQUIRE(by_uid.size() == 3);
  CHECK(by_uid.at(st.series_uids[0]) == std::make_pair(std::string("1"), std::int64_t{2}));
  CHECK(by_uid.at(st.series_uids[1]) == std::make_pair(std::string("1-MR1"), std::int64_t{2}));
  const std::string derived = st.series_uids[2].substr(st.series_uids[2].rfind('.') + 1);
  CHECK(by_uid.at(st.series_uids[2]) == std::make_pair(derived, std::int64_t{2}));
}

TEST_CASE("verifying a 20-series session takes 3 requests, older answers fall back", "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  Study st = write_study(d.file("study"), 20, 2, 8, 8);
  Client c(x.settings(), alice());
  c.import_study("P1", "S1", "BIG", d.file("study"));
  auto check_counts = [&](const std::optional<SessionInfo>& s) {
    REQUIRE(s);
    const auto by_uid = scans_by_uid(*s);
    REQUIRE(by_uid.size() == 20);
    for (const auto& uid : st.series_uids) CHECK(by_uid.at(uid).second == 2);
  };
  // Label lookup, the session's own JSON (every scan with its UID), /scans/ALL/resources.
  // (Before: label lookup, scan listing, one GET per scan for its UID, every file: 23.)
  std::int64_t before = c.requests_made();
  check_counts(c.session("P1", "BIG"));
  CHECK(c.requests_made() - before == 3);

  // An XNAT that answers neither the session JSON nor the resource listing: the listing of the
  // scans, one GET per scan for its UID and the file listing (23, plus the two refused asks).
  const std::string id =
      x.admin_json("state")["projects"]["P1"]["subjects"]["S1"]["experiments"]["BIG"]["ID"];
  x.admin("POST", "fail?count=1&status=404&path=/data/experiments/" + id + "/scans/ALL/resources");
  x.admin("POST", "fail?count=1&status=404&path=/data/experiments/" + id);
  before = c.requests_made();
  check_counts(c.session("P1", "BIG"));
  CHECK(c.requests_made() - before == 25);
}

TEST_CASE("the prearchive: a session is found by label and study, its files counted per series",
          "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  Study st = write_study(d.file("study"), 2, 3);
  Client c(x.settings(), alice());
  CHECK_FALSE(c.prearchive_session("P1", "PRE1", st.uid));
  std::string uri = c.import_study("P1", "S1", "PRE1", d.file("study"), false, true);
  CHECK(uri.rfind("/data/prearchive/projects/P1/", 0) == 0);
  auto s = c.prearchive_session("P1", "PRE1", st.uid);
  REQUIRE(s);
  const auto by_uid = scans_by_uid(*s);
  CHECK(by_uid.at(st.series_uids[0]).second == 3);
  CHECK(by_uid.at(st.series_uids[1]).second == 3);
  CHECK_FALSE(c.prearchive_session("P1", "PRE1", "1.2.3.4"));  // another study
  CHECK_FALSE(c.session("P1", "PRE1"));                        // not archived
  CHECK(c.prearchive_code("P1") == 4);
  x.admin("POST", "prearchive_code?project=P1&code=0");
  CHECK(c.prearchive_code("P1") == 0);
}

TEST_CASE("XNAT's 400s: a wrapped archive conflict is permanent, a concurrent send transient",
          "[standin]") {
  auto& x = plain();
  x.admin("POST", "reset");
  TempDir d("p2x-xnat-it");
  Study a = write_study(d.file("a"), 1, 1);
  Study b = write_study(d.file("b"), 1, 1);
  Client c(x.settings(), alice());
  c.import_study("P1", "S1", "E1", d.file("a"));
  // Another study under a label that exists (the session's Study UID differs).
  auto conflict = xnat_error([&] { c.import_study("P1", "S1", "E1", d.file("b")); });
  CHECK(conflict.kind == ErrorKind::BadRequest);
  CHECK_FALSE(conflict.transient());
  CHECK_THAT(conflict.what(), Catch::Contains("unable to archive for the Prearchive session") &&
                                  Catch::Contains("session UID"));
  x.admin("POST", "concurrent_send?count=1");
  auto e = xnat_error([&] { c.import_study("P1", "S2", "E2", d.file("b")); });
  CHECK(e.http_status == 400);
  CHECK(e.transient());
  CHECK_THAT(e.what(), Catch::Contains("Concurrent file sends of the same data is not supported."));
  CHECK_NOTHROW(c.import_study("P1", "S2", "E2", d.file("b")));
}

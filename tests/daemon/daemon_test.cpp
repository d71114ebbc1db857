// The real daemon and CLI binaries, end to end over the Unix socket.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "standin.hpp"
#include "support/temp_dir.hpp"
#include "ipc/client.hpp"
#include "store/store.hpp"

using namespace p2x::test;
using nlohmann::json;

namespace {

std::string good_csv(int rows, const std::string& prefix = "ACC") {
  std::ostringstream s;
  s << "Accession Number,Subject,Session\r\n";
  for (int i = 1; i <= rows; ++i) {
    s << prefix << i << ",SUBJ" << (i % 97) << "," << prefix << "_S" << i << "\r\n";
  }
  return s.str();
}

// A temp dir with an XNAT stand-in that knows the projects the tests submit to.
struct Env : TempDir {
  Env() : TempDir("p2x-daemon") {}
  XnatStandin xnat{file("xnat"), {"admin:admin"}, {"PROJ1", "P", "P1", "P2"}};
  json config(json extra = json::object()) const {
    json c{{"xnat", {{"url", xnat.url()}}}};
    c.merge_patch(extra);
    return c;
  }
};

// The parts of a job that must survive restarts unchanged (item states move on as workers run).
json job_identity(const json& status) {
  json out = json::array();
  for (const auto& j : status["jobs"]) {
    std::int64_t sum = 0;
    for (const auto& [k, v] : j["counts"].items()) sum += v.get<std::int64_t>();
    out.push_back({j["job"], j["project"], j["pacs"], j["csv_name"], j["csv_sha256"],
                   j["created_at"], j["paused"], j["total"], sum, j["submitted_by"]});
  }
  return out;
}

json status_json(const Daemon& d, const std::string& job = "") {
  std::vector<std::string> args{"status", "--all", "--json"};
  if (!job.empty()) args.insert(args.begin() + 1, job);
  auto r = d.cli(args);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

// Every job in the store holds exactly the CSV's rows in its items table (not only in its
// per-state counters, which are written in one statement and would look whole anyway).
void require_whole_jobs(const std::string& db_path, int rows, const std::string& prefix) {
  p2x::store::Store store(db_path);
  for (const auto& job : store.jobs()) {
    INFO("job " << job.id);
    auto items = store.items(job.id);
    REQUIRE(items.size() == static_cast<std::size_t>(rows));
    CHECK(items.front().row == 1);
    CHECK(items.back().row == rows);
    CHECK(items.back().accession == prefix + std::to_string(rows));
  }
}

}  // namespace

TEST_CASE("submit queues a valid CSV and status/list/report show it", "[daemon]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  write_file(t.file("studies.csv"), good_csv(3));
  auto r = d.cli({"submit", t.file("studies.csv"), "--project", "PROJ1", "--pacs", "testpacs"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("job 1 queued: 3 studies") != std::string::npos);

  json st = status_json(d, "1");
  REQUIRE(st["jobs"].size() == 1);
  CHECK(st["jobs"][0]["total"] == 3);
  CHECK(st["jobs"][0]["project"] == "PROJ1");
  CHECK(st["jobs"][0]["submitted_by"] == getuid());

  CHECK(st["jobs"][0]["csv_sha256"].get<std::string>().size() == 64);

  auto rep = d.cli({"report", "1"});
  REQUIRE(rep.exit_code == 0);
  CHECK(rep.out.find("row,line,kind,accession") == 0);
  CHECK(rep.out.find("\n3,4,accession,ACC3,") != std::string::npos);

  auto pause = d.cli({"pause", "1"});
  CHECK(pause.exit_code == 0);
  CHECK(status_json(d, "1")["jobs"][0]["paused"] == true);
  CHECK(d.cli({"resume", "1"}).exit_code == 0);
  auto cancel = d.cli({"cancel", "1", "--json"});
  REQUIRE(cancel.exit_code == 0);
  CHECK(json::parse(cancel.out)["cancelled"] == 3);
  CHECK(status_json(d, "1")["jobs"][0]["counts"]["cancelled"] == 3);
  d.stop();
  CHECK(d.last_exit() == 0);
}

TEST_CASE("a bad CSV is refused with line numbers and nothing is queued", "[daemon]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  write_file(t.file("bad.csv"),
             "Accession Number,Subject,Session\nA1,S1,E1\nA2,S 2,E2\nA3,S3,E1\n");
  auto r = d.cli({"submit", t.file("bad.csv"), "--project", "P", "--pacs", "testpacs"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("line 3") != std::string::npos);
  CHECK(r.err.find("line 4") != std::string::npos);
  CHECK(r.err.find("nothing was queued") != std::string::npos);
  CHECK(status_json(d)["jobs"].empty());

  auto unknown = d.cli({"submit", t.file("bad.csv"), "--project", "P", "--pacs", "nope"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("unknown PACS \"nope\"") != std::string::npos);
  auto missing = d.cli({"status", "42"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no job 42") != std::string::npos);
}

TEST_CASE("CLI exit codes: usage 2 - unreachable 3 - local check", "[daemon][cli]") {
  TempDir t("p2x-daemon");
  auto usage = run_program({P2X_CLI_BIN, "submit"});
  CHECK(usage.exit_code == 2);
  auto unreachable = run_program({P2X_CLI_BIN, "--socket", t.file("none.sock"), "list"});
  CHECK(unreachable.exit_code == 3);
  CHECK(unreachable.err.find("pacs2xnatd") != std::string::npos);
  auto env = run_program({P2X_CLI_BIN, "list"}, {"PACS2XNAT_SOCKET=" + t.file("env.sock")});
  CHECK(env.exit_code == 3);
  CHECK(env.err.find(t.file("env.sock")) != std::string::npos);

  write_file(t.file("ok.csv"), good_csv(5));
  auto ok = run_program({P2X_CLI_BIN, "check", t.file("ok.csv")});
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("5 rows OK") != std::string::npos);
  write_file(t.file("bad.csv"), "Accession Number,Session\nA1,E1\nA2,E1\n");
  auto bad = run_program({P2X_CLI_BIN, "check", t.file("bad.csv")});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("line 3") != std::string::npos);
}

TEST_CASE("jobs survive a daemon restart", "[daemon]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  write_file(t.file("a.csv"), good_csv(10, "A"));
  write_file(t.file("b.csv"), good_csv(4, "B"));
  REQUIRE(d.cli({"submit", t.file("a.csv"), "-p", "P1", "--pacs", "testpacs"}).exit_code == 0);
  REQUIRE(d.cli({"submit", t.file("b.csv"), "-p", "P2", "--pacs", "testpacs"}).exit_code == 0);
  REQUIRE(d.cli({"pause", "2"}).exit_code == 0);
  json before = job_identity(status_json(d));
  REQUIRE(before.size() == 2);
  d.stop();
  REQUIRE(d.last_exit() == 0);
  d.start();
  CHECK(job_identity(status_json(d)) == before);
  d.kill_hard();
  d.start();
  CHECK(job_identity(status_json(d)) == before);
}

TEST_CASE("two CLIs submitting at once both get whole jobs", "[daemon]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  write_file(t.file("a.csv"), good_csv(2000, "A"));
  write_file(t.file("b.csv"), good_csv(1500, "B"));
  auto fa = std::async(std::launch::async, [&] {
    return d.cli({"submit", t.file("a.csv"), "-p", "P1", "--pacs", "testpacs", "--json"});
  });
  auto fb = std::async(std::launch::async, [&] {
    return d.cli({"submit", t.file("b.csv"), "-p", "P1", "--pacs", "testpacs", "--json"});
  });
  auto ra = fa.get(), rb = fb.get();
  REQUIRE(ra.exit_code == 0);
  REQUIRE(rb.exit_code == 0);
  auto ja = json::parse(ra.out)["job"].get<int>(), jb = json::parse(rb.out)["job"].get<int>();
  CHECK(ja != jb);
  CHECK(status_json(d, std::to_string(ja))["jobs"][0]["total"] == 2000);
  CHECK(status_json(d, std::to_string(jb))["jobs"][0]["total"] == 1500);
}

TEST_CASE("kill -9 while a 50k-row submit commits leaves the job whole or absent",
          "[daemon][crash]") {
  constexpr int kRows = 50000, kRounds = 6;
  Env t;
  write_file(t.file("big.csv"), good_csv(kRows, "BIG"));
  std::mt19937 rng(12345);
  std::set<std::int64_t> acknowledged;  // jobs the daemon said it queued before it was killed
  std::size_t jobs_before = 0;
  std::string db_path;
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    Daemon d(t.path(), t.config());
    db_path = d.state_dir() + "/pacs2xnat.db";
    d.start();
    auto submit = std::async(std::launch::async, [&] {
      return d.cli({"submit", t.file("big.csv"), "-p", "P1", "--pacs", "testpacs", "--json",
                    "--allow-duplicate"});  // every round submits the same CSV again
    });
    if (round < kRounds - 1) {
      // Kill at a moment spread over the parse + commit window.
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 900)(rng)));
    } else {
      submit.wait();  // the last round kills right after the answer
    }
    d.kill_hard();
    CommandResult r = submit.get();
    if (r.exit_code == 0) acknowledged.insert(json::parse(r.out).at("job").get<std::int64_t>());
    d.start();
    json st = status_json(d);
    // At most this round's job is new, and every job the daemon acknowledged is there.
    REQUIRE(st["jobs"].size() >= jobs_before);
    REQUIRE(st["jobs"].size() <= jobs_before + 1);
    jobs_before = st["jobs"].size();
    std::set<std::int64_t> present;
    for (const auto& job : st["jobs"]) {
      present.insert(job["job"].get<std::int64_t>());
      REQUIRE(job["total"] == kRows);
    }
    for (auto id : acknowledged) {
      INFO("job " << id << " was acknowledged");
      CHECK(present.count(id) == 1);
    }
    d.stop();
  }
  REQUIRE_FALSE(acknowledged.empty());  // the last round's submit was answered before the kill
  require_whole_jobs(db_path, kRows, "BIG");
}

TEST_CASE("the socket is 0660, owned by the daemon's user and group, in a closed directory",
          "[daemon][security]") {
  TempDir t("p2x-daemon");
  Daemon d(t.path());
  d.start();
  struct stat st {};
  REQUIRE(stat(d.socket().c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 07777) == 0660);
  CHECK(st.st_uid == geteuid());
  CHECK(st.st_gid == getegid());
  // The directories the daemon creates keep others out (umask 0027): neither the socket nor the
  // store is reachable for users outside the daemon's group, whatever their own modes.
  for (const std::string& dir : {t.file("run"), d.state_dir()}) {
    INFO(dir);
    REQUIRE(stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);
  }
  REQUIRE(stat((d.state_dir() + "/pacs2xnat.db").c_str(), &st) == 0);
  CHECK((st.st_mode & 0007) == 0);
  CHECK(d.cli({"list"}).exit_code == 0);
}

// Needs root (to run the CLI as uid 65534); otherwise it prints SKIPPED, which CTest reports
// as a skipped test (SKIP_REGULAR_EXPRESSION in CMakeLists.txt).
TEST_CASE("the socket refuses another uid", "[daemon][security][root]") {
  if (geteuid() != 0) {
    WARN("SKIPPED: needs root to run the CLI as another uid (65534)");
    return;
  }
  TempDir t("p2x-daemon");
  Daemon d(t.path());
  d.start();
  // Let uid 65534 traverse the directories, so only the socket's own mode decides.
  chmod(t.file("run").c_str(), 0755);
  auto r = run_program({P2X_CLI_BIN, "--socket", d.socket(), "list"}, {}, 65534);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("Permission denied") != std::string::npos);
  CHECK(d.cli({"list"}).exit_code == 0);
}

TEST_CASE("a second daemon on the same socket is refused - a stale socket is replaced",
          "[daemon]") {
  TempDir t("p2x-daemon");
  Daemon d(t.path());
  d.start();
  {
    // Same state directory: refused before the store is touched.
    Daemon second(t.path());
    CHECK_THROWS_WITH(second.start(), Catch::Contains("another pacs2xnatd is already running"));
  }
  {
    // Another state directory but the same socket: refused, the live socket is left alone.
    TempDir other("p2x-daemon");
    Daemon third(other.path(), json{{"paths", {{"socket", d.socket()}}}});
    CHECK_THROWS_WITH(third.start(), Catch::Contains("another pacs2xnatd is already listening"));
  }
  CHECK(d.cli({"list"}).exit_code == 0);
  d.kill_hard();  // leaves the socket file behind
  struct stat st {};
  REQUIRE(stat(d.socket().c_str(), &st) == 0);
  d.start();
  CHECK(d.cli({"list"}).exit_code == 0);
}

TEST_CASE("malformed and oversized requests get errors - never a crash", "[daemon][ipc]") {
  TempDir t("p2x-daemon");
  Daemon d(t.path(), json{{"limits", {{"max_request_bytes", 4096}}}});
  d.start();
  auto raw = [&](const std::string& bytes) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, d.socket().c_str(), sizeof addr.sun_path - 1);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    std::string reply;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
      reply.append(buf, static_cast<std::size_t>(n));
      if (reply.find('\n') != std::string::npos) break;
    }
    close(fd);
    return reply;
  };
  CHECK(raw("not json\n").find("\"bad_request\"") != std::string::npos);
  CHECK(raw("[1,2]\n").find("\"bad_request\"") != std::string::npos);
  CHECK(raw("{\"cmd\":\"frobnicate\"}\n").find("\"unknown_command\"") != std::string::npos);
  CHECK(raw("{\"cmd\":\"status\",\"args\":{\"job\":\"x\"}}\n").find("\"ok\":false") !=
        std::string::npos);
  CHECK(raw("{\"cmd\":\"submit\",\"args\":{}}\n").find("\"ok\":false") != std::string::npos);
  CHECK(raw(std::string(10000, 'x') + "\n").find("\"too_large\"") != std::string::npos);
  CHECK(raw(std::string("\xff\xfe\x00garbage\n", 12)).find("\"ok\":false") != std::string::npos);
  // Still alive and answering.
  CHECK(d.cli({"list"}).exit_code == 0);
  d.stop();
  CHECK(d.last_exit() == 0);
}

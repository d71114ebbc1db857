// Hostile peers on the control socket (issue 12 items 1, 2, 7, 8, 9, 11, 13), replayed against
// the real pacs2xnatd: each test asserts the daemon stays up, another client is served within a
// second, and the answer names the problem.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "support/unix_client.hpp"
#include "ipc/client.hpp"
#include "standin.hpp"
#include "support/temp_dir.hpp"

using namespace p2x::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Sends `bytes` whole (the daemon must read them all), then reads the answer line.
json exchange_raw(const Daemon& d, const std::string& bytes) {
  int fd = connect_unix(d.socket());
  REQUIRE(fd >= 0);
  const bool sent = send_all(fd, bytes);
  const std::string line = read_line(fd, std::chrono::seconds(10));
  close(fd);
  INFO("sent " << bytes.size() << " bytes, " << (sent ? "all" : "not all") << "; answer: " << line);
  REQUIRE(sent);
  REQUIRE_FALSE(line.empty());
  return json::parse(line);
}

// The daemon is alive and another client gets `list` answered within a second.
void check_served(const Daemon& d) {
  REQUIRE(kill(d.pid(), 0) == 0);
  const auto start = Clock::now();
  json r = p2x::ipc::call(d.socket(), "list", json::object(), 5);
  CHECK(r.at("ok") == true);
  CHECK(seconds_since(start) < 1.0);
}

// CPU seconds the process has used (utime + stime from /proc/<pid>/stat).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;  // state .. cmajflt
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int open_fds(pid_t pid) {
  int n = 0;
  DIR* dir = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!dir) return -1;
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

json error_of(const json& answer) {
  INFO(answer.dump().substr(0, 500));
  REQUIRE(answer.at("ok") == false);
  return answer.at("error");
}

std::string csv_of(const std::string& prefix, int rows) {
  std::string csv = "Accession Number,Subject,Session\n";
  for (int i = 1; i <= rows; ++i) {
    const std::string n = std::to_string(i);
    csv += prefix + n + ",S" + prefix + n + ",E" + prefix + n + "\n";
  }
  return csv;
}

// Holds `n` idle connections; returns their descriptors (connections the daemon could not
// take into its backlog are left out).
std::vector<int> idle_clients(const Daemon& d, int n) {
  std::vector<int> fds;
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (static_cast<int>(fds.size()) < n && Clock::now() < until) {
    int fd = connect_unix(d.socket(), true);
    if (fd >= 0) {
      fds.push_back(fd);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the backlog is full
    }
  }
  return fds;
}

// Daemon CPU over `window` while the idle clients are held, and the log it wrote meanwhile.
void check_not_spinning(const Daemon& d, std::chrono::milliseconds window) {
  const std::size_t log_before = d.log().size();
  const double before = cpu_seconds(d.pid());
  std::this_thread::sleep_for(window);
  const double used = cpu_seconds(d.pid()) - before;
  const std::string log = d.log();
  INFO("log:\n" << log.substr(0, 3000));
  CHECK(used < 0.25 * std::chrono::duration<double>(window).count());
  CHECK(log.size() - log_before < 4096);
  CHECK(count(log, "ipc accept failed") <= 2);
}

}  // namespace

TEST_CASE("item 1+2: a number out of range or nesting a million deep is refused, never a crash",
          "[hostile][socket]") {
  TempDir t("p2x-hostile-socket");
  Daemon d(t.path());
  d.start();
  for (const char* line : {R"({"cmd":"ping","x":1e400})"
                           "\n",
                           R"({"cmd":"ping","args":{"x":-1e999}})"
                           "\n"}) {
    json e = error_of(exchange_raw(d, line));
    CHECK(e.at("code") == "bad_request");
    CHECK_THAT(e.at("message").get<std::string>(), Catch::Contains("number overflow"));
    check_served(d);
  }
  for (std::size_t levels : {std::size_t{100000}, std::size_t{1000000}}) {
    INFO(levels << " levels");
    const std::string deep = R"({"cmd":"ping","args":{"x":)" + std::string(levels, '[') +
                             std::string(levels, ']') + "}}\n";
    json e = error_of(exchange_raw(d, deep));
    CHECK(e.at("code") == "bad_request");
    CHECK(e.at("message") == "request nested deeper than 64 levels of objects and arrays");
    check_served(d);
  }
  d.stop();
  CHECK(d.last_exit() == 0);
}

TEST_CASE(
    "item 7: 300 idle clients under a 256-file limit neither spin the daemon nor lock "
    "out the CLI",
    "[hostile][socket]") {
  TempDir t("p2x-hostile-socket");
  Daemon d(t.path());
  d.set_fd_limit(256);
  d.start();
  std::vector<int> idle = idle_clients(d, 300);
  INFO(idle.size() << " idle clients connected");
  check_served(d);
  // The connection cap keeps most of the daemon's descriptors for the Storage SCP and spool.
  CHECK(open_fds(d.pid()) < 128);
  check_not_spinning(d, std::chrono::milliseconds(2000));
  check_served(d);
  // The clients closed to make room were told why.
  std::size_t told = 0;
  for (int fd : idle) {
    const std::string line = read_line(fd, std::chrono::milliseconds(1));
    told += line.find("too many connections") != std::string::npos;
    close(fd);
  }
  CHECK(told > 0);
  check_served(d);
}

TEST_CASE("item 7: out of descriptors, the idlest client makes room and accept backs off",
          "[hostile][socket]") {
  TempDir t("p2x-hostile-socket");
  Daemon d(t.path());
  d.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // start-up descriptors settle
  const int needs = open_fds(d.pid());
  REQUIRE(needs > 0);
  d.stop();
  // Room for a handful of clients only: accept runs out of descriptors well before the cap.
  d.set_fd_limit(static_cast<unsigned long>(needs + 12));
  d.start();
  std::vector<int> idle = idle_clients(d, 150);
  INFO(idle.size() << " idle clients connected; the daemon needed " << needs << " descriptors");
  check_served(d);
  check_not_spinning(d, std::chrono::milliseconds(2000));
  check_served(d);
  for (int fd : idle) close(fd);
}

TEST_CASE("item 8: list is answered at once while two submits wait on a slow XNAT",
          "[hostile][socket]") {
  TempDir t("p2x-hostile-socket");
  XnatStandin xnat(t.file("xnat"), {"admin:admin"}, {"PROJ"});
  Daemon d(t.path(), {{"xnat", {{"url", xnat.url()}}}});
  d.start();
  write_file(t.file("a.csv"), csv_of("A", 3));
  write_file(t.file("b.csv"), csv_of("B", 3));
  xnat.admin("POST", "/_admin/delay?ms=4000&count=2&path=/data/projects/PROJ");
  auto submit = [&](const std::string& csv) {
    return std::async(std::launch::async, [&d, csv] {
      return d.cli({"submit", csv, "--project", "PROJ", "--pacs", "testpacs"});
    });
  };
  // Requests the stand-in has taken but not answered, from its request clock: each arrival is a
  // tick, so is each answer to a non-admin request (tests/xnat_standin/README.md).
  const long start_seq = xnat.admin("GET", "/_admin/requests").at("seq").get<long>();
  long polls = 0;
  auto unanswered = [&] {
    const json log = xnat.admin("GET", "/_admin/requests");
    ++polls;
    long answered = 0;
    for (const auto& r : log.at("requests")) answered += r.at("seq").get<long>() > start_seq;
    return log.at("seq").get<long>() - start_seq - polls - 2 * answered;
  };
  auto a = submit(t.file("a.csv")), b = submit(t.file("b.csv"));
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (unanswered() < 2 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(unanswered() == 2);  // both pre-flights are held by the stand-in
  for (const char* cmd : {"list", "status", "ping"}) {
    INFO(cmd);
    const auto start = Clock::now();
    CHECK(p2x::ipc::call(d.socket(), cmd, json::object(), 10).at("ok") == true);
    CHECK(seconds_since(start) < 0.5);
  }
  const auto ra = a.get(), rb = b.get();
  INFO(ra.err << rb.err);
  CHECK(ra.exit_code == 0);
  CHECK(rb.exit_code == 0);
  check_served(d);
}

TEST_CASE("item 9: a submit with a bad option is refused naming it, and nothing is queued",
          "[hostile][socket]") {
  TempDir t("p2x-hostile-socket");
  Daemon d(t.path());
  d.start();
  const json base{{"csv_name", "s.csv"},
                  {"csv_base64", "QWNjZXNzaW9uIE51bWJlcgpBMQo="},  // "Accession Number\nA1\n"
                  {"project", "PROJ"},
                  {"pacs", "testpacs"}};
  const std::vector<std::pair<json, std::string>> cases{
      {{{"series_description", 5}}, "\"series_description\" must be text, not number"},
      {{{"strict", "yes"}}, "\"strict\" must be true or false"},
      {{{"modality", "../../etc"}}, "\"modality\" \"../../etc\" is not a DICOM modality"},
      {{{"no_such_option", 1}}, "unknown submit option \"no_such_option\""}};
  for (const auto& [patch, message] : cases) {
    json args = base;
    args.update(patch);
    INFO(args.dump());
    json e = error_of(p2x::ipc::call(d.socket(), "submit", args, 10));
    CHECK(e.at("code") == "bad_request");
    CHECK_THAT(e.at("message").get<std::string>(), Catch::Contains(message));
    check_served(d);
  }
  CHECK(p2x::ipc::call(d.socket(), "list", json::object()).at("result").at("jobs") ==
        json::array());
}

TEST_CASE("item 11: a request over the limit gets the daemon's answer, not a broken pipe",
          "[hostile][socket]") {
  TempDir t("p2x-hostile-socket");
  Daemon d(t.path(), {{"limits", {{"max_request_bytes", 1 << 20}}}});
  d.start();
  // Like the CLI before it reads: the whole request written first (8 MB of CSV as base64).
  const std::string big = R"({"cmd":"submit","args":{"project":"PROJ","pacs":"testpacs",)"
                          R"("csv_base64":")" +
                          std::string(8 << 20, 'A') + "\"}}\n";
  json e = error_of(exchange_raw(d, big));
  CHECK(e.at("code") == "too_large");
  const std::string m = e.at("message");
  CHECK_THAT(
      m, Catch::Contains("limit of 1048576 bytes") && Catch::Contains("limits.max_request_bytes"));
  check_served(d);
  json via_cli_library =
      p2x::ipc::call(d.socket(), "submit", json{{"csv_base64", std::string(8 << 20, 'A')}}, 10);
  CHECK(error_of(via_cli_library).at("code") == "too_large");
  check_served(d);
}

TEST_CASE("item 13: the same CSV resubmitted after a CLI died is refused, naming the job",
          "[hostile][socket]") {
  TempDir t("p2x-hostile-socket");
  XnatStandin xnat(t.file("xnat"), {"admin:admin"}, {"PROJ", "OTHER"});
  Daemon d(t.path(), {{"xnat", {{"url", xnat.url()}}}});
  d.start();
  const std::string csv = csv_of("D", 2);
  write_file(t.file("d.csv"), csv);
  // A CLI killed after sending: the daemon still queues the job, nobody reads the answer.
  {
    const std::string request = json{{"cmd", "submit"},
                                     {"args",
                                      {{"csv_name", "d.csv"},
                                       {"project", "PROJ"},
                                       {"pacs", "testpacs"},
                                       {"csv_base64", p2x::ipc::bytes_value(csv)}}}}
                                    .dump() +
                                "\n";
    int fd = connect_unix(d.socket());
    REQUIRE(fd >= 0);
    REQUIRE(send_all(fd, request));
    close(fd);
  }
  const auto until = Clock::now() + std::chrono::seconds(10);
  json jobs;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    jobs = p2x::ipc::call(d.socket(), "list", json::object()).at("result").at("jobs");
  } while (jobs.empty() && Clock::now() < until);
  REQUIRE(jobs.size() == 1);
  const std::string first = std::to_string(jobs[0].at("job").get<int>());

  auto again = d.cli({"submit", t.file("d.csv"), "--project", "PROJ", "--pacs", "testpacs"});
  CHECK(again.exit_code == 1);
  CHECK_THAT(again.err, Catch::Contains("already submitted to project PROJ as job " + first) &&
                            Catch::Contains("--allow-duplicate"));
  CHECK(p2x::ipc::call(d.socket(), "list", json::object()).at("result").at("jobs").size() == 1);

  auto other = d.cli({"submit", t.file("d.csv"), "--project", "OTHER", "--pacs", "testpacs"});
  CHECK(other.exit_code == 0);
  auto forced = d.cli(
      {"submit", t.file("d.csv"), "--project", "PROJ", "--pacs", "testpacs", "--allow-duplicate"});
  INFO(forced.err);
  CHECK(forced.exit_code == 0);
  CHECK(p2x::ipc::call(d.socket(), "list", json::object()).at("result").at("jobs").size() == 3);
  CHECK(xnat.uploads_per_session().empty());
  check_served(d);
}

// The real pacs2xnatd as systemd sees it: sd_notify messages on a NOTIFY_SOCKET owned by the test
// (READY, WATCHDOG, RELOADING, STOPPING) and where its log records go (stderr or journald).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "ipc/client.hpp"
#include "standin.hpp"
#include "support/temp_dir.hpp"

using namespace p2x::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// The manager's end of NOTIFY_SOCKET: an AF_UNIX datagram socket bound to a path.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || path_.size() >= sizeof addr.sun_path) {
      throw std::runtime_error("cannot create notify socket " + path_);
    }
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("cannot bind " + path_ + ": " + std::strerror(errno));
    }
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }

  // The next datagram, or nothing when none arrives before `deadline`.
  std::optional<std::string> receive(Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left < 0) left = 0;
      pollfd p{fd_, POLLIN, 0};
      int n = poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      char buf[4096];
      ssize_t got = recv(fd_, buf, sizeof buf, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return std::nullopt;
      return std::string(buf, static_cast<std::size_t>(got));
    }
  }

  // Every datagram until `deadline`.
  std::vector<std::string> drain_until(Clock::time_point deadline) {
    std::vector<std::string> out;
    while (auto m = receive(deadline)) out.push_back(*m);
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// One sd_notify datagram holds newline-separated assignments ("READY=1\nSTATUS=...").
bool has_line(const std::string& datagram, const std::string& line) {
  std::istringstream in(datagram);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

int count_lines(const std::vector<std::string>& datagrams, const std::string& line) {
  int n = 0;
  for (const auto& d : datagrams) n += has_line(d, line) ? 1 : 0;
  return n;
}

std::string joined(const std::vector<std::string>& datagrams) {
  std::string s;
  for (const auto& d : datagrams) s += "<" + d + "> ";
  return s;
}

// Waits for READY=1 and, the moment it arrives, asks the daemon's socket for its pid.
struct ReadyCheck {
  std::vector<std::string> received;  // up to and including the READY datagram
  bool ready = false;
  int ping_pid = 0;
  std::string ping_error;
};

ReadyCheck wait_ready_then_ping(NotifySocket& notify, const std::string& socket) {
  ReadyCheck r;
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (auto m = notify.receive(deadline)) {
    r.received.push_back(*m);
    if (!has_line(*m, "READY=1")) continue;
    r.ready = true;
    try {
      auto reply = p2x::ipc::call(socket, "ping", json::object(), 2);
      r.ping_pid = reply.value("ok", false) ? reply["result"].value("pid", 0) : 0;
      if (r.ping_pid == 0) r.ping_error = reply.dump();
    } catch (const std::exception& e) {
      r.ping_error = e.what();
    }
    break;
  }
  return r;
}

std::string stat_id(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

bool wait_for_log(const Daemon& d, const std::string& needle, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (d.log().find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

}  // namespace

TEST_CASE(
    "sd_notify: READY once the socket answers - WATCHDOG pings - RELOADING on SIGHUP - "
    "STOPPING on SIGTERM",
    "[systemd]") {
  TempDir t("p2x-sysd");
  NotifySocket notify(t.file("notify.sock"));
  // sd_watchdog_enabled() compares WATCHDOG_PID with getpid(); the pid is unknown before fork.
  unsetenv("WATCHDOG_PID");
  Daemon d(t.path());
  d.set_env({"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=600000"});

  auto ready = std::async(std::launch::async, [&notify, socket = d.socket()] {
    return wait_ready_then_ping(notify, socket);
  });
  d.start();
  ReadyCheck r = ready.get();
  INFO("received: " << joined(r.received) << "\nlog:\n" << d.log());
  REQUIRE(r.ready);
  // READY=1 is the daemon's first message, and its socket answers the moment it arrives.
  CHECK(r.received.size() == 1);
  CHECK(r.ping_error == "");
  CHECK(r.ping_pid == d.pid());

  // WATCHDOG_USEC=600000: a ping at least every 300 ms while the workers are healthy.
  auto pings = notify.drain_until(Clock::now() + std::chrono::seconds(2));
  INFO("within 2 s: " << joined(pings));
  CHECK(count_lines(pings, "WATCHDOG=1") >= 3);
  CHECK(count_lines(pings, "WATCHDOG=1") <= 20);
  CHECK(count_lines(pings, "READY=1") == 0);
  CHECK(count_lines(pings, "STOPPING=1") == 0);

  // SIGHUP: RELOADING=1, then READY=1 again.
  REQUIRE(kill(d.pid(), SIGHUP) == 0);
  std::vector<std::string> reload;
  auto reload_deadline = Clock::now() + std::chrono::seconds(10);
  bool reloading = false, ready_again = false;
  while (!ready_again) {
    auto m = notify.receive(reload_deadline);
    if (!m) break;
    reload.push_back(*m);
    if (has_line(*m, "RELOADING=1")) reloading = true;
    if (reloading && has_line(*m, "READY=1")) ready_again = true;
  }
  INFO("after SIGHUP: " << joined(reload));
  CHECK(reloading);
  CHECK(ready_again);

  // SIGTERM: STOPPING=1, nothing claims readiness after it, and a clean exit.
  d.stop();
  auto after = notify.drain_until(Clock::now() + milliseconds(300));
  INFO("after SIGTERM: " << joined(after) << "\nlog:\n" << d.log());
  CHECK(d.last_exit() == 0);
  REQUIRE(count_lines(after, "STOPPING=1") == 1);
  bool seen_stopping = false;
  for (const auto& m : after) {
    if (seen_stopping) CHECK_FALSE(has_line(m, "READY=1"));
    if (has_line(m, "STOPPING=1")) seen_stopping = true;
  }
}

TEST_CASE("sd_notify: no WATCHDOG pings when WATCHDOG_PID names another process", "[systemd]") {
  TempDir t("p2x-sysd");
  NotifySocket notify(t.file("notify.sock"));
  Daemon d(t.path());
  // systemd sets WATCHDOG_PID to the main pid; a forked helper must not ping for it.
  d.set_env({"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=600000",
             "WATCHDOG_PID=" + std::to_string(getpid())});
  d.start();
  auto got = notify.drain_until(Clock::now() + milliseconds(1500));
  INFO("received: " << joined(got));
  CHECK(count_lines(got, "READY=1") == 1);
  CHECK(count_lines(got, "WATCHDOG=1") == 0);
  d.stop();
  CHECK(d.last_exit() == 0);
}

TEST_CASE("log: outside journald stderr lines carry the job and item context", "[systemd][log]") {
  TempDir t("p2x-sysd");
  unsetenv("JOURNAL_STREAM");
  XnatStandin xnat(t.file("xnat"), {"admin:admin"}, {"PROJ1"});
  // The PACS at 127.0.0.1:9 refuses connections; with circuit_failures 1 the first refusal
  // opens the circuit breaker, which is logged while the worker holds the item.
  Daemon d(t.path(), {{"xnat", {{"url", xnat.url()}}}, {"limits", {{"circuit_failures", 1}}}});
  d.start();
  write_file(t.file("studies.csv"), "Accession Number,Subject,Session\r\nACC1,SUBJ1,SESS1\r\n");
  auto r = d.cli({"submit", t.file("studies.csv"), "--project", "PROJ1", "--pacs", "testpacs"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const std::string context = "] [job 1 item 1 acc=ACC1 pacs=testpacs project=PROJ1";
  bool found = wait_for_log(d, context, std::chrono::seconds(15));
  INFO("log:\n" << d.log());
  CHECK(found);
  CHECK(d.log().find("[info] pacs2xnatd ready") != std::string::npos);
  d.stop();
  CHECK(d.last_exit() == 0);
}

TEST_CASE("log: JOURNAL_STREAM naming stderr sends records to journald - not as text",
          "[systemd][log]") {
  // The harness sends the daemon's stdout and stderr to <dir>/daemon.log; create it first so
  // its device and inode are known, as systemd's JOURNAL_STREAM gives them.
  TempDir t("p2x-sysd");
  write_file(t.file("daemon.log"), "");
  write_file(t.file("other.log"), "");
  Daemon d(t.path());
  bool journal = false;
  SECTION("stderr is the journal stream") {
    journal = true;
    d.set_env({"JOURNAL_STREAM=" + stat_id(t.file("daemon.log"))});
  }
  SECTION("JOURNAL_STREAM names another file") {
    d.set_env({"JOURNAL_STREAM=" + stat_id(t.file("other.log"))});
  }
  d.start();
  d.stop();
  CHECK(d.last_exit() == 0);
  INFO("log:\n" << d.log());
  // Under journald the records went to the journal (or were dropped when it is not running).
  CHECK((d.log().find("[info] pacs2xnatd ready") == std::string::npos) == journal);
  CHECK((d.log().find("[info] pacs2xnatd stopped") == std::string::npos) == journal);
}

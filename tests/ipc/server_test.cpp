// ipc::Server against clients that misbehave (issue 12): idle connections, too many of them,
// requests over the size limit written in full before reading, running out of descriptors,
// and read commands while every Remote worker is stuck.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <dirent.h>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "ipc/client.hpp"
#include "ipc/server.hpp"
#include "support/temp_dir.hpp"
#include "support/unix_client.hpp"

using namespace p2x::ipc;
using p2x::test::connect_unix;
using p2x::test::read_line;
using p2x::test::send_all;
using Clock = std::chrono::steady_clock;

namespace {

// True when the peer has closed (read returns 0 or an error) within `timeout`.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::max<long>(0, left.count()))) <= 0) return false;
    char buf[4096];
    if (read(fd, buf, sizeof buf) <= 0) return true;
  }
}

json error_in(const std::string& line) {
  INFO(line);
  json j = json::parse(line);
  REQUIRE(j.at("ok") == false);
  return j.at("error");
}

// Handlers that hold their callers until released, counting how many are held.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int held = 0;
  json pass() {
    std::unique_lock lock(mu);
    ++held;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    return json{{"passed", true}};
  }
  void wait_held(int n) {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return held >= n; }));
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
};

struct Fixture {
  p2x::test::TempDir dir{"p2x-ipc-server"};
  std::string path = dir.file("s.sock");
  Gate gate;
  Dispatcher d;
  Fixture() {
    d.add(
        "list",
        [](const json&, const Peer&) {
          return json{{"jobs", json::array()}};
        },
        Lane::Local);
    d.add("slow", [this](const json&, const Peer&) { return gate.pass(); });
  }
  ~Fixture() { gate.release(); }
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int open_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;  // opendir's own
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

TEST_CASE("a connection that sends no complete request is closed after the idle timeout",
          "[ipc][hostile]") {
  Fixture f;
  ServerOptions o;
  o.idle_timeout = std::chrono::milliseconds(300);
  Server server(f.path, f.d, o);

  int silent = connect_unix(f.path), partial = connect_unix(f.path), served = connect_unix(f.path);
  REQUIRE(silent >= 0);
  REQUIRE(partial >= 0);
  REQUIRE(served >= 0);
  REQUIRE(send_all(partial, R"({"cmd":"li)"));
  REQUIRE(send_all(served, R"({"cmd":"list"})"
                           "\n"));
  CHECK(json::parse(read_line(served, std::chrono::seconds(2))).at("ok") == true);
  const auto start = Clock::now();
  for (int fd : {silent, partial, served}) {  // served: idle again after its answer
    json e = error_in(read_line(fd, std::chrono::seconds(3)));
    CHECK(e.at("code") == code::timed_out);
    CHECK(e.at("message") == "closed: no complete request within 300 ms");
    CHECK(closed_by_peer(fd, std::chrono::seconds(1)));
    close(fd);
  }
  CHECK(seconds_since(start) < 2.0);
  CHECK(call(f.path, "list", json::object()).at("ok") == true);
}

TEST_CASE("read commands are answered while every Remote worker waits", "[ipc][hostile]") {
  Fixture f;
  ServerOptions o;
  o.remote_threads = 2;
  Server server(f.path, f.d, o);
  std::vector<std::future<json>> slow;  // Catch's assertions stay on this thread
  for (int i = 0; i < 3; ++i) {         // one more than the Remote pool: it queues
    slow.push_back(
        std::async(std::launch::async, [&] { return call(f.path, "slow", json::object()); }));
  }
  f.gate.wait_held(2);
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    CHECK(call(f.path, "list", json::object(), 5).at("ok") == true);
    CHECK(seconds_since(start) < 0.5);
  }
  f.gate.release();
  for (auto& answer : slow) CHECK(answer.get().at("ok") == true);
}

TEST_CASE("at the connection cap the connection idle the longest makes room", "[ipc][hostile]") {
  Fixture f;
  ServerOptions o;
  o.max_connections = 3;
  Server server(f.path, f.d, o);
  // The first never sends anything; each later one is answered once, so it was accepted (after
  // the first: accepted in order) and was active after the first.
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(connect_unix(f.path));
    REQUIRE(idle.back() >= 0);
    if (i == 0) continue;
    REQUIRE(send_all(idle.back(), R"({"cmd":"list"})"
                                  "\n"));
    REQUIRE(json::parse(read_line(idle.back(), std::chrono::seconds(2))).at("ok") == true);
  }
  CHECK(call(f.path, "list", json::object(), 5).at("ok") == true);
  json e = error_in(read_line(idle[0], std::chrono::seconds(2)));
  CHECK(e.at("code") == code::busy);
  CHECK_THAT(e.at("message").get<std::string>(), Catch::Contains("too many connections"));
  CHECK(closed_by_peer(idle[0], std::chrono::seconds(1)));
  // The others still work.
  REQUIRE(send_all(idle[2], R"({"cmd":"list"})"
                            "\n"));
  CHECK(json::parse(read_line(idle[2], std::chrono::seconds(2))).at("ok") == true);
  for (int fd : idle) close(fd);
}

TEST_CASE("with every connection busy a newcomer is told so at once", "[ipc][hostile]") {
  Fixture f;
  ServerOptions o;
  o.max_connections = 2;
  Server server(f.path, f.d, o);
  std::vector<std::future<json>> slow;
  for (int i = 0; i < 2; ++i) {
    slow.push_back(
        std::async(std::launch::async, [&] { return call(f.path, "slow", json::object()); }));
  }
  f.gate.wait_held(2);
  const auto start = Clock::now();
  json r = call(f.path, "list", json::object(), 5);
  CHECK(seconds_since(start) < 0.5);
  CHECK(r.at("ok") == false);
  CHECK(r.at("error").at("code") == code::busy);
  CHECK(r.at("error").at("message") == "pacs2xnatd is busy with 2 connections; try again shortly");
  f.gate.release();
  for (auto& answer : slow) CHECK(answer.get().at("ok") == true);
  CHECK(call(f.path, "list", json::object()).at("ok") == true);
}

TEST_CASE("a request over the limit is answered, also to a client that writes it all first",
          "[ipc][hostile]") {
  Fixture f;
  Server server(f.path, f.d, 1 << 20);
  const std::string big =
      R"({"cmd":"list","args":{"csv_base64":")" + std::string(4 << 20, 'A') + "\"}}\n";
  auto check_too_large = [](const json& e) {
    CHECK(e.at("code") == code::too_large);
    const std::string m = e.at("message");
    CHECK_THAT(m, Catch::Contains("limit of 1048576 bytes") &&
                      Catch::Contains("limits.max_request_bytes"));
  };
  SECTION("a client that writes the whole request before it reads") {
    int fd = connect_unix(f.path);
    REQUIRE(fd >= 0);
    REQUIRE(send_all(fd, big));  // the server reads all of it: no broken pipe
    check_too_large(error_in(read_line(fd, std::chrono::seconds(5))));
    CHECK(closed_by_peer(fd, std::chrono::seconds(2)));
    close(fd);
  }
  SECTION("ipc::call") {
    json r = call(f.path, "list", json{{"csv_base64", std::string(4 << 20, 'A')}}, 10);
    check_too_large(r.at("error"));
  }
  SECTION("a line that never ends is dropped only up to a bound") {
    ServerOptions o;
    o.max_request_bytes = 1 << 20;
    o.max_discard_bytes = 2 << 20;
    Fixture g;
    Server bounded(g.path, g.d, o);
    int fd = connect_unix(g.path);
    REQUIRE(fd >= 0);
    std::size_t sent = 0;
    const std::string chunk(64 * 1024, 'x');
    while (sent < (std::size_t{64} << 20) && send_all(fd, chunk)) sent += chunk.size();
    CHECK(sent < (std::size_t{8} << 20));  // the server hung up after ~3 MB
    close(fd);
  }
  CHECK(call(f.path, "list", json::object()).at("ok") == true);
}

TEST_CASE("out of descriptors with every connection busy: accept backs off and recovers",
          "[ipc][hostile]") {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  rlimit old_limit{};
  getrlimit(RLIMIT_NOFILE, &old_limit);
  {
    Fixture f;
    ServerOptions o;
    o.remote_threads = 4;
    Server server(f.path, f.d, o);
    std::vector<int> held;
    for (int i = 0; i < 4; ++i) {
      held.push_back(connect_unix(f.path));
      REQUIRE(held.back() >= 0);
      REQUIRE(send_all(held.back(), R"({"cmd":"slow"})"
                                    "\n"));
    }
    f.gate.wait_held(4);
    // Every descriptor but one in use: the client's socket takes it, so the server's accept
    // fails with EMFILE while no connection is idle enough to be closed.
    rlimit low = old_limit;
    low.rlim_cur = static_cast<rlim_t>(open_fds() + 16);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> filler;
    for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
    REQUIRE(errno == EMFILE);
    close(filler.back());
    filler.pop_back();
    int waiting = connect_unix(f.path);
    REQUIRE(waiting >= 0);
    REQUIRE(send_all(waiting, R"({"cmd":"list"})"
                              "\n"));
    const double cpu_before = cpu_seconds();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    CHECK(cpu_seconds() - cpu_before < 0.3);  // no accept loop spinning on EMFILE
    f.gate.release();
    for (int fd : held) CHECK(json::parse(read_line(fd, std::chrono::seconds(5))).at("ok") == true);
    // Once the held connections are idle, one of them makes room for the waiting client.
    CHECK(json::parse(read_line(waiting, std::chrono::seconds(5))).at("ok") == true);
    for (int fd : filler) close(fd);
    for (int fd : held) close(fd);
    close(waiting);
    setrlimit(RLIMIT_NOFILE, &old_limit);
  }
  spdlog::set_default_logger(previous);
  const std::string text = log.str();
  INFO(text);
  std::size_t lines = 0;
  for (auto at = text.find("ipc accept failed"); at != std::string::npos;
       at = text.find("ipc accept failed", at + 1)) {
    ++lines;
  }
  CHECK(lines == 1);
  CHECK_THAT(text, Catch::Contains("Too many open files") && Catch::Contains("retrying in 100 ms"));
}

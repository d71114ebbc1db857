// Hostile clients at the web door of the real daemon: oversized headers and bodies (a 100 MB
// CSV upload included), a slow client, 1,000 idle connections, path traversal in asset URLs,
// malformed cookies and request lines. Each gets a clear answer (or is closed), the daemon's
// memory stays bounded, and the daemon, its web door and its control socket keep serving.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "harness.hpp"
#include "standin.hpp"
#include "support/temp_dir.hpp"
#include "web_client.hpp"

using namespace p2x::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// Everything the server sends until it closes or `limit` passes.
std::string read_all(int fd, std::chrono::milliseconds limit = 10s) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + limit;
  char buf[65536];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string raw(std::uint16_t port, const std::string& bytes) {
  const int fd = connect_to(port);
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string out = read_all(fd, 5s);
  ::close(fd);
  return out;
}

int status_of(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(answer.substr(9, 3));
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Sends a body of `size` bytes after `head` until the server answers; returns the answer.
std::string upload(std::uint16_t port, const std::string& head, std::size_t size) {
  const int fd = connect_to(port);
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  const std::string chunk(64 * 1024, 'A');
  std::string answer;
  for (std::size_t sent = 0; sent < size;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;
    const ssize_t n = ::send(fd, chunk.data(), std::min(chunk.size(), size - sent), MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  answer = read_all(fd, 5s);
  ::close(fd);
  return answer;
}

struct HostileWorld {
  TempDir dir{"p2x-web-hostile"};
  XnatStandin xnat{dir.file("xnat"),
                   {"admin:admin", "alice:alice-pw"},
                   {"PROJ"},
                   false,
                   {"--role", "alice:PROJ:member"}};
  std::uint16_t port = free_port();
  Daemon daemon{
      dir.path(),
      json{{"xnat", {{"url", xnat.url()}}},
           {"limits", {{"max_request_bytes", 1 << 20}}},
           {"web", {{"listen", "127.0.0.1:" + std::to_string(port)}, {"max_connections", 64}}}}};
  HostileWorld() {
    daemon.set_fd_limit(4096);
    daemon.start();
  }
  // The daemon, its web door and its socket all still serve.
  void check_serving() {
    REQUIRE(::kill(daemon.pid(), 0) == 0);
    WebClient c(port);
    CHECK(c.get("/login").status == 200);
    CHECK(daemon.cli({"list", "--json"}).exit_code == 0);
  }
};

}  // namespace

TEST_CASE("oversized headers and bodies, a 100 MB CSV: clear answers, bounded memory",
          "[web][hostile]") {
  HostileWorld w;
  const long before = rss_kib(w.daemon.pid());
  const std::string big_header(20000, 'x');
  CHECK(status_of(raw(
            w.port, "GET /login HTTP/1.1\r\nHost: a\r\nX-Big: " + big_header + "\r\n\r\n")) == 431);
  CHECK(status_of(raw(w.port, "GET /login HTTP/1.1\r\nHost: a\r\nCookie: " + big_header +
                                  "\r\n\r\n")) == 431);
  // A login form of 1 MB: small routes take 64 KiB.
  const auto login =
      upload(w.port, "POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n", 1 << 20);
  CHECK(status_of(login) == 413);
  // 100 MB of CSV for a logged-in person, with Content-Length and chunked.
  WebClient alice(w.port);
  REQUIRE(alice.login("alice", "alice-pw").status == 303);
  const std::string auth = "Cookie: p2x_session=" + alice.cookie("p2x_session") +
                           "\r\nX-CSRF-Token: " + alice.csrf() + "\r\n";
  const std::size_t hundred_mb = 100u << 20;
  const auto sized =
      upload(w.port,
             "POST /api/submit HTTP/1.1\r\nHost: a\r\n" + auth +
                 "Content-Type: application/json\r\nContent-Length: " + std::to_string(hundred_mb) +
                 "\r\n\r\n",
             hundred_mb);
  CHECK(status_of(sized) == 413);
  CHECK(sized.find("limits.max_request_bytes") != std::string::npos);
  std::string chunked_head =
      "POST /api/submit HTTP/1.1\r\nHost: a\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n";
  const int fd = connect_to(w.port);
  ::send(fd, chunked_head.data(), chunked_head.size(), MSG_NOSIGNAL);
  const std::string chunk = "10000\r\n" + std::string(0x10000, 'B') + "\r\n";
  for (int i = 0; i < 1600; ++i) {  // 100 MiB
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;
    if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) break;
  }
  CHECK(status_of(read_all(fd, 5s)) == 413);
  ::close(fd);
  const long after = rss_kib(w.daemon.pid());
  INFO("daemon RSS " << before << " KiB -> " << after << " KiB");
  CHECK(after - before < 48 * 1024);
  w.check_serving();
}

TEST_CASE("path traversal, malformed cookies and request lines", "[web][hostile]") {
  HostileWorld w;
  for (const std::string& t : std::vector<std::string>{
           "/assets/../../../etc/passwd", "/assets/..%2f..%2fetc%2fpasswd",
           "/assets/%2e%2e/%2e%2e/CMakeLists.txt", "/assets/./app.js", "/assets/app.js%00.png",
           "/assets/" + std::string(3000, 'a'), "/../../etc/passwd", "//etc/passwd"}) {
    const std::string answer =
        raw(w.port, "GET " + t + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    INFO(t);
    const int status = status_of(answer);
    CHECK((status == 404 || status == 303));
    CHECK(answer.find("root:") == std::string::npos);
  }
  WebClient c(w.port);
  for (const std::string& cookie :
       std::vector<std::string>{"p2x_session", "p2x_session=", "p2x_session=;;;;",
                                "=;=;=", "p2x_session=" + std::string(64, 'z'),
                                "p2x_session=" + std::string(64, 'a'), "p2x_session=\xff\xfe\x80",
                                std::string(8000, ';'), "a=b; p2x_session=\"\"; p2x_session=1"}) {
    const auto r = c.request("GET", "/api/jobs", "", "", {{"Cookie", cookie}});
    CHECK(r.status == 401);
    CHECK(c.request("GET", "/jobs", "", "", {{"Cookie", cookie}}).status == 303);
  }
  for (const std::string& junk : std::vector<std::string>{
           "GARBAGE\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
           std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
           "POST /login HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
           "POST /login HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"}) {
    const int status = status_of(raw(w.port, junk));
    CHECK((status == 0 || status == 400 || status == 413));
  }
  w.check_serving();
}

TEST_CASE("a slow client and 1,000 idle connections do not lock anyone out", "[web][hostile]") {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur < 2048 && files.rlim_max >= 2048) {
    files.rlim_cur = 2048;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  HostileWorld w;
  const long before = rss_kib(w.daemon.pid());
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) idle.push_back(connect_to(w.port));
  // Every one of them was accepted; the oldest idle ones were closed to make room, and a real
  // person still gets in at once.
  const auto t0 = std::chrono::steady_clock::now();
  WebClient c(w.port);
  CHECK(c.get("/login").status == 200);
  CHECK(c.login("alice", "alice-pw").status == 303);
  CHECK(c.get("/api/jobs").status == 200);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(w.daemon.cli({"list", "--json"}).exit_code == 0);
  int closed = 0;
  for (int fd : idle) {
    pollfd p{fd, POLLIN, 0};
    char b;
    if (::poll(&p, 1, 0) > 0 && ::recv(fd, &b, 1, MSG_DONTWAIT) <= 0) ++closed;
  }
  CHECK(closed >= 1000 - 64);
  for (int fd : idle) ::close(fd);
  // A client that sends its headers a byte at a time, never finishing them.
  const int slow = connect_to(w.port);
  const auto slow_started = std::chrono::steady_clock::now();
  std::thread trickle([slow] {
    const std::string head = "GET /login HTTP/1.1\r\nHost: a\r\nX-Slow: ";
    ::send(slow, head.data(), head.size(), MSG_NOSIGNAL);
    for (int i = 0; i < 40; ++i) {
      if (::send(slow, "x", 1, MSG_NOSIGNAL) <= 0) return;
      std::this_thread::sleep_for(500ms);
    }
  });
  // The slow client is cut off by the header deadline (15 s), long before it would finish.
  const std::string answer = read_all(slow, 25s);
  CHECK(std::chrono::steady_clock::now() - slow_started < 22s);
  CHECK(answer.find("HTTP/1.1 200") == std::string::npos);
  trickle.join();
  ::close(slow);
  CHECK(rss_kib(w.daemon.pid()) - before < 32 * 1024);
  w.check_serving();
}

// The TCP connect of our associations (lib/pacs/connect.hpp): each association gives up after
// its own peer's connect timeout, also when threads connect at once to peers with different
// timeouts; DCMTK's process-wide connect timeout is neither read nor written; handed-over
// sockets leave nothing open behind them. Peers that never accept are listening sockets whose
// backlog is full (the kernel drops further SYNs: the connect hangs as towards a black hole).
#include "pacs/association.hpp"
#include "pacs/pacs.hpp"
#include "support/pacs_fixture.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

using namespace p2x;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A listening socket on 127.0.0.1 that never accepts, its accept queue filled by connections of
// its own: a connect to it stays unanswered until the connecting side gives up.
class FullBacklog {
 public:
  FullBacklog() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ||
        ::listen(listener_, 0) ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len))
      throw std::runtime_error("full backlog: bind/listen failed");
    port_ = ntohs(addr.sin_port);
    fill(addr);
  }
  ~FullBacklog() {
    for (int fd : fillers_) ::close(fd);
    ::close(listener_);
  }
  FullBacklog(const FullBacklog&) = delete;
  FullBacklog& operator=(const FullBacklog&) = delete;

  std::uint16_t port() const { return port_; }

 private:
  // Connects until one connection stays unanswered for 500 ms (the queue is full).
  void fill(const sockaddr_in& addr) {
    for (int i = 0; i < 64; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
      pollfd pfd{fd, POLLOUT, 0};
      if (rc != 0 && (errno != EINPROGRESS || ::poll(&pfd, 1, 500) == 0)) {
        ::close(fd);  // unanswered: full
        return;
      }
      fillers_.push_back(fd);
    }
    throw std::runtime_error("full backlog: the accept queue never filled");
  }

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::vector<int> fillers_;
};

pacs::Peer peer_at(std::uint16_t port, int connect_s) {
  pacs::Peer p;
  p.ae_title = "NEVER";
  p.host = "127.0.0.1";
  p.port = port;
  p.our_ae = "P2XCONNECT";
  p.timeouts.connect_s = connect_s;
  p.timeouts.acse_s = 30;  // never reached: the connect never completes
  return p;
}

struct Attempt {
  double seconds = 0;
  bool connect_error = false, transient = false;
  std::string what;
};

Attempt echo_attempt(const pacs::Peer& peer) {
  Attempt a;
  const auto t0 = Clock::now();
  try {
    pacs::Client(peer).echo();
    a.what = "echo succeeded";
  } catch (const pacs::PacsError& e) {
    a.connect_error = e.kind() == pacs::ErrorKind::Connect;
    a.transient = e.transient();
    a.what = e.what();
  }
  a.seconds = seconds_since(t0);
  return a;
}

std::size_t open_descriptors() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("Connect: two threads, two timeouts - each gives up after its own", "[pacs][connect]") {
  pacs::init_network();
  FullBacklog short_peer, long_peer;
  auto quick = std::async(std::launch::async, echo_attempt, peer_at(short_peer.port(), 1));
  auto slow = std::async(std::launch::async, echo_attempt, peer_at(long_peer.port(), 4));
  const Attempt q = quick.get(), s = slow.get();
  INFO("1 s peer: " << q.seconds << " s, " << q.what);
  INFO("4 s peer: " << s.seconds << " s, " << s.what);
  CHECK(q.connect_error);
  CHECK(q.transient);
  CHECK(s.connect_error);
  CHECK(s.transient);
  CHECK(q.what.find("within 1 s") != std::string::npos);
  CHECK(s.what.find("within 4 s") != std::string::npos);
  CHECK(q.what.find(std::to_string(short_peer.port())) != std::string::npos);
  // Generous ranges: the 1 s attempt must not take the 4 s peer's value, nor the other way.
  CHECK(q.seconds >= 0.9);
  CHECK(q.seconds < 3.0);
  CHECK(s.seconds >= 3.9);
  CHECK(s.seconds < 8.0);
}

TEST_CASE("Connect: DCMTK's process-wide connect timeout is neither used nor written",
          "[pacs][connect]") {
  pacs::init_network();
  const Sint32 before = dcmConnectionTimeout.get();
  dcmConnectionTimeout.set(30);  // were it used, the attempt below would take 30 s
  FullBacklog peer;
  const Attempt a = echo_attempt(peer_at(peer.port(), 1));
  const Sint32 after = dcmConnectionTimeout.get();
  dcmConnectionTimeout.set(before);
  INFO(a.what);
  CHECK(a.connect_error);
  CHECK(a.seconds < 3.0);
  CHECK(after == 30);
}

TEST_CASE("Connect: an unknown host is a transient Connect error naming it", "[pacs][connect]") {
  pacs::init_network();
  auto peer = peer_at(104, 5);
  peer.host = "no-such-host.invalid";
  const Attempt a = echo_attempt(peer);
  INFO(a.what);
  CHECK(a.connect_error);
  CHECK(a.transient);
  CHECK(a.what.find("no-such-host.invalid") != std::string::npos);
}

TEST_CASE("Connect: DUL works on our connection to the peer, with its options set on it",
          "[pacs][connect]") {
  pacs::init_network();  // TCP_NODELAY=1: DUL sets it on every connection it makes
  test::TempDir dir("p2x-connect-test");
  const std::uint16_t port = test::free_port();
  pacs::ScpOptions opts;
  opts.staging_dir = dir.file("staging");
  pacs::StorageScp scp("P2XCONNECTSCP", port, 4, opts);
  scp.start();
  pacs::Peer peer = peer_at(port, 5);
  peer.ae_title = "P2XCONNECTSCP";
  pacs::detail::Association assoc(
      peer,
      {{UID_VerificationSOPClass, pacs::detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}},
      "C-ECHO");
  // Our descriptors connected to the SCP's port: the association's, and only it.
  std::vector<int> to_scp;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(e.path().filename().string());
    sockaddr_in remote{};
    socklen_t len = sizeof remote;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &len) == 0 &&
        remote.sin_family == AF_INET && ntohs(remote.sin_port) == port)
      to_scp.push_back(fd);
  }
  REQUIRE(to_scp.size() == 1);
  int nodelay = 0;
  socklen_t len = sizeof nodelay;
  REQUIRE(::getsockopt(to_scp[0], IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0);
  CHECK(nodelay != 0);  // set by DUL after the hand-over, on our socket
  // And the association works on it.
  DIC_US status = 0;
  DcmDataset* detail = nullptr;
  CHECK(DIMSE_echoUser(assoc.get(), 1, DIMSE_BLOCKING, 0, &status, &detail).good());
  delete detail;
  CHECK(status == STATUS_Success);
  assoc.release();
}

TEST_CASE("Connect: handed-over connections leave no descriptor open", "[pacs][connect]") {
  pacs::init_network();
  test::TempDir dir("p2x-connect-test");
  const std::uint16_t port = test::free_port();
  pacs::ScpOptions opts;
  opts.staging_dir = dir.file("staging");
  pacs::StorageScp scp("P2XCONNECTSCP", port, 4, opts);
  scp.start();
  pacs::Peer peer = peer_at(port, 5);
  peer.ae_title = "P2XCONNECTSCP";
  REQUIRE(pacs::Client(peer).echo() > 0);  // the hand-over listener exists from here on
  const std::size_t open_before = open_descriptors();
  for (int i = 0; i < 100; ++i) REQUIRE(pacs::Client(peer).echo() > 0);
  // The SCP may still be closing the last association's socket: a margin of a few.
  CHECK(open_descriptors() <= open_before + 4);
}

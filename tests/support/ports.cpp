// Free TCP ports for the servers tests start (see ports.hpp).
#include "ports.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>

namespace p2x::test {

namespace {

// True when nothing listens on (or holds) TCP port `port` on any address right now.
bool port_is_free(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("free_port: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(port);
  const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return free;
}

// The lowest port of the kernel's ephemeral range (outgoing connections and bind(0) take ports
// from it): ports below it are never taken by a connection another test opens meanwhile.
std::uint16_t ephemeral_low() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned low = 32768;
  in >> low;
  return static_cast<std::uint16_t>(low > 20000 ? low : 32768);
}

}  // namespace

// A port below the ephemeral range, at random (tests run in parallel processes), free now and
// never handed out before by this process. Ports from bind(0) were taken by outgoing
// connections of other tests between the check and the daemon's listen ("Address already in
// use" in CI); these are not.
std::uint16_t free_port() {
  static std::mutex mu;
  static std::set<std::uint16_t> handed_out;
  static std::mt19937 pick{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  const std::uint16_t high = ephemeral_low();
  std::uniform_int_distribution<int> in_range(10000, high - 1);
  for (int i = 0; i < 200; ++i) {
    const auto p = static_cast<std::uint16_t>(in_range(pick));
    if (!handed_out.count(p) && port_is_free(p)) {
      handed_out.insert(p);
      return p;
    }
  }
  throw std::runtime_error("free_port: no free port found below the ephemeral range");
}

}  // namespace p2x::test

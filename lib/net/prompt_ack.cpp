// TCP_QUICKACK re-arming and the switch that turns it off for measurements (prompt_ack.hpp).
#include "net/prompt_ack.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace p2x::net {

namespace {

std::atomic<std::uint64_t> g_rearms{0};

bool enabled_by_environment() {
  const char* v = std::getenv("P2X_PROMPT_ACK");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> enabled{enabled_by_environment()};
  return enabled;
}

}  // namespace

bool prompt_ack_enabled() {
#ifdef TCP_QUICKACK
  return enabled_flag().load(std::memory_order_relaxed);
#else
  return false;
#endif
}

void set_prompt_ack_enabled(bool enabled) {
  enabled_flag().store(enabled);
}

void quick_ack(int fd) {
#ifdef TCP_QUICKACK
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
  g_rearms.fetch_add(1, std::memory_order_relaxed);
#else
  static_cast<void>(fd);
#endif
}

std::uint64_t prompt_ack_rearms() {
  return g_rearms.load(std::memory_order_relaxed);
}

}  // namespace p2x::net

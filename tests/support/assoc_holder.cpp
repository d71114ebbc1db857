// AssociationHolder (see assoc_holder.hpp): raw A-ASSOCIATE-RQs from a bound source address and
// one thread that polls the held sockets and renews what the SCP closes.
#include "support/assoc_holder.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <vector>

namespace p2x::test {

namespace {

using Clock = std::chrono::steady_clock;

void put16(std::string& out, unsigned v) {
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

void put32(std::string& out, std::uint32_t v) {
  put16(out, v >> 16);
  put16(out, v & 0xffff);
}

// A PDU sub-item: type, reserved, 16-bit length, value.
std::string item(unsigned char type, const std::string& value) {
  std::string out(1, static_cast<char>(type));
  out += '\0';
  put16(out, static_cast<unsigned>(value.size()));
  return out + value;
}

std::string ae_field(const std::string& ae) {
  std::string out = ae.substr(0, 16);
  out.resize(16, ' ');
  return out;
}

// A-ASSOCIATE-RQ (PS3.8 9.3.2) proposing Verification in implicit little endian.
std::string associate_rq(const std::string& called, const std::string& calling) {
  std::string body;
  put16(body, 1);  // protocol version
  put16(body, 0);
  body += ae_field(called) + ae_field(calling) + std::string(32, '\0');
  body += item(0x10, "1.2.840.10008.3.1.1.1");
  std::string context = std::string("\x01\0\0\0", 4) + item(0x30, "1.2.840.10008.1.1") +
                        item(0x40, "1.2.840.10008.1.2");
  body += item(0x20, context);
  std::string max_length;
  put32(max_length, 16384);
  body += item(0x50, item(0x51, max_length) + item(0x52, "1.2.826.0.1.3680043.9.7433.1"));
  std::string pdu = std::string("\x01\0", 2);
  put32(pdu, static_cast<std::uint32_t>(body.size()));
  return pdu + body;
}

int connect_from(const HoldOptions& o) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, o.source.c_str(), &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(o.port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int open_raw_association(const HoldOptions& o, int timeout_ms) {
  const int fd = connect_from(o);
  if (fd < 0) return -1;
  const std::string rq = associate_rq(o.called_ae, o.calling_ae);
  if (::send(fd, rq.data(), rq.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(rq.size())) {
    ::close(fd);
    return -1;
  }
  // The whole answer PDU: header (type, reserved, 32-bit length), then its body.
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string pdu;
  std::size_t want = 6;
  while (pdu.size() < want) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd, POLLIN, 0};
    char buf[4096];
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - pdu.size()), 0);
    if (n <= 0) break;
    pdu.append(buf, static_cast<std::size_t>(n));
    if (pdu.size() == 6 && want == 6) {
      const auto* h = reinterpret_cast<const unsigned char*>(pdu.data());
      want = 6 + ((std::size_t{h[2]} << 24) | (std::size_t{h[3]} << 16) | (std::size_t{h[4]} << 8) |
                  h[5]);
    }
  }
  if (pdu.size() < want || want == 6 || static_cast<unsigned char>(pdu[0]) != 0x02) {
    ::close(fd);
    return -1;
  }
  return fd;
}

AssociationHolder::AssociationHolder(HoldOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { run(); });
}

AssociationHolder::~AssociationHolder() {
  stop();
}

void AssociationHolder::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

bool AssociationHolder::wait_held(int n, int timeout_ms) const {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (held_.load() < n) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void AssociationHolder::run() {
  struct Slot {
    int fd = -1;
    Clock::time_point next_try = Clock::now();
  };
  std::vector<Slot> slots(static_cast<std::size_t>(options_.count));
  while (!stopping_.load()) {
    for (auto& s : slots) {
      if (s.fd >= 0 || Clock::now() < s.next_try) continue;
      s.fd = open_raw_association(options_, 2000);
      if (s.fd >= 0) {
        ++accepted_;
        ++held_;
      } else {
        ++rejected_;
        s.next_try = Clock::now() + std::chrono::milliseconds(options_.retry_ms);
      }
    }
    std::vector<pollfd> polls;
    for (const auto& s : slots)
      if (s.fd >= 0) polls.push_back({s.fd, POLLIN, 0});
    if (::poll(polls.data(), polls.size(), 20) <= 0) continue;
    for (auto& s : slots) {
      if (s.fd < 0) continue;
      pollfd p{s.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(s.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      // Closed, aborted (A-ABORT) or asked to release: renew at once.
      ::close(s.fd);
      s.fd = -1;
      --held_;
      ++closed_;
      s.next_try = Clock::now();
    }
  }
  for (auto& s : slots)
    if (s.fd >= 0) ::close(s.fd);
  held_ = 0;
}

}  // namespace p2x::test

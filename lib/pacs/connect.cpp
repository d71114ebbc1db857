// Our own TCP connect with the peer's deadline, handed over to DUL (see connect.hpp).
#include "pacs/connect.hpp"

#include "pacs/pacs.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace p2x::pacs::detail {

namespace {

using Clock = std::chrono::steady_clock;

thread_local int t_handed_over = -1;

std::string error_text(int err) {
  char buf[256];
  // GNU strerror_r returns the text (maybe not in buf).
  return ::strerror_r(err, buf, sizeof buf);
}

// Waits for a non-blocking connect of `fd` until `deadline`: 0 connected, ETIMEDOUT, or the
// socket's error.
int finish_connect(int fd, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return ETIMEDOUT;
    pollfd pfd{fd, POLLOUT, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 60000)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return errno;
    if (rc == 0) continue;  // re-check the deadline
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
  }
}

// One address: the connected socket (blocking mode) or -1 with `err` set.
int connect_one(const addrinfo& ai, Clock::time_point deadline, int& err) {
  const int fd =
      ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  int rc = ::connect(fd, ai.ai_addr, ai.ai_addrlen);
  err = rc == 0 ? 0 : errno;
  if (rc != 0 && (err == EINPROGRESS || err == EINTR)) err = finish_connect(fd, deadline);
  if (err == 0) {
    const int flags = ::fcntl(fd, F_GETFL, 0);
    if (flags >= 0 && ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0) return fd;
    err = errno;
  }
  ::close(fd);
  return -1;
}

// The process's hand-over listener on 127.0.0.1 (never closed: connections may be made until
// the process ends).
class HandOverListener {
 public:
  static HandOverListener& get() {
    static HandOverListener listener;
    return listener;
  }

  std::uint16_t port() const {
    if (fd_ < 0)
      throw PacsError(ErrorKind::Connect,
                      "cannot open the loopback socket DICOM connections are handed over "
                      "through: " +
                          error_,
                      true);
    return port_;
  }

  // Accepts and resets the loopback ends DUL's connects left queued (a reset leaves no
  // TIME_WAIT behind on either end).
  void drain() const {
    for (;;) {
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN: none left
      }
      const linger reset{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      ::close(fd);
    }
  }

 private:
  HandOverListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, SOMAXCONN) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      error_ = error_text(errno);
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      return;
    }
    port_ = ntohs(addr.sin_port);
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::string error_;
};

}  // namespace

int connect_within(const std::string& host, std::uint16_t port, int timeout_s,
                   const std::string& where) {
  const auto deadline = Clock::now() + std::chrono::seconds(std::max(timeout_s, 1));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (gai != 0 || found == nullptr)
    throw PacsError(ErrorKind::Connect,
                    where + ": unknown host " + host + " (" + ::gai_strerror(gai) + ")", true);
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  int err = 0;
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    const int fd = connect_one(*ai, deadline, err);
    if (fd >= 0) return fd;
    if (err == ETIMEDOUT && Clock::now() >= deadline) break;
  }
  if (err == ETIMEDOUT)
    throw PacsError(
        ErrorKind::Connect,
        where + ": no TCP connection within " + std::to_string(timeout_s) + " s (connect timeout)",
        true);
  throw PacsError(ErrorKind::Connect, where + ": cannot connect: " + error_text(err), true);
}

SocketHandOver::SocketHandOver(int connected_fd) {
  if (t_handed_over >= 0) ::close(t_handed_over);  // one request at a time per thread
  t_handed_over = connected_fd;
}

SocketHandOver::~SocketHandOver() {
  if (t_handed_over >= 0) ::close(t_handed_over);
  t_handed_over = -1;
}

std::string SocketHandOver::address() {
  return "127.0.0.1:" + std::to_string(HandOverListener::get().port());
}

bool adopt_handed_over(DcmNativeSocketType fd) {
  if (t_handed_over < 0) return true;
  const int ours = t_handed_over;
  t_handed_over = -1;
  HandOverListener::get().drain();  // first: the loopback connection ends by a reset
  int rc;
  do {
    rc = ::dup2(ours, fd);  // atomically: `fd` now is our connection, its loopback end closed
  } while (rc < 0 && (errno == EINTR || errno == EBUSY));
  ::close(ours);
  return rc >= 0;
}

}  // namespace p2x::pacs::detail

// Our transport connections for DCMTK associations: prompt ACKs (see prompt_ack.hpp) and the
// nesting guard (dimse_guard.hpp) on every byte read.
#include "pacs/prompt_ack.hpp"

#include "pacs/connect.hpp"
#include "pacs/dimse_guard.hpp"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>

#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>

#include <netinet/in.h>
#include <sys/socket.h>

namespace p2x::pacs::detail {

namespace {

std::string peer_of(DcmNativeSocketType fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  char text[INET_ADDRSTRLEN] = "?";
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      addr.sin_family == AF_INET)
    ::inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
  return text;
}

// DCMTK's plain TCP connection whose reads first pass the nesting guard (a message nested too
// deep ends the connection: DCMTK sees it closed) and, with prompt ACKs on, re-arm
// TCP_QUICKACK after every read that got data.
class GuardedConnection : public DcmTCPConnection {
 public:
  GuardedConnection(DcmNativeSocketType fd, bool prompt_ack)
      : DcmTCPConnection(fd), prompt_ack_(prompt_ack) {
    if (prompt_ack_) net::quick_ack(fd);
  }

  ssize_t read(void* buf, size_t nbyte) override {
    if (refused_) return 0;
    const ssize_t n = DcmTCPConnection::read(buf, nbyte);
    if (n <= 0) return n;
    if (prompt_ack_) net::quick_ack(getSocket());
    if (!guard_.on_read(static_cast<const unsigned char*>(buf), static_cast<std::size_t>(n))) {
      refused_ = true;
      spdlog::warn("dicom: connection with {} closed: {}", peer_of(getSocket()), guard_.why());
      return 0;  // DCMTK: network closed; it never parses what came
    }
    return n;
  }

  ssize_t write(void* buf, size_t nbyte) override {
    const ssize_t n = DcmTCPConnection::write(buf, nbyte);
    if (n > 0) guard_.on_write(static_cast<const unsigned char*>(buf), static_cast<std::size_t>(n));
    return n;
  }

 private:
  bool prompt_ack_;
  bool refused_ = false;
  DimseGuard guard_;
};

// DUL asks its network's transport layer for every connection it requests or accepts (also one
// adopted through dcmExternalSocketHandle); a requested one is swapped for the socket our own
// connect made (connect.hpp). No TLS: a secure connection is refused (null).
class PromptAckLayer : public DcmTransportLayer {
 public:
  DcmTransportConnection* createConnection(DcmNativeSocketType fd, OFBool secure) override {
    if (secure) return nullptr;
    if (!adopt_handed_over(fd)) return nullptr;  // our own connect's socket (connect.hpp)
    return new GuardedConnection(fd, prompt_ack_enabled());
  }
};

}  // namespace

void use_prompt_ack(T_ASC_Network* net) {
  if (net == nullptr) return;
  static PromptAckLayer layer;  // stateless; outlives every network (never destroyed early)
  ASC_setTransportLayer(net, &layer, 0);
}

}  // namespace p2x::pacs::detail

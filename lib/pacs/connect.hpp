// Internal: the TCP connect of every association we request, bounded by that peer's own connect
// timeout.
//
// DCMTK 3.6.7 bounds a requestor's connect only by a process-wide value (dcmConnectionTimeout),
// which threads talking to PACSes with different timeouts would overwrite for each other; it
// has no per-association timeout and no way to hand a requestor an already connected socket.
// So we connect ourselves (non-blocking connect, poll with the peer's deadline) and hand the
// socket over: DUL is given our loopback hand-over listener as the called address, which it
// reaches at once with its own (unbounded, never configured) connect, and when it gives that
// new socket to our transport layer (prompt_ack.cpp) our connected socket takes its place
// under the same descriptor number (dup2), so every option DUL sets afterwards applies to the
// connection to the peer. The loopback ends queued on the listener are accepted and reset.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/dcmtrans.h>

#include <cstdint>
#include <string>

namespace p2x::pacs::detail {

// A socket connected to host:port (IPv4 or IPv6, name or address) within timeout_s seconds, in
// blocking mode. Throws PacsError(Connect, transient) naming `where` and why: unknown host,
// refused, unreachable, or no answer within timeout_s.
int connect_within(const std::string& host, std::uint16_t port, int timeout_s,
                   const std::string& where);

// Hands a connected socket to the next connection DUL makes on this thread (while it lives):
// the called presentation address to give DUL is address(). The socket is closed if DUL never
// took it (the association failed before its connect).
class SocketHandOver {
 public:
  explicit SocketHandOver(int connected_fd);
  ~SocketHandOver();
  SocketHandOver(const SocketHandOver&) = delete;
  SocketHandOver& operator=(const SocketHandOver&) = delete;

  // "127.0.0.1:<port>" of the process's hand-over listener (opened on first use; throws
  // PacsError(Connect) if it cannot be).
  static std::string address();
};

// Called by our transport layer with each socket DUL connected: if this thread has a socket
// handed over, that socket takes `fd`'s place (same number) and true is returned; false only if
// the swap failed (the connection must then be refused). Without a hand-over: true, untouched.
bool adopt_handed_over(DcmNativeSocketType fd);

}  // namespace p2x::pacs::detail

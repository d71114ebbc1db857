// net/prompt_ack: TCP connections that acknowledge what they receive at once, so that a peer
// with Nagle's algorithm on never waits for our delayed ACK (~40 ms on Linux) before sending
// the rest of a message.
//
// Linux delays ACKs while a connection looks interactive; a Nagle sender holds back its last
// partial segment until everything before it is acknowledged. When a reply comes in two small
// writes (a PACS's C-STORE tail, an HTTP server's headers then body, as Python's http.server
// does) and we answer or read on only after the second one, each reply stalls until the
// delayed-ACK timer fires. TCP_QUICKACK sends the pending ACK and ends the delay, but the kernel
// clears it again, so a connection re-arms it after every read that got data (quick_ack()).
// Used by lib/pacs/prompt_ack (DCMTK connections) and lib/xnat/http_client (Beast connections).
// Where TCP_QUICKACK does not exist, quick_ack() does nothing and prompt_ack_enabled() is false.
#pragma once

#include <cstdint>

namespace p2x::net {

// Whether connections made from now on acknowledge promptly: true unless the environment has
// P2X_PROMPT_ACK=0 (read once per process) or set_prompt_ack_enabled(false) was called (both
// for measuring what the mechanism is worth); always false where TCP_QUICKACK does not exist.
bool prompt_ack_enabled();
void set_prompt_ack_enabled(bool enabled);

// Asks the kernel to acknowledge what has arrived on the TCP socket fd now and not to delay the
// next ACKs (until it decides the connection is interactive again: call it after every read
// that got data). One setsockopt; errors are ignored (the socket then behaves as by default).
void quick_ack(int fd);

// Process-wide count of quick_ack() calls (one setsockopt each) since start: what the
// mechanism costs in system calls.
std::uint64_t prompt_ack_rearms();

}  // namespace p2x::net

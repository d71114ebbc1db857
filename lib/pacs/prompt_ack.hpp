// Internal: a DCMTK transport layer whose connections acknowledge every read at once, so that a
// sender with Nagle's algorithm on (stock DCMTK, e.g. Debian's Orthanc and dcmqrscp) never waits
// for our delayed ACK (~40 ms on Linux) before sending the tail of a C-STORE.
//
// Linux delays ACKs while a connection looks interactive; a Nagle sender holds back its last
// partial segment until everything before it is acknowledged, and we only answer (C-STORE-RSP)
// after that segment: a stall per message until the delayed-ACK timer fires. TCP_QUICKACK ends
// the delay, but the kernel clears it again, so it is re-armed after every read. Elsewhere
// (no TCP_QUICKACK) the connections behave as DCMTK's own. Every connection also passes what it
// reads through the nesting guard (dimse_guard.hpp) before DCMTK parses it.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>

#include <cstdint>

namespace p2x::pacs::detail {

// Makes every association `net` opens or accepts from now on use our connections: guarded, and
// prompt-ACK while prompt_ack_enabled(). Call right after ASC_initializeNetwork; the layer is
// shared and stateless, the network does not own it.
void use_prompt_ack(T_ASC_Network* net);

// Whether connections made from now on acknowledge promptly: true unless the environment has
// P2X_PROMPT_ACK=0 (read once per process) or set_prompt_ack_enabled(false) was called (both
// for measuring what the mechanism is worth); always false where TCP_QUICKACK does not exist.
bool prompt_ack_enabled();
void set_prompt_ack_enabled(bool enabled);

// Process-wide count of TCP_QUICKACK re-arms (one setsockopt each) since start: what the
// mechanism costs in system calls.
std::uint64_t prompt_ack_rearms();

}  // namespace p2x::pacs::detail

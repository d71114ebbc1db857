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

#include "net/prompt_ack.hpp"

namespace p2x::pacs::detail {

// Makes every association `net` opens or accepts from now on use our connections: guarded, and
// prompt-ACK while prompt_ack_enabled(). Call right after ASC_initializeNetwork; the layer is
// shared and stateless, the network does not own it.
void use_prompt_ack(T_ASC_Network* net);

// The switch and the re-arm count are lib/net's (shared with the XNAT HTTP connections):
// P2X_PROMPT_ACK=0 or set_prompt_ack_enabled(false) turns prompt ACKs off for both.
using net::prompt_ack_enabled;
using net::prompt_ack_rearms;
using net::set_prompt_ack_enabled;

}  // namespace p2x::pacs::detail

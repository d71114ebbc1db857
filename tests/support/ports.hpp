// tests/support/ports: free TCP ports for the servers tests start (the daemon's Storage SCP, test
// PACSes, the stand-in's DICOM receiver), in every test program.
#pragma once

#include <cstdint>

namespace p2x::test {

// A free TCP port below the kernel's ephemeral range, chosen at random and never the same
// twice per process: outgoing connections of tests running in parallel never take it.
std::uint16_t free_port();

}  // namespace p2x::test

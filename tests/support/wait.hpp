// wait_until: how tests wait for something to happen - poll a condition until it holds or a
// deadline passes - instead of sleeping for a guessed time.
#pragma once

#include <chrono>
#include <thread>

namespace p2x::test {

// Calls `condition` until it returns true (then true) or `timeout` has passed (then false, after
// one last call), pausing `interval` between calls.
template <class Condition>
bool wait_until(Condition&& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(interval);
  }
  return condition();
}

}  // namespace p2x::test

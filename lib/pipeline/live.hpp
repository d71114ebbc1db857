// pipeline/live: what every worker of the pipeline reads while it runs and SIGHUP or a stop may
// change: the clock (one, injected: tests pin it; the steps, the Gate's windows and breakers and
// the retry backoff all read it), the limits in force (one synchronised snapshot per read), and
// the shutdown (requested, and the drain deadline after which work in flight is cut).
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>

#include "config/config.hpp"

namespace p2x::pipeline {

// Unix seconds. The daemon's is the wall clock (system_clock); tests pass their own.
using Clock = std::function<std::int64_t()>;
inline std::int64_t system_clock() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

// The limits in force: read where they are used (a copy each time), replaced by reload().
class LiveLimits {
 public:
  explicit LiveLimits(config::Limits limits) : limits_(std::move(limits)) {}
  config::Limits get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return limits_;
  }
  void set(const config::Limits& limits) {
    std::lock_guard<std::mutex> lock(mu_);
    limits_ = limits;
  }

 private:
  mutable std::mutex mu_;
  config::Limits limits_;
};

// A stop in progress: work in flight may finish until the deadline. The drain is measured on
// the wall clock (how long the process has to stop), not on the pipeline's clock.
struct Shutdown {
  std::atomic<bool> requested{false};
  std::atomic<std::int64_t> deadline{0};
  void request(int drain_s) {
    deadline = system_clock() + drain_s;
    requested = true;
  }
  bool past_deadline() const { return requested.load() && system_clock() > deadline.load(); }
};

}  // namespace p2x::pipeline

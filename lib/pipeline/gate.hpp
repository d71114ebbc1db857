// pipeline/gate: who may talk to which PACS right now.
//
// Per PACS: the association limit in force (max_associations, or the availability window that
// covers the current local time: 0 = closed), the associations in use, and a circuit breaker
// that opens after `circuit_failures` consecutive connection failures (items then wait; they do
// not fail) and closes when a C-ECHO probe answers. Thread-safe.
#pragma once

#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace p2x::pipeline {

// Association limit of `node` at local time `when`, and the time (unix seconds) at which that
// limit next changes (0 if never).
struct WindowState {
  int limit = 0;
  std::time_t until = 0;
};
WindowState window_state(const config::PacsNode& node, std::time_t when);

class Gate {
 public:
  explicit Gate(const config::Config& cfg);
  void reload(const config::Config& cfg);  // SIGHUP: new limits, state kept

  // Takes one association slot on `pacs` if the window and breaker allow it.
  bool try_acquire(const std::string& pacs, std::time_t now);
  void release(const std::string& pacs);

  // Outcome of an association attempt, for the breaker.
  void on_success(const std::string& pacs);
  // Returns true if this failure opened the breaker.
  bool on_connect_failure(const std::string& pacs, const std::string& error, std::time_t now);

  // Breakers due for a C-ECHO probe (open and last probe older than circuit_probe_s).
  std::vector<std::string> probes_due(std::time_t now);
  void probe_result(const std::string& pacs, bool answered, std::time_t now);

  int in_use(const std::string& pacs) const;
  // The association limit of `pacs` in force at `now` (reloads included; 0: closed or unknown).
  int limit(const std::string& pacs, std::time_t now) const;
  int peak(const std::string& pacs) const;  // highest in_use seen (tests)
  // Why items of `pacs` wait now, or empty if they may go.
  std::string wait_reason(const std::string& pacs, std::time_t now) const;

 private:
  struct Node {
    config::PacsNode cfg;
    int in_use = 0, peak = 0;
    int consecutive_failures = 0;
    bool open = false;
    std::time_t opened_at = 0, last_probe = 0;
    std::string last_error;
  };
  mutable std::mutex mu_;
  std::map<std::string, Node> nodes_;
  int circuit_failures_ = 5;
  int probe_s_ = 30;
};

}  // namespace p2x::pipeline

// metrics/metrics: the daemon's Prometheus metrics (prometheus-cpp core), rendered as text.
//
// Counters and the XNAT latency histogram are fed through the Recorder seam as facts happen;
// gauges (items per project and state, association slots, queue ages, spool space) are read at
// each scrape from the sources the daemon injects, so they are never stale. render() is all the
// HTTP side needs: lib/web serves it at /metrics through its own listener (prometheus-cpp's
// civetweb exposer is not used).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metrics/recorder.hpp"

namespace p2x::metrics {

// What the store says at scrape time (see store::StoreStats); times in unix seconds, 0 = none.
struct QueueState {
  struct Count {
    std::string project, state;
    std::int64_t n = 0;
  };
  std::vector<Count> items;
  std::int64_t oldest_queued_at = 0, oldest_in_flight_at = 0, last_verified_at = 0;
};

struct PacsSlots {
  std::string pacs;
  int in_use = 0;
  int limit = 0;  // associations allowed now (the window in force; 0 = closed)
};

// Read at every scrape; an empty function leaves its metrics out.
struct Sources {
  std::function<QueueState()> queue;
  std::function<std::vector<PacsSlots>()> associations;
  std::function<std::optional<std::uint64_t>()> spool_free_bytes;
  std::function<std::int64_t()> now;  // unix seconds; default: the system clock
};

class Metrics : public Recorder {
 public:
  explicit Metrics(Sources sources);
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void retrieved(const std::string& pacs, std::int64_t instances, std::int64_t bytes) override;
  void suboperations_failed(const std::string& pacs, std::int64_t count) override;
  void xnat_request(const std::string& kind, double seconds, int status) override;
  void uploaded(std::int64_t bytes) override;
  void study_finished(bool verified) override;

  // The Prometheus text exposition format (version 0.0.4).
  std::string render() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2x::metrics

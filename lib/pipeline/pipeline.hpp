// pipeline: runs every queued study through its steps — find and retrieve, validate, push,
// verify — on pools of workers.
//
// The model: each step is a class of its own (retrieve_step.hpp, validate_step.hpp,
// push_step.hpp, verify_step.hpp; the push asks project_check.hpp first), constructed with what
// it uses and returning one Outcome (outcome.hpp) for the item it is given. The Pipeline keeps
// the worker pools, the claim loop and applying outcomes: a worker claims one item through the
// store into the step's in-flight state (a lease, claim.hpp: one worker per item, always; a
// claim that ends without an applied outcome is released as a retry), runs the step, and
// apply() records the outcome with everything the step learned in one transaction. A new stage
// is a new step class + a Step; a new retrieval method an IPacs implementation in pacs/; a new
// push method an IArchive.
//
// Threads: retrieval workers per PACS (each holds a per-PACS association slot, see Gate; their
// number follows the association limits in force, reload included), one validator,
// `xnat.max_pushes` pushers and as many verifiers (a pusher never waits for XNAT to show a
// session while validated studies wait), and housekeeping (the spool's room and clean-up, the
// circuit breakers' probes). Retrieval of study n+1 overlaps the push of study n. Limits are
// read where they are used through one synchronised snapshot (LiveLimits, live.hpp), so SIGHUP's
// reload() never races a worker. One injected clock serves the steps, the Gate and the backoff.
// Spool files are not fsynced; after a power loss the unfinished studies are fetched again
// (spool.hpp). A push is only repeated after XNAT was asked whether the session already holds
// the study.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "pipeline/gate.hpp"
#include "pipeline/live.hpp"
#include "pipeline/outcome.hpp"
#include "pipeline/project_check.hpp"
#include "pipeline/push_step.hpp"
#include "pipeline/retrieve_step.hpp"
#include "pipeline/spool.hpp"
#include "pipeline/validate_step.hpp"
#include "pipeline/verify_step.hpp"
#include "store/store.hpp"

namespace p2x::pacs {
class IPacs;
}
namespace p2x::xnat {
class IArchive;
}
namespace p2x::metrics {
class Recorder;
}

namespace p2x::jobopts {
struct JobOptions;
}

namespace p2x::pipeline {

class Pipeline {
 public:
  using Clock = pipeline::Clock;  // unix seconds (tests pin it)

  Pipeline(const config::Config& cfg, store::Store& store, pacs::IPacs& pacs,
           xnat::IArchive& archive, Clock clock = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  void start();
  // Stops claiming; in-flight work finishes or is rolled back within drain_timeout_s.
  void stop();
  void wake();  // new work arrived
  // SIGHUP: new limits (and association limits: more retrieval workers when they rose).
  void reload(const config::Config& cfg);
  config::Limits limits() const { return limits_.get(); }  // the limits in force (a copy)
  bool healthy() const;                                    // for the systemd watchdog
  nlohmann::json job_notes(std::int64_t job_id) const;     // why a job's items wait
  const Gate& gate() const { return gate_; }
  const Spool& spool() const { return spool_; }
  // Told of studies retrieved, verified and failed (/metrics); not owned; set before start().
  void set_recorder(metrics::Recorder* recorder);

  // One step each, as the workers run them (tests drive them one at a time). Each returns true
  // if it claimed an item.
  bool retrieve_once(const std::string& pacs);
  bool validate_once();
  bool push_once();
  bool verify_once();
  void housekeeping();
  // Retrieval workers running (they follow the association limits; tests).
  int retrieval_workers() const;

 private:
  template <typename Work>
  bool run_step(const Step& step, std::optional<store::Item> claimed, Work&& work);
  void count_final(std::int64_t item_id, const Outcome& outcome);
  void add_retrieval_workers(const config::Config& cfg);
  void retrieval_worker();
  void loop(const char* what, bool (Pipeline::*once)());
  void housekeeping_worker();
  void idle_wait(double seconds);
  bool stopping() const { return shutdown_.requested.load(); }
  bool finished(std::int64_t item_id) const;
  void probe_open_breakers();
  unsigned next_random() { return seed_++ * 2654435761u; }
  std::int64_t now() const { return clock_(); }

  const config::Config cfg_;  // connections and paths; limits are in limits_ and gate_
  store::Store& store_;
  pacs::IPacs& pacs_;  // C-ECHO probes of open breakers
  Clock clock_;
  LiveLimits limits_;
  Shutdown shutdown_;
  Gate gate_;
  Spool spool_;
  ProjectCheck project_;
  RetrieveStep retrieve_;
  ValidateStep validate_;
  PushStep push_;
  VerifyStep verify_;
  metrics::Recorder* recorder_ = nullptr;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t wake_seq_ = 0;
  std::string disk_wait_;  // non-empty while the spool guard holds retrieval back
  mutable std::mutex threads_mu_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  int retrievers_ = 0;
  std::atomic<unsigned> seed_{0};
  std::atomic<std::int64_t> heartbeat_{0};
  std::atomic<unsigned> housekeeping_runs_{0};
};

}  // namespace p2x::pipeline

// pipeline: runs every queued study through retrieve -> validate -> push -> verify.
//
// Worker threads per stage: retrieval workers take a per-PACS association slot (Gate) and
// claim the next queued item of that PACS (fair across jobs, see Store::claim); one validator;
// `xnat.max_pushes` pushers that also verify. So retrieval of study n+1 overlaps the push of
// study n. Every step ends in one store transition; a crash at any point leaves each item in a
// state that Store's recovery maps back to the last durable one, and a push is only repeated
// after XNAT was asked whether the session already holds the study. Spool files are not
// fsynced; after a power loss the unfinished studies are fetched again (spool.hpp).
//
// Transient failures (PACS unreachable, timeouts, XNAT 5xx) back off exponentially with
// jitter; connection failures do not use up attempts (items wait while the PACS's breaker is
// open). Permanent ones (no match, ambiguous match, XNAT 4xx) fail the item with a reason a
// person can act on; an XNAT credential or project error fails the whole job once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "pipeline/gate.hpp"
#include "store/store.hpp"

namespace p2x::pacs {
class StorageScp;
}
namespace p2x::xnat {
class Client;
}

namespace p2x::pipeline {

class Pipeline {
 public:
  Pipeline(const config::Config& cfg, store::Store& store, pacs::StorageScp& scp,
           xnat::Client& xnat);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  void start();
  // Stops claiming; in-flight work finishes or is rolled back within drain_timeout_s.
  void stop();
  void wake();                                // new work arrived
  void reload(const config::Config& cfg);     // SIGHUP: new limits
  bool healthy() const;                       // for the systemd watchdog
  nlohmann::json job_notes(std::int64_t job_id) const;  // why a job's items wait
  const Gate& gate() const { return gate_; }

  // Worker bodies (public for tests that drive one step at a time). Each returns true if it
  // did some work.
  bool retrieve_once(const std::string& pacs);
  bool validate_once();
  bool push_once();
  bool verify_once();
  void housekeeping();

 private:
  void retrieval_worker();
  void validation_worker();
  void push_worker();
  void housekeeping_worker();
  void idle_wait(double seconds);
  bool stopping() const { return stopping_.load(); }
  void verify_once_item(std::int64_t item_id);
  bool xnat_project_exists(const std::string& project);
  bool spool_has_room(std::string* why) const;
  void clean_spool(bool at_start);
  std::string spool_dir(std::int64_t item_id) const;

  config::Config cfg_;
  store::Store& store_;
  pacs::StorageScp& scp_;
  xnat::Client& xnat_;
  Gate gate_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> last_progress_{0};
  std::atomic<std::int64_t> drain_deadline_{0};
  std::mutex verify_mu_;
  std::map<std::int64_t, int> verify_tries_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t wake_seq_ = 0;
  std::string disk_wait_;  // non-empty while the spool guard holds retrieval back
  std::vector<std::thread> threads_;
  std::atomic<unsigned> seed_{0};
  std::atomic<std::int64_t> heartbeat_{0};
  unsigned housekeeping_runs_ = 0;
};

}  // namespace p2x::pipeline

// pipeline: runs every queued study through retrieve -> validate -> push -> verify.
//
// The model (outcome.hpp): each stage is a Step. A worker claims one item through the store into
// the step's in-flight state (querying, validating, pushing, verifying: one worker per item,
// always; start-up recovery returns in-flight items to the state before), does the work through
// an injected seam — pacs::IPacs for retrieval (retrieve.cpp), xnat::IArchive for upload and
// verification (push.cpp, verify.cpp) — and returns one Outcome (done, retry, wait, failed, fail
// the job) that apply() records. A new stage is a new Step + a function returning an Outcome; a
// new retrieval method is an IPacs implementation in pacs/; a new push method an IArchive.
//
// Threads: retrieval workers per PACS (each holds a per-PACS association slot, see Gate), one
// validator, `xnat.max_pushes` pushers that also verify. Retrieval of study n+1 overlaps the push
// of study n. Limits are read through one synchronised snapshot (limits()), so SIGHUP's reload()
// never races a worker. Spool files are not fsynced; after a power loss the unfinished studies
// are fetched again (spool.hpp). A push is only repeated after XNAT was asked whether the session
// already holds the study.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "pacs/pacs.hpp"
#include "pipeline/gate.hpp"
#include "pipeline/outcome.hpp"
#include "store/store.hpp"
#include "xnat/xnat.hpp"

namespace p2x::pacs {
class IPacs;
class IRetrieval;
enum class RetrieveMethod;
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

struct Fetched;
struct Found;
struct Reconciled;
struct Holding;
using JobOptions = jobopts::JobOptions;  // jobopts/jobopts.hpp
class SlotLease;

class Pipeline {
 public:
  using Clock = std::function<std::int64_t()>;  // unix seconds (tests pin it)

  Pipeline(const config::Config& cfg, store::Store& store, pacs::IPacs& pacs,
           xnat::IArchive& archive, Clock clock = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  void start();
  // Stops claiming; in-flight work finishes or is rolled back within drain_timeout_s.
  void stop();
  void wake();                                // new work arrived
  void reload(const config::Config& cfg);     // SIGHUP: new limits
  config::Limits limits() const;              // the limits in force (a copy)
  bool healthy() const;                       // for the systemd watchdog
  nlohmann::json job_notes(std::int64_t job_id) const;  // why a job's items wait
  const Gate& gate() const { return gate_; }
  // Told of studies retrieved, verified and failed (/metrics); not owned; set before start().
  void set_recorder(metrics::Recorder* recorder) { recorder_ = recorder; }

  // One step each, as the workers run them (tests drive them one at a time). Each returns true
  // if it claimed an item.
  bool retrieve_once(const std::string& pacs);
  bool validate_once();
  bool push_once();
  bool verify_once();
  void housekeeping();

 private:
  template <typename Work>
  bool run_step(const Step& step, std::optional<store::Item> claimed, Work&& work);
  bool verify_item(std::int64_t item_id);
  void count_final(std::int64_t item_id, const Outcome& outcome);

  // retrieve.cpp
  Outcome retrieve(Claim& claim, const config::PacsNode& node, SlotLease& slot);
  std::optional<Outcome> record_found(Claim& claim, const Found& found, const JobOptions& opt);
  Fetched fetch(Claim& claim, pacs::IRetrieval& retrieval, const Found& found,
                const std::string& dir, const config::PacsNode& node);
  // parallel_fetch.cpp: one study's series over spare association slots
  std::vector<std::unique_ptr<SlotLease>> spare_slots(const config::PacsNode& node,
                                                      std::size_t wanted);
  pacs::AbortFn abort_check(std::int64_t item_id, std::int64_t job_id,
                            const std::atomic<bool>* stop);
  pacs::RetrieveResult fetch_lanes(pacs::IRetrieval& first,
                                   const std::vector<std::vector<pacs::Selection>>& groups,
                                   const std::string& dir, const config::PacsNode& node,
                                   pacs::RetrieveMethod method, std::int64_t item_id,
                                   std::int64_t job_id);
  Outcome outcome_of(const pacs::PacsError& e, const store::Item& it,
                     const config::PacsNode& node);
  Outcome count_retrieved(const store::Item& it, const Found& found, const Fetched& fetched,
                          const config::PacsNode& node);
  Reconciled reconcile(Claim& claim, pacs::IRetrieval& retrieval, const Found& found,
                       const std::string& dir, const config::PacsNode& node);
  // push.cpp, verify.cpp
  Outcome validate(Claim& claim);
  Outcome push(Claim& claim);
  Outcome verify(Claim& claim);
  Outcome not_yet_verified(const store::Item& it, const Holding& h, store::ItemPatch p,
                           const std::string& project);
  int repushes_since_queued(std::int64_t item_id) const;
  std::optional<Outcome> split_study(const store::Job& job, const store::Item& it,
                                     const Holding& h, const store::ItemPatch& p);
  // project_check.cpp: the job's project settings before its first push (per daemon run);
  // nullopt when the push may go ahead, with *prearchive saying where to.
  std::optional<Outcome> project_ready(const store::Job& job, const JobOptions& opt,
                                       bool* prearchive);
  std::optional<xnat::SessionInfo> holding_of(const store::Job& job, const store::Item& it,
                                              bool prearchive);
  Outcome outcome_of(const xnat::XnatError& e, const store::Job& job);
  Outcome changed_since_validation(const store::Item& it, const xnat::StudyFileChanged& e);

  void retrieval_worker();
  void validation_worker();
  void push_worker();
  void housekeeping_worker();
  void idle_wait(double seconds);
  bool stopping() const { return stopping_.load(); }
  bool spool_has_room(std::string* why) const;
  void clean_spool(bool at_start);
  void probe_open_breakers();
  std::string spool_dir(std::int64_t item_id) const;
  unsigned next_random() { return seed_++ * 2654435761u; }
  std::int64_t now() const { return clock_(); }

  const config::Config cfg_;  // limits excepted: see limits()
  store::Store& store_;
  pacs::IPacs& pacs_;
  xnat::IArchive& archive_;
  Clock clock_;
  Gate gate_;
  metrics::Recorder* recorder_ = nullptr;
  mutable std::mutex limits_mu_;
  config::Limits limits_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> drain_deadline_{0};
  std::mutex verify_mu_;
  std::map<std::int64_t, int> verify_tries_;  // per item: checks that found XNAT incomplete
  struct ProjectState {
    bool passed = false;
    std::int64_t next_check_at = 0;  // while not passed
    std::string reason;              // why the job's pushes wait
  };
  mutable std::mutex project_mu_;
  std::map<std::int64_t, ProjectState> project_checks_;  // per job
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t wake_seq_ = 0;
  std::string disk_wait_;  // non-empty while the spool guard holds retrieval back
  std::vector<std::thread> threads_;
  std::atomic<unsigned> seed_{0};
  std::atomic<std::int64_t> heartbeat_{0};
  std::atomic<unsigned> housekeeping_runs_{0};
};

}  // namespace p2x::pipeline

// pipeline/retrieve_step: the find-and-retrieve step (one claim: queued -> querying ->
// retrieving -> retrieved). C-FIND the row's study (find.cpp) and record what it should hold
// (the advance to retrieving carries the labels, series and counts), plan what the spool still
// lacks (fetch_plan.hpp), C-MOVE/C-GET it over one association or, with spare slots of the
// PACS, several (parallel_fetch.cpp), keep apart what the PACS never had, count what arrived,
// and say how it went as one Outcome.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "pacs/pacs.hpp"
#include "pipeline/claim.hpp"
#include "pipeline/live.hpp"
#include "pipeline/outcome.hpp"

namespace p2x::pacs {
class IPacs;
class IRetrieval;
enum class RetrieveMethod;
}  // namespace p2x::pacs
namespace p2x::metrics {
class Recorder;
}

namespace p2x::pipeline {

class Gate;
class Spool;
class SlotLease;
struct Found;
struct Fetched;
struct Reconciled;

// Who we are to a PACS: the AE title it sends to and the Storage SCP's port (for messages).
struct OurNode {
  std::string ae_title;
  int storage_port = 0;
};

class RetrieveStep {
 public:
  // `store` is read (is the item still wanted, is its job paused: polled during a transfer) and
  // asked once per study to record the PACS's PatientID with the subject label (record_patient:
  // an atomic check across items queried at the same moment, which a later apply() cannot
  // give). `slot_freed` is called when the PACS's association slot goes back early.
  RetrieveStep(pacs::IPacs& pacs, Gate& gate, const Spool& spool, store::Store& store,
               const LiveLimits& limits, Clock clock, const Shutdown& shutdown, OurNode self,
               std::function<void()> slot_freed);

  // Retrieves the claimed item from `node` holding `slot` (one association slot of it).
  Outcome run(Claim& claim, const config::PacsNode& node, SlotLease& slot);
  // Told of what each retrieval added to the spool (/metrics); not owned; may be null.
  void set_recorder(metrics::Recorder* recorder) { recorder_ = recorder; }

 private:
  std::optional<Outcome> record_found(Claim& claim, const Found& found);
  Fetched fetch(const Claim& claim, pacs::IRetrieval& retrieval, const Found& found,
                const config::PacsNode& node);
  std::vector<std::unique_ptr<SlotLease>> spare_slots(const config::PacsNode& node,
                                                      std::size_t wanted);
  pacs::AbortFn abort_check(std::int64_t item_id, std::int64_t job_id,
                            const std::atomic<bool>* stop);
  pacs::RetrieveResult fetch_lanes(pacs::IRetrieval& first,
                                   const std::vector<std::vector<pacs::Selection>>& groups,
                                   const std::string& dir, const config::PacsNode& node,
                                   std::int64_t item_id, std::int64_t job_id);
  Outcome outcome_of(const pacs::PacsError& e, const store::Item& it, const config::PacsNode& node);
  Outcome count_retrieved(const store::Item& it, const Found& found, const Fetched& fetched,
                          const config::PacsNode& node);
  Reconciled reconcile(const Claim& claim, pacs::IRetrieval& retrieval, const Found& found,
                       const config::PacsNode& node);

  pacs::IPacs& pacs_;
  Gate& gate_;
  const Spool& spool_;
  store::Store& store_;
  const LiveLimits& limits_;
  Clock clock_;
  const Shutdown& shutdown_;
  OurNode self_;
  std::function<void()> slot_freed_;
  metrics::Recorder* recorder_ = nullptr;
};

}  // namespace p2x::pipeline

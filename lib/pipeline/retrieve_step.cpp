// pipeline/retrieve_step: the find-and-retrieve step (see retrieve_step.hpp).
#include "pipeline/retrieve_step.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "metrics/recorder.hpp"
#include "pacs/retrieval.hpp"
#include "pipeline/fetch_plan.hpp"
#include "pipeline/gate.hpp"
#include "pipeline/options.hpp"
#include "pipeline/spool.hpp"
#include "pipeline/steps.hpp"
#include "text/text.hpp"
#include "validate/validate.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;
using store::ItemState;

namespace {

using Ms = std::chrono::duration<double, std::milli>;

// How long a retrieval whose C-STOREs found our Storage SCP full waits before it asks again:
// long enough for idle associations to be closed (ScpOptions::busy_idle_s), short enough that
// a slot that frees is used soon.
constexpr int kReceiverBusyWaitS = 5;

// Laps of one retrieval, for the debug line that shows where its time went.
class Laps {
 public:
  double lap() {
    const auto t = std::chrono::steady_clock::now();
    const double ms = Ms(t - mark_).count();
    mark_ = t;
    return ms;
  }

 private:
  std::chrono::steady_clock::time_point mark_ = std::chrono::steady_clock::now();
};

std::string found_detail(const Found& found, const std::string& conflict) {
  std::string detail = "found study " + found.study.study_uid + " (" +
                       std::to_string(found.series.size()) + " series, " +
                       std::to_string(found.expected) + " instances";
  if (found.skipped_series) {
    detail += ", " + std::to_string(found.skipped_series) + " series skipped by filters";
  }
  if (found.skipped_objects) {
    detail += ", " + std::to_string(found.skipped_objects) +
              " object(s) skipped by the PACS's skip_sop_classes";
  }
  detail += ")";
  if (!conflict.empty()) detail += "; warning: " + conflict;
  return detail;
}

// C-FIND reports no sizes: estimate at 0.5 MB per instance (a 512x512 16-bit slice) and flag
// studies far above the configured limit before any data moves. "" when within it.
std::string size_warning(const Found& found, std::int64_t study_max_mb) {
  const std::int64_t estimate_mb = found.expected / 2;
  if (study_max_mb <= 0 || estimate_mb <= study_max_mb) return {};
  return "study of " + std::to_string(found.expected) + " instances, estimated ~" +
         std::to_string(estimate_mb) + " MB, exceeds limits.study_max_mb (" +
         std::to_string(study_max_mb) + " MB)";
}

// Our own Storage SCP was full (associations held open by others): no fault of the study or
// the PACS. The item waits for a slot (no attempt used) and keeps what arrived; the next
// retrieval asks only for the rest.
Outcome receiver_busy(const std::string& why) {
  store::ItemPatch p;
  p.wait_reason = "waiting for a free association of our Storage SCP: " + why;
  return Outcome::wait("our Storage SCP was full: " + why, p).after(kReceiverBusyWaitS);
}

// The instances the spool holds of one series, by SOP Instance UID.
using SeriesFiles = std::map<std::string, std::vector<validate::Instance>>;

// The series of `found` of which the spool holds more instances than C-FIND announced.
SeriesFiles surplus_series(const Found& found, const std::string& dir) {
  SeriesFiles by_series;
  for (auto& i : validate::list_instances(dir)) by_series[i.series_uid].push_back(std::move(i));
  SeriesFiles surplus;
  for (const auto& s : found.series) {
    auto it = by_series.find(s.series_uid);
    if (it != by_series.end() && static_cast<std::int64_t>(it->second.size()) > s.expected)
      surplus.insert(std::move(*it));
  }
  return surplus;
}

pacs::RetrieveMethod method_of(const config::PacsNode& node) {
  return node.retrieve == config::RetrieveMethod::Get ? pacs::RetrieveMethod::Get
                                                      : pacs::RetrieveMethod::Move;
}

}  // namespace

RetrieveStep::RetrieveStep(pacs::IPacs& pacs, Gate& gate, const Spool& spool, store::Store& store,
                           const LiveLimits& limits, Clock clock, const Shutdown& shutdown,
                           OurNode self, std::function<void()> slot_freed)
    : pacs_(pacs),
      gate_(gate),
      spool_(spool),
      store_(store),
      limits_(limits),
      clock_(std::move(clock)),
      shutdown_(shutdown),
      self_(std::move(self)),
      slot_freed_(std::move(slot_freed)) {}

Outcome RetrieveStep::run(Claim& claim, const config::PacsNode& node, SlotLease& slot) {
  Laps laps;
  try {
    const JobOptions& opt = claim.options();
    // One association for the row's C-FINDs and its C-MOVEs or C-GETs.
    auto retrieval = pacs_.open(peer_for(node, self_.ae_title), method_of(node));
    // A C-GET proposes the study's own SOP classes: learn them with the C-FINDs.
    const Found found = find_study(*retrieval, claim.item(), opt, node.name, node.skip_sop_classes,
                                   node.retrieve == config::RetrieveMethod::Get);
    const double t_find = laps.lap();
    gate_.on_success(node.name);
    if (auto stop = record_found(claim, found)) return *stop;
    const double t_record = laps.lap();
    const Fetched fetched = fetch(claim, *retrieval, found, node);
    const Reconciled reconciled = reconcile(claim, *retrieval, found, node);
    retrieval->close();
    const double t_move = laps.lap();
    // The PACS is done with us: its slot goes to the next study while this one is counted.
    slot.release();
    if (slot_freed_) slot_freed_();
    Outcome outcome = count_retrieved(claim.item(), reconciled.found, fetched, node);
    if (!reconciled.note.empty()) outcome.detail += "; " + reconciled.note;
    if (reconciled.raised) outcome.patch.series = reconciled.found.series;
    spdlog::debug("retrieval timings (ms): find {:.1f}, record {:.1f}, move {:.1f}, count {:.1f}",
                  t_find, t_record, t_move, laps.lap());
    return outcome;
  } catch (const PermanentError& e) {
    return Outcome::failed(e.what(), false);
  } catch (const pacs::PacsError& e) {
    return outcome_of(e, claim.item(), node);
  }
}

// Records the study C-FIND found (labels, series, expected counts) and moves the item on to
// retrieving. Returns an outcome only when the step ends here (strict label conflict, item
// cancelled meanwhile).
std::optional<Outcome> RetrieveStep::record_found(Claim& claim, const Found& found) {
  const JobOptions& opt = claim.options();
  const store::Item& it = claim.item();
  store::ItemPatch patch;
  patch.study_uid = found.study.study_uid;
  patch.pacs_patient_id = found.study.patient_id;
  patch.expected = found.expected;
  patch.wait_reason = std::string();
  const std::string subject =
      it.subject.empty() ? text::sanitize_label(found.study.patient_id) : it.subject;
  patch.subject = subject;
  patch.session = it.session.empty() ? subject + "_" + found.study.study_date : it.session;
  // Label consistency across the job: one PatientID <-> one subject label. Checked and recorded
  // atomically by the store (the one write of this step outside its outcome; see the class).
  const std::string conflict = store_.record_patient(it.id, found.study.patient_id, subject);
  if (!conflict.empty()) {
    if (opt.strict) return Outcome::failed(conflict + " (strict mode)", false);
    spdlog::warn("label inconsistency: {}", conflict);
  }
  patch.series = found.series;  // recorded with the advance to retrieving
  std::string detail = found_detail(found, conflict);
  const std::string flag = size_warning(found, limits_.get().study_max_mb);
  if (!flag.empty()) {
    spdlog::warn("{}", flag);
    detail += "; warning: " + flag;
  }
  if (!claim.advance(ItemState::Retrieving, detail, patch)) {
    return Outcome::failed("no longer being retrieved (cancelled meanwhile)", false);
  }
  claim.item().study_uid = found.study.study_uid;
  return std::nullopt;
}

// Instances beyond what C-FIND announced for a series — a series that grew during the
// retrieval, or a C-STORE under the PACS's own AE title with a SOP Instance UID the PACS never
// had — are data, not a verdict: an IMAGE-level C-FIND of that series says which the PACS
// really holds. Those are kept and the series' expectation raised to match (the study is
// imported whole); the others are quarantined with the reason and never pushed. So an extra
// instance never blocks a study: it is complete when every announced instance is there.
Reconciled RetrieveStep::reconcile(const Claim& claim, pacs::IRetrieval& retrieval,
                                   const Found& found, const config::PacsNode& node) {
  Reconciled r{found, {}, 0};
  const std::int64_t item_id = claim.item().id;
  const SeriesFiles surplus = surplus_series(found, spool_.item_dir(item_id));
  if (surplus.empty()) return r;
  int kept_apart = 0, raised = 0;
  for (auto& series : r.found.series) {
    const auto it = surplus.find(series.series_uid);
    if (it == surplus.end()) continue;
    std::set<std::string> announced;
    for (const auto& inst : retrieval.find_instances(found.study.study_uid, series.series_uid))
      announced.insert(inst.sop_uid);
    if (const auto only = found.only_sops.find(series.series_uid); only != found.only_sops.end()) {
      const std::set<std::string> wanted(only->second.begin(), only->second.end());
      for (auto a = announced.begin(); a != announced.end();)
        a = wanted.count(*a) ? std::next(a) : announced.erase(a);
    }
    for (const auto& inst : it->second) {
      if (announced.count(inst.sop_uid)) continue;
      const std::string why = "SOP instance " + inst.sop_uid + " of series " + series.series_uid +
                              " is not on PACS " + node.name +
                              " (its IMAGE-level C-FIND does "
                              "not list it)";
      spool_.quarantine(item_id, inst.path, why);
      spdlog::warn("retrieval: {}; quarantined", why);
      ++kept_apart;
    }
    const auto held = static_cast<std::int64_t>(announced.size());
    if (held > series.expected) {
      r.found.expected += held - series.expected;
      series.expected = held;
      ++raised;
    }
  }
  r.raised = raised;  // the outcome records the raised expectations (its patch's series)
  if (raised > 0) {
    spdlog::info(
        "retrieval: the PACS holds more instances than its C-FIND counted in {} "
        "series; expecting {} now",
        raised, r.found.expected);
  }
  if (kept_apart > 0)
    r.note = "kept apart " + std::to_string(kept_apart) + " instance(s) the PACS does not have";
  if (raised > 0)
    r.note += std::string(r.note.empty() ? "" : "; ") + std::to_string(raised) +
              " series grew on the PACS during the retrieval: " + std::to_string(r.found.expected) +
              " instances expected now";
  return r;
}

// C-MOVE/C-GET what the spool lacks; over spare association slots of the PACS too, a series
// (or more) per association (parallel_fetch.cpp). Stops early when the job is paused or the
// item cancelled (PacsError Aborted) or the drain time of a shutdown has passed.
Fetched RetrieveStep::fetch(const Claim& claim, pacs::IRetrieval& retrieval, const Found& found,
                            const config::PacsNode& node) {
  const std::string dir = spool_.make_item_dir(claim.item().id);
  const std::string study_uid = found.study.study_uid;
  const FetchPlan plan = plan_fetch(found, read_spool(dir), [&](const std::string& series_uid) {
    std::vector<std::string> sops;
    for (const auto& inst : retrieval.find_instances(study_uid, series_uid))
      sops.push_back(inst.sop_uid);
    return sops;
  });
  const std::int64_t item_id = claim.item().id, job_id = claim.item().job_id;
  const std::size_t parts = std::max(found.series.size(), plan.selections.size());
  auto spare = spare_slots(node, node.parallel_series && parts > 1 ? parts - 1 : 0);
  const auto groups = split_lanes(plan, found, static_cast<int>(spare.size() + 1));
  spare.resize(groups.size() - 1);  // slots no lane needs go back at once
  if (groups.size() == 1) {
    return {retrieval.fetch(plan.selections, dir, abort_check(item_id, job_id, nullptr)),
            plan.requested};
  }
  spdlog::debug("retrieving study {} over {} associations", study_uid, groups.size());
  return {fetch_lanes(retrieval, groups, dir, node, item_id, job_id), plan.requested};
}

// Maps a PACS error to an outcome: connection trouble waits (breaker), a stop we asked for is
// a pause or a shutdown, transient trouble is retried, the rest fails the item.
Outcome RetrieveStep::outcome_of(const pacs::PacsError& e, const store::Item& it,
                                 const config::PacsNode& node) {
  store::ItemPatch p;
  p.last_error = e.what();
  if (e.kind() == pacs::ErrorKind::Connect ||
      (e.kind() == pacs::ErrorKind::Rejected && e.transient())) {
    if (gate_.on_connect_failure(node.name, e.what(), clock_())) {
      spdlog::error("PACS {} unreachable: circuit breaker open ({})", node.name, e.what());
    }
    // Connection failures do not use up attempts: the items wait for the PACS.
    p.wait_reason = "PACS " + node.name + " unreachable: " + e.what();
    return Outcome::wait(std::string("waiting: ") + e.what(), p);
  }
  if (e.kind() == pacs::ErrorKind::ReceiverBusy) return receiver_busy(e.what());
  if (e.kind() == pacs::ErrorKind::Aborted) {
    if (shutdown_.requested) return Outcome::wait("retrieval interrupted by shutdown", p).after(0);
    const auto job = store_.job(it.job_id);
    // Paused: back to the queue, keeping what arrived. (Cancelled: apply() finds it gone.)
    return Outcome::wait(job && job->paused ? "job paused during retrieval" : "retrieval stopped",
                         p)
        .after(0);
  }
  if (!e.transient()) return Outcome::failed(e.what(), true, p);
  return Outcome::retry(e.what(), p);
}

// After the transfer: a PACS that reported success but delivered nothing is misconfigured;
// otherwise the item is retrieved (files counted, not parsed: validation parses them next).
Outcome RetrieveStep::count_retrieved(const store::Item& it, const Found& found,
                                      const Fetched& fetched, const config::PacsNode& node) {
  const pacs::RetrieveResult& result = fetched.result;
  if (result.failed > 0 && result.receiver_busy > 0) {
    return receiver_busy("PACS " + node.name + " reported " + std::to_string(result.failed) +
                         " failed sub-operation(s) while our Storage SCP turned it away " +
                         std::to_string(result.receiver_busy) + " time(s) for lack of a slot");
  }
  if (fetched.requested > 0 && result.received == 0 && result.failed == 0) {
    return Outcome::retry("PACS " + node.name + " reported " + std::to_string(result.completed) +
                          " instance(s) sent but none arrived" +
                          (node.retrieve == config::RetrieveMethod::Move
                               ? " (does the PACS know AE " + self_.ae_title +
                                     " as a move destination on port " +
                                     std::to_string(self_.storage_port) + "?)"
                               : std::string()));
  }
  const Spool::Held held = spool_.held(it.id);
  const std::int64_t files = held.files, bytes = held.bytes;
  store::ItemPatch done;
  done.received = files;
  done.bytes = bytes;
  done.expected = found.expected;
  if (recorder_) {  // what this retrieval added to the spool (a retry keeps what came before)
    recorder_->retrieved(node.name, std::max<std::int64_t>(0, files - it.received),
                         std::max<std::int64_t>(0, bytes - it.bytes));
    recorder_->suboperations_failed(node.name, result.failed);
  }
  std::string detail = "received " + std::to_string(result.received) +
                       " instance(s), spool holds " + std::to_string(files) + " of " +
                       std::to_string(found.expected);
  if (result.failed > 0) {
    detail += "; PACS reported " + std::to_string(result.failed) + " failed sub-operation(s)" +
              (result.status_text.empty() ? "" : " (" + result.status_text + ")");
  }
  if (result.failed > 0 && files < found.expected && node.retrieve == config::RetrieveMethod::Get &&
      found.sop_classes.empty()) {
    // Without the study's SOP classes the C-GET proposed a built-in list: say what that means
    // (fetched again for the rest; this is the reason the row fails with if it never comes).
    done.last_error = detail + ": PACS " + node.name +
                      " reports no SOP classes in C-FIND, so the C-GET proposed a built-in list "
                      "of common storage SOP classes; an instance of another class (or one the "
                      "PACS cannot send in the transfer syntaxes proposed) cannot come by C-GET: "
                      "retrieve from this PACS by C-MOVE";
    return Outcome::retry(*done.last_error, done);
  }
  return Outcome::done(ItemState::Retrieved, detail, done);
}

}  // namespace p2x::pipeline

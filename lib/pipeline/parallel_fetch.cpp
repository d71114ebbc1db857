// Parallel retrieval of one study's series: when the PACS has association slots nobody else is
// using (the tail of a job, a one-study job), the study's series are dealt over extra
// associations (fetch_plan.hpp split_lanes), each its own C-MOVE/C-GET into the same spool
// directory (the Storage SCP shares the study's route between them). Every extra association
// holds a Gate slot, so max_associations is never exceeded; a lane that fails stops the others.
#include <atomic>
#include <exception>
#include <memory>
#include <thread>

#include "pacs/retrieval.hpp"
#include "pipeline/fetch_plan.hpp"
#include "pipeline/gate.hpp"
#include "pipeline/retrieve_step.hpp"
#include "pipeline/steps.hpp"

namespace p2x::pipeline {

namespace {

void merge(pacs::RetrieveResult& total, const pacs::RetrieveResult& r, bool shared_route) {
  total.completed += r.completed;
  total.failed += r.failed;
  total.warning += r.warning;
  // C-MOVE lanes share one route: each reports the study's count so far.
  total.received =
      shared_route ? std::max(total.received, r.received) : total.received + r.received;
  total.bytes += r.bytes;
  // Lanes share the route too: its busy count is the study's, the largest any lane saw.
  total.receiver_busy = std::max(total.receiver_busy, r.receiver_busy);
  if (r.failed > 0 || total.status_text.empty()) {
    total.status = r.status;
    total.status_text = r.status_text;
  }
}

}  // namespace

std::vector<std::unique_ptr<SlotLease>> RetrieveStep::spare_slots(const config::PacsNode& node,
                                                                  std::size_t wanted) {
  std::vector<std::unique_ptr<SlotLease>> slots;
  while (slots.size() < wanted && gate_.try_acquire(node.name, clock_())) {
    slots.push_back(std::make_unique<SlotLease>(gate_, node.name));
  }
  return slots;
}

pacs::AbortFn RetrieveStep::abort_check(std::int64_t item_id, std::int64_t job_id,
                                        const std::atomic<bool>* stop) {
  auto last_poll =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [this, item_id, job_id, stop, last_poll]() {
    if (stop && stop->load()) return true;
    if (shutdown_.past_deadline()) return true;
    const auto t = std::chrono::steady_clock::now();
    if (t - *last_poll < std::chrono::seconds(1)) return false;
    *last_poll = t;
    const auto cur = store_.item(item_id);
    const auto job = store_.job(job_id);
    return !cur || cur->state != store::ItemState::Retrieving || !job || job->paused;
  };
}

// Lane 0 runs on `first` (the row's association, in this thread); lane i > 0 opens its own
// association in a thread of its own. The first lane to fail stops the others; its error is
// the one thrown.
pacs::RetrieveResult RetrieveStep::fetch_lanes(
    pacs::IRetrieval& first, const std::vector<std::vector<pacs::Selection>>& groups,
    const std::string& dir, const config::PacsNode& node, std::int64_t item_id,
    std::int64_t job_id) {
  const pacs::RetrieveMethod method = node.retrieve == config::RetrieveMethod::Get
                                          ? pacs::RetrieveMethod::Get
                                          : pacs::RetrieveMethod::Move;
  const std::size_t n = groups.size();
  std::vector<pacs::RetrieveResult> results(n);
  std::vector<std::exception_ptr> errors(n);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> first_error{n};
  auto lane = [&](std::size_t i) {
    try {
      std::unique_ptr<pacs::IRetrieval> own;
      if (i > 0) own = pacs_.open(peer_for(node, self_.ae_title), method);
      pacs::IRetrieval& r = own ? *own : first;
      results[i] = r.fetch(groups[i], dir, abort_check(item_id, job_id, &stop));
      if (own) own->close();
    } catch (...) {
      errors[i] = std::current_exception();
      std::size_t none = n;
      first_error.compare_exchange_strong(none, i);
      stop = true;
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < n; ++i) threads.emplace_back(lane, i);
  lane(0);
  for (auto& t : threads) t.join();
  if (first_error.load() < n) std::rethrow_exception(errors[first_error.load()]);
  pacs::RetrieveResult total;
  for (const auto& r : results) merge(total, r, method == pacs::RetrieveMethod::Move);
  return total;
}

}  // namespace p2x::pipeline

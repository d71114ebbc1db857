// pipeline: the worker pools, the claim loop and applying outcomes (see pipeline.hpp).
#include "pipeline/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <random>

#include <spdlog/spdlog.h>

#include "metrics/recorder.hpp"
#include "pacs/retrieval.hpp"
#include "pipeline/claim.hpp"
#include "pipeline/steps.hpp"
#include "xnat/archive.hpp"

namespace p2x::pipeline {

using store::ItemState;

namespace {

// Retrieval workers for `cfg`'s PACSes: twice the association slots each may have, so a thread
// that has released its slot and is still counting and recording a study does not keep the
// next study waiting.
int retrieval_workers_for(const config::Config& cfg) {
  int n = 0;
  for (const auto& p : cfg.pacs) {
    int most = p.max_associations;
    for (const auto& w : p.windows) most = std::max(most, w.max_associations);
    n += 2 * std::max(1, most);
  }
  return n;
}

// Every worker body is wrapped so no exception escapes a thread.
template <typename F>
bool guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    spdlog::error("{} worker: {}", what, e.what());
  } catch (...) {
    spdlog::error("{} worker: unknown error", what);
  }
  return false;
}

}  // namespace

Pipeline::Pipeline(const config::Config& cfg, store::Store& store, pacs::IPacs& pacs,
                   xnat::IArchive& archive, Clock clock)
    : cfg_(cfg),
      store_(store),
      pacs_(pacs),
      clock_(clock ? std::move(clock) : Clock(system_clock)),
      limits_(cfg.limits),
      gate_(cfg),
      spool_(cfg.paths.spool_dir),
      project_(archive, limits_, clock_, cfg.xnat.prearchive),
      retrieve_(pacs, gate_, spool_, store, limits_, clock_, shutdown_,
                OurNode{cfg.ae_title, cfg.storage_port}, [this] { wake(); }),
      validate_(spool_, store),
      push_(archive, spool_, project_, store),
      verify_(archive, spool_, store, cfg.xnat.prearchive) {
  seed_ = std::random_device{}();
}

Pipeline::~Pipeline() {
  stop();
}

void Pipeline::set_recorder(metrics::Recorder* recorder) {
  recorder_ = recorder;
  retrieve_.set_recorder(recorder);
}

bool Pipeline::finished(std::int64_t item_id) const {
  const auto it = store_.item(item_id);
  return !it || it->state == ItemState::Verified || it->state == ItemState::Cancelled;
}

void Pipeline::start() {
  spool_.clean(true, [this](std::int64_t id) { return finished(id); });
  heartbeat_ = system_clock();
  std::lock_guard<std::mutex> lock(threads_mu_);
  started_ = true;
  const int pushers = std::max(1, cfg_.xnat.max_pushes);
  threads_.emplace_back([this] { loop("validation", &Pipeline::validate_once); });
  for (int i = 0; i < pushers; ++i)
    threads_.emplace_back([this] { loop("push", &Pipeline::push_once); });
  // Verification has lanes of its own: a pusher never waits for XNAT to show a session.
  for (int i = 0; i < pushers; ++i)
    threads_.emplace_back([this] { loop("verify", &Pipeline::verify_once); });
  threads_.emplace_back([this] { housekeeping_worker(); });
  add_retrieval_workers(cfg_);
}

// Starts retrieval workers up to what `cfg`'s association limits need (never fewer than run).
// Called with threads_mu_ held.
void Pipeline::add_retrieval_workers(const config::Config& cfg) {
  if (!started_ || stopping()) return;
  const int wanted = retrieval_workers_for(cfg);
  for (; retrievers_ < wanted; ++retrievers_) threads_.emplace_back([this] { retrieval_worker(); });
}

int Pipeline::retrieval_workers() const {
  std::lock_guard<std::mutex> lock(threads_mu_);
  return retrievers_;
}

void Pipeline::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(threads_mu_);
    if (!stopping()) shutdown_.request(limits_.get().drain_timeout_s);
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

void Pipeline::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++wake_seq_;
  }
  cv_.notify_all();
}

void Pipeline::reload(const config::Config& cfg) {
  gate_.reload(cfg);
  limits_.set(cfg.limits);
  {
    std::lock_guard<std::mutex> lock(threads_mu_);
    add_retrieval_workers(cfg);
  }
  wake();  // the new limits may let waiting work go
}

bool Pipeline::healthy() const {
  return system_clock() - heartbeat_.load() < 30;
}

void Pipeline::idle_wait(double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  std::uint64_t seen = wake_seq_;
  cv_.wait_for(lock, std::chrono::duration<double>(seconds),
               [&] { return stopping() || wake_seq_ != seen; });
}

void Pipeline::retrieval_worker() {
  std::size_t next = 0;
  while (!stopping()) {
    bool worked = false;
    for (std::size_t i = 0; i < cfg_.pacs.size() && !stopping(); ++i) {
      const std::string name = cfg_.pacs[(next + i) % cfg_.pacs.size()].name;
      if (guarded("retrieval", [&] { return retrieve_once(name); })) {
        worked = true;
        next = (next + i + 1) % cfg_.pacs.size();
        break;
      }
    }
    if (!worked) idle_wait(1.0);
  }
}

void Pipeline::loop(const char* what, bool (Pipeline::*once)()) {
  while (!stopping()) {
    if (!guarded(what, [&] { return (this->*once)(); })) idle_wait(1.0);
  }
}

void Pipeline::housekeeping_worker() {
  while (!stopping()) {
    guarded("housekeeping", [&] {
      housekeeping();
      return true;
    });
    idle_wait(1.0);
  }
}

// Runs one step on a claimed item: the claim loads its job and options, the work returns an
// Outcome and apply() records it. Whatever ends the claim without an applied outcome (an
// exception from the work, the store or apply itself) leaves it to the lease: released as a
// retry, counting an attempt (claim.hpp).
template <typename Work>
bool Pipeline::run_step(const Step& step, std::optional<store::Item> claimed, Work&& work) {
  if (!claimed) return false;
  const RetryPolicy policy = RetryPolicy::from(limits_.get());
  Claim claim(store_, std::move(*claimed), step, clock_, policy);
  try {
    const bool loaded = claim.load();
    log::ScopedFields scope(
        fields_of(claim.item(), loaded ? claim.job().pacs : "", loaded ? claim.job().project : ""));
    const Outcome outcome =
        loaded ? work(claim) : Outcome::failed("the item's job no longer exists", false);
    const bool recorded = apply(store_, claim, outcome, policy, now(), next_random());
    if (recorded && outcome.kind == Outcome::Kind::Done) wake();  // the next stage has work
    if (recorded) count_final(claim.item().id, outcome);
  } catch (const std::exception& e) {
    claim.abandon(std::string("unexpected error: ") + e.what());
  } catch (...) {
    claim.abandon("unexpected error");
  }
  return true;
}

// Tells the metrics recorder when an applied outcome ended the item: verified, or failed (a
// retry that used up the last attempt fails too, so the store says which).
void Pipeline::count_final(std::int64_t item_id, const Outcome& outcome) {
  if (!recorder_) return;
  if (outcome.kind == Outcome::Kind::Done) {
    if (outcome.next == store::ItemState::Verified) recorder_->study_finished(true);
    return;
  }
  if (outcome.kind == Outcome::Kind::Failed || outcome.kind == Outcome::Kind::FailJob) {
    recorder_->study_finished(false);
  } else if (outcome.kind == Outcome::Kind::Retry) {
    const auto now_item = store_.item(item_id);
    if (now_item && now_item->state == store::ItemState::Failed) recorder_->study_finished(false);
  }
}

bool Pipeline::retrieve_once(const std::string& pacs_name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!disk_wait_.empty()) return false;
  }
  const config::PacsNode* node = cfg_.find_pacs(pacs_name);
  if (!node || !gate_.try_acquire(pacs_name, now())) return false;
  SlotLease slot(gate_, pacs_name);
  return run_step(kRetrieveStep,
                  store_.claim(kRetrieveStep.ready, kRetrieveStep.in_flight, now(), pacs_name),
                  [&](Claim& c) { return retrieve_.run(c, *node, slot); });
}

bool Pipeline::validate_once() {
  return run_step(kValidateStep, store_.claim(kValidateStep.ready, kValidateStep.in_flight, now()),
                  [this](const Claim& c) { return validate_.run(c); });
}

bool Pipeline::push_once() {
  return run_step(kPushStep, store_.claim(kPushStep.ready, kPushStep.in_flight, now()),
                  [this](const Claim& c) { return push_.run(c); });
}

bool Pipeline::verify_once() {
  return run_step(kVerifyStep, store_.claim(kVerifyStep.ready, kVerifyStep.in_flight, now()),
                  [this](const Claim& c) { return verify_.run(c); });
}

void Pipeline::housekeeping() {
  heartbeat_ = system_clock();
  if (++housekeeping_runs_ % 10 == 0)
    spool_.clean(false, [this](std::int64_t id) { return finished(id); });
  const std::string why = spool_.lacks_room(limits_.get());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!why.empty() && disk_wait_ != why) spdlog::warn("{}", why);
    if (why.empty() && !disk_wait_.empty()) spdlog::info("spool has room again; retrieval resumes");
    disk_wait_ = why;
  }
  probe_open_breakers();
}

// C-ECHO each PACS whose circuit breaker is open and due for a probe; close it if it answers.
void Pipeline::probe_open_breakers() {
  for (const auto& name : gate_.probes_due(now())) {
    const config::PacsNode* node = cfg_.find_pacs(name);
    if (!node) continue;
    bool answered = false;
    try {
      pacs_.echo(peer_for(*node, cfg_.ae_title));
      answered = true;
    } catch (const std::exception& e) {
      spdlog::info("PACS {} still unreachable: {}", name, e.what());
    }
    gate_.probe_result(name, answered, now());
    if (answered) {
      spdlog::info("PACS {} answers C-ECHO again: circuit breaker closed", name);
      store_.release_waiting(name);
      wake();
    }
  }
}

nlohmann::json Pipeline::job_notes(std::int64_t job_id) const {
  nlohmann::json notes = nlohmann::json::array();
  auto job = store_.job(job_id);
  if (!job) return notes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!disk_wait_.empty()) notes.push_back(disk_wait_);
  }
  std::string reason = gate_.wait_reason(job->pacs, now());
  if (!reason.empty()) notes.push_back(reason);
  if (job->paused)
    notes.push_back("job is paused (pacs2xnat resume " + std::to_string(job_id) + ")");
  if (const std::string held = project_.waiting_reason(job_id); !held.empty())
    notes.push_back("pushes wait: " + held);
  return notes;
}

}  // namespace p2x::pipeline

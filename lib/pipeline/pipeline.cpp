#include "pipeline/pipeline.hpp"

#include <sys/statvfs.h>

#include <chrono>
#include <filesystem>
#include <random>

#include <spdlog/spdlog.h>

#include "metrics/recorder.hpp"
#include "pacs/retrieval.hpp"
#include "pipeline/spool.hpp"
#include "pipeline/steps.hpp"
#include "xnat/archive.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;
using store::ItemState;

Pipeline::Pipeline(const config::Config& cfg, store::Store& store, pacs::IPacs& pacs,
                   xnat::IArchive& archive, Clock clock)
    : cfg_(cfg),
      store_(store),
      pacs_(pacs),
      archive_(archive),
      clock_(clock ? std::move(clock) : Clock(now_s)),
      gate_(cfg),
      limits_(cfg.limits) {
  seed_ = std::random_device{}();
}

Pipeline::~Pipeline() { stop(); }

std::string Pipeline::spool_dir(std::int64_t item_id) const {
  return cfg_.paths.spool_dir + "/" + std::to_string(item_id);
}

// Removes spool directories of items in a final state (verified, cancelled) and, at start-up,
// the leftovers of a killed run (upload zips, the SCP's staging files).
void Pipeline::clean_spool(bool at_start) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cfg_.paths.spool_dir, ec)) {
    const std::string name = e.path().filename().string();
    std::int64_t id = 0;
    try {
      std::size_t used = 0;
      id = std::stoll(name, &used);
      if (used != name.size()) throw std::invalid_argument(name);
    } catch (const std::exception&) {
      // Leftovers of a killed run: upload zips and the SCP's staging files.
      if (!at_start) continue;
      if (name == ".incoming") {
        for (const auto& f : fs::directory_iterator(e.path(), ec)) fs::remove_all(f.path(), ec);
      } else if (name.find(".upload-") != std::string::npos) {
        fs::remove(e.path(), ec);
      }
      continue;
    }
    if (at_start) {
      if (const int n = remove_crash_leftovers(e.path().string()))
        spdlog::info("spool: removed {} unfinished file(s) of item {} left by the last run", n, id);
    }
    auto it = store_.item(id);
    if (!it || it->state == ItemState::Verified || it->state == ItemState::Cancelled) {
      try {
        remove_item_spool(cfg_.paths.spool_dir, id);  // with its quarantine
      } catch (const std::exception& err) {
        spdlog::warn("spool: {}", err.what());
      }
    }
  }
}

void Pipeline::start() {
  clean_spool(true);
  heartbeat_ = now_s();
  int retrievers = 0;
  for (const auto& p : cfg_.pacs) {
    int most = p.max_associations;
    for (const auto& w : p.windows) most = std::max(most, w.max_associations);
    // Twice the slots: a thread that has released its slot and is still counting and
    // recording a study does not keep the next study waiting.
    retrievers += 2 * std::max(1, most);
  }
  for (int i = 0; i < retrievers; ++i) threads_.emplace_back([this] { retrieval_worker(); });
  threads_.emplace_back([this] { validation_worker(); });
  for (int i = 0; i < std::max(1, cfg_.xnat.max_pushes); ++i) {
    threads_.emplace_back([this] { push_worker(); });
  }
  threads_.emplace_back([this] { housekeeping_worker(); });
}

void Pipeline::stop() {
  if (stopping_.exchange(true)) {
    for (auto& t : threads_) if (t.joinable()) t.join();
    return;
  }
  drain_deadline_ = now_s() + limits().drain_timeout_s;
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
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
  std::lock_guard<std::mutex> lock(limits_mu_);
  limits_ = cfg.limits;
}

config::Limits Pipeline::limits() const {
  std::lock_guard<std::mutex> lock(limits_mu_);
  return limits_;
}

bool Pipeline::healthy() const { return now_s() - heartbeat_.load() < 30; }

void Pipeline::idle_wait(double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  std::uint64_t seen = wake_seq_;
  cv_.wait_for(lock, std::chrono::duration<double>(seconds),
               [&] { return stopping() || wake_seq_ != seen; });
}

// Every worker body is wrapped so no exception escapes a thread.
template <typename F>
static bool guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    spdlog::error("{} worker: {}", what, e.what());
  } catch (...) {
    spdlog::error("{} worker: unknown error", what);
  }
  return false;
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

void Pipeline::validation_worker() {
  while (!stopping()) {
    if (!guarded("validation", [&] { return validate_once(); })) idle_wait(1.0);
  }
}

// Runs one step on a claimed item: the work returns an Outcome (an exception that escapes it is
// an unexpected error: retried, counting an attempt), and apply() records it.
template <typename Work>
bool Pipeline::run_step(const Step& step, std::optional<store::Item> claimed, Work&& work) {
  if (!claimed) return false;
  Claim claim(store_, std::move(*claimed), step);
  const auto job = store_.job(claim.item().job_id);
  log::ScopedFields scope(fields_of(claim.item(), job ? job->pacs : "", job ? job->project : ""));
  Outcome outcome;
  try {
    outcome = work(claim);
  } catch (const std::exception& e) {
    outcome = Outcome::retry(std::string("unexpected error: ") + e.what());
  }
  const bool recorded = apply(store_, claim, outcome, RetryPolicy::from(limits()), now(), next_random());
  if (recorded && outcome.kind == Outcome::Kind::Done) wake();  // the next stage has work
  if (recorded) count_final(claim.item().id, outcome);
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
  if (!node || !gate_.try_acquire(pacs_name, now_s())) return false;
  SlotLease slot(gate_, pacs_name);
  return run_step(kRetrieveStep,
                  store_.claim(kRetrieveStep.ready, kRetrieveStep.in_flight, now(), pacs_name),
                  [&](Claim& c) { return retrieve(c, *node, slot); });
}

bool Pipeline::validate_once() {
  return run_step(kValidateStep, store_.claim(kValidateStep.ready, kValidateStep.in_flight, now()),
                  [this](Claim& c) { return validate(c); });
}

bool Pipeline::push_once() {
  std::optional<std::int64_t> pushed;
  const bool worked =
      run_step(kPushStep, store_.claim(kPushStep.ready, kPushStep.in_flight, now()),
               [&](Claim& c) {
                 Outcome o = push(c);
                 if (o.kind == Outcome::Kind::Done) pushed = c.item().id;
                 return o;
               });
  // Verify a fresh upload at once, by the same worker (if no one else claimed it first).
  if (pushed) verify_item(*pushed);
  return worked;
}

bool Pipeline::verify_once() {
  return run_step(kVerifyStep, store_.claim(kVerifyStep.ready, kVerifyStep.in_flight, now()),
                  [this](Claim& c) { return verify(c); });
}

bool Pipeline::verify_item(std::int64_t item_id) {
  std::optional<store::Item> claimed;
  if (store_.transition(item_id, kVerifyStep.ready, kVerifyStep.in_flight, "claimed")) {
    claimed = store_.item(item_id);
  }
  return run_step(kVerifyStep, std::move(claimed), [this](Claim& c) { return verify(c); });
}

void Pipeline::push_worker() {
  while (!stopping()) {
    bool worked = guarded("push", [&] { return push_once(); });
    worked = guarded("verify", [&] { return verify_once(); }) || worked;
    if (!worked) idle_wait(1.0);
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

bool Pipeline::spool_has_room(std::string* why) const {
  const config::Limits lim = limits();
  struct statvfs st{};
  if (statvfs(cfg_.paths.spool_dir.c_str(), &st) == 0) {
    double free_mb = static_cast<double>(st.f_bavail) * st.f_frsize / (1024.0 * 1024.0);
    if (free_mb < static_cast<double>(lim.spool_min_free_mb)) {
      *why = "spool " + cfg_.paths.spool_dir + " has " + std::to_string(static_cast<long long>(free_mb)) +
             " MB free, below limits.spool_min_free_mb (" +
             std::to_string(lim.spool_min_free_mb) + " MB); retrieval resumes when space is freed";
      return false;
    }
  }
  if (lim.spool_max_mb > 0) {
    std::uintmax_t bytes = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(cfg_.paths.spool_dir, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file(ec)) bytes += it->file_size(ec);
    }
    if (bytes / (1024 * 1024) >= static_cast<std::uintmax_t>(lim.spool_max_mb)) {
      *why = "spool holds " + std::to_string(bytes / (1024 * 1024)) +
             " MB, at limits.spool_max_mb (" + std::to_string(lim.spool_max_mb) +
             " MB); retrieval resumes as studies are pushed";
      return false;
    }
  }
  return true;
}

void Pipeline::housekeeping() {
  heartbeat_ = now_s();
  if (++housekeeping_runs_ % 10 == 0) clean_spool(false);
  std::string why;
  bool room = spool_has_room(&why);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!room && disk_wait_ != why) spdlog::warn("{}", why);
    if (room && !disk_wait_.empty()) spdlog::info("spool has room again; retrieval resumes");
    disk_wait_ = room ? std::string() : why;
  }
  probe_open_breakers();
}

// C-ECHO each PACS whose circuit breaker is open and due for a probe; close it if it answers.
void Pipeline::probe_open_breakers() {
  for (const auto& name : gate_.probes_due(now_s())) {
    const config::PacsNode* node = cfg_.find_pacs(name);
    if (!node) continue;
    bool answered = false;
    try {
      pacs_.echo(peer_for(*node, cfg_.ae_title));
      answered = true;
    } catch (const std::exception& e) {
      spdlog::info("PACS {} still unreachable: {}", name, e.what());
    }
    gate_.probe_result(name, answered, now_s());
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
  std::string reason = gate_.wait_reason(job->pacs, now_s());
  if (!reason.empty()) notes.push_back(reason);
  if (job->paused) notes.push_back("job is paused (pacs2xnat resume " + std::to_string(job_id) + ")");
  {
    std::lock_guard<std::mutex> lock(project_mu_);
    auto it = project_checks_.find(job_id);
    if (it != project_checks_.end() && !it->second.passed && !it->second.reason.empty())
      notes.push_back("pushes wait: " + it->second.reason);
  }
  return notes;
}

}  // namespace p2x::pipeline

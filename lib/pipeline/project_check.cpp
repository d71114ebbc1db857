// pipeline/project_check: the project settings a job's pushes wait for (see project_check.hpp).
#include "pipeline/project_check.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "pipeline/options.hpp"
#include "pipeline/xnat_outcome.hpp"
#include "xnat/archive.hpp"
#include "xnat/project_checks.hpp"

namespace p2x::pipeline {

namespace {
constexpr int kMaxRecheckS = 60;
}

ProjectCheck::ProjectCheck(xnat::IArchive& archive, const LiveLimits& limits, Clock clock,
                           std::optional<bool> prearchive_setting)
    : archive_(archive),
      limits_(limits),
      clock_(std::move(clock)),
      prearchive_setting_(prearchive_setting) {}

std::optional<Outcome> ProjectCheck::held(const State& st, std::int64_t now) const {
  store::ItemPatch p;
  p.wait_reason = st.reason;
  return Outcome::wait(st.reason, p)
      .after(static_cast<int>(std::max<std::int64_t>(1, st.next_check_at - now)));
}

std::optional<Outcome> ProjectCheck::ready(const Claim& claim, domain::Destination* destination) {
  const store::Job& job = claim.job();
  const std::int64_t now = clock_();
  {
    std::lock_guard<std::mutex> lock(mu_);
    const State& st = jobs_[job.id];
    if (st.passed) {
      *destination = job.destination.value_or(st.destination);
      return std::nullopt;
    }
    if (st.next_check_at > now) return held(st, now);
  }
  xnat::ProjectChecks checks;
  try {
    checks = xnat::check_project(archive_, job.project, claim.options().no_anonymisation_check);
  } catch (const xnat::XnatError& e) {
    if (!e.transient()) return outcome_of(e, archive_, job.project);
    return Outcome::wait(std::string("cannot check project settings in XNAT: ") + e.what());
  }
  const int recheck_s = std::max(1, std::min(kMaxRecheckS, limits_.get().backoff_max_s));
  std::lock_guard<std::mutex> lock(mu_);
  State& st = jobs_[job.id];
  if (st.passed) {  // another pusher of the job got here first: its decision stands
    *destination = job.destination.value_or(st.destination);
    return std::nullopt;
  }
  if (!checks.anonymisation_ok) {
    if (st.reason != checks.anonymisation) spdlog::warn("job {}: {}", job.id, checks.anonymisation);
    st.reason = checks.anonymisation;
    st.next_check_at = now + recheck_s;
    return held(st, now);
  }
  domain::Destination decided;
  if (job.destination) {
    decided = *job.destination;
  } else {
    const auto d = xnat::choose_destination(prearchive_setting_, checks, job.project);
    spdlog::info("job {}: {}; {}", job.id, checks.anonymisation, d.why);
    decided = d.prearchive ? domain::Destination::Prearchive : domain::Destination::Archive;
  }
  st = State{true, 0, {}, decided};
  *destination = decided;
  return std::nullopt;
}

std::string ProjectCheck::waiting_reason(std::int64_t job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.passed) return {};
  return it->second.reason;
}

}  // namespace p2x::pipeline

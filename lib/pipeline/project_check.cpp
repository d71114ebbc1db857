// The check of a job's project settings before its first push (the site procedure: an enabled
// anonymisation script, the project's prearchive choice), repeated once per daemon run because
// settings change. A project that no longer passes holds the job's pushes: its items wait in
// `validated` (no attempt used) with the reason in `status`, the check is asked again every
// limits.backoff_max_s (at most every minute) and the pushes resume by themselves once XNAT is
// set up. The destination (archive or
// prearchive) is decided at the job's first push and recorded on the job, so every session of
// a job goes, and is verified, in one place.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "pipeline/options.hpp"
#include "pipeline/pipeline.hpp"
#include "xnat/archive.hpp"
#include "xnat/project_checks.hpp"

namespace p2x::pipeline {

namespace {
constexpr int kMaxRecheckS = 60;
}

std::optional<Outcome> Pipeline::project_ready(const store::Job& job, const JobOptions& opt,
                                               bool* prearchive) {
  {
    std::lock_guard<std::mutex> lock(project_mu_);
    const ProjectState& st = project_checks_[job.id];
    if (st.passed && job.destination) {
      *prearchive = domain::destination_of(job.destination, cfg_.xnat.prearchive) ==
                    domain::Destination::Prearchive;
      return std::nullopt;
    }
    if (!st.passed && st.next_check_at > now()) {
      store::ItemPatch p;
      p.wait_reason = st.reason;
      return Outcome::wait(st.reason, p).after(static_cast<int>(st.next_check_at - now()));
    }
  }
  xnat::ProjectChecks checks;
  try {
    checks = xnat::check_project(archive_, job.project, opt.no_anonymisation_check);
  } catch (const xnat::XnatError& e) {
    if (!e.transient()) return outcome_of(e, job);
    return Outcome::wait(std::string("cannot check project settings in XNAT: ") + e.what());
  }
  const int recheck_s = std::max(1, std::min(kMaxRecheckS, limits().backoff_max_s));
  std::lock_guard<std::mutex> lock(project_mu_);
  ProjectState& st = project_checks_[job.id];
  if (!checks.anonymisation_ok) {
    if (st.reason != checks.anonymisation) spdlog::warn("job {}: {}", job.id, checks.anonymisation);
    st.reason = checks.anonymisation;
    st.next_check_at = now() + recheck_s;
    store::ItemPatch p;
    p.wait_reason = st.reason;
    return Outcome::wait(st.reason, p).after(recheck_s);
  }
  std::optional<domain::Destination> destination = job.destination;
  if (!destination) {
    const auto d = xnat::choose_destination(cfg_.xnat.prearchive, checks, job.project);
    spdlog::info("job {}: {}; {}", job.id, checks.anonymisation, d.why);
    destination = store_.set_destination(
        job.id, d.prearchive ? domain::Destination::Prearchive : domain::Destination::Archive);
  }
  st = ProjectState{true, 0, {}};
  *prearchive = domain::destination_of(destination, cfg_.xnat.prearchive) ==
                domain::Destination::Prearchive;
  return std::nullopt;
}

// What XNAT holds under the item's session label, where the job sends its sessions.
std::optional<xnat::SessionInfo> Pipeline::holding_of(const store::Job& job, const store::Item& it,
                                                      bool prearchive) {
  if (prearchive) return archive_.prearchive_session(job.project, it.session, it.study_uid);
  return archive_.session(job.project, it.session);
}

}  // namespace p2x::pipeline

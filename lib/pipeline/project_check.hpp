// pipeline/project_check: the check of a job's project settings before its pushes (the site
// procedure: an enabled anonymisation script, the project's prearchive choice), and where the
// job's sessions go (archive or prearchive).
//
// The check runs once per job and daemon run, because settings change: its result is kept in
// memory on purpose (a stored "passed" would outlive the run it is only valid for; a restart
// must ask XNAT again). A project that does not pass holds the job's pushes: its items wait in
// `validated` (no attempt used) with the reason, the check is asked again every
// limits.backoff_max_s (at most every minute), and the pushes resume by themselves once XNAT is
// set up. The destination is decided at the job's first push and travels in that push's outcome
// (store::ItemPatch::job_destination: recorded once, never changed), so every session of a job
// goes, and is verified, in one place; until it is recorded, the decision kept here is the one
// every pusher of the job uses.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "domain/values.hpp"
#include "pipeline/claim.hpp"
#include "pipeline/live.hpp"
#include "pipeline/outcome.hpp"

namespace p2x::xnat {
class IArchive;
}

namespace p2x::pipeline {

class ProjectCheck {
 public:
  // `prearchive_setting`: xnat.prearchive of the configuration (unset: the project decides).
  ProjectCheck(xnat::IArchive& archive, const LiveLimits& limits, Clock clock,
               std::optional<bool> prearchive_setting);

  // nullopt when the claim's job may push, with *destination set; else the outcome that holds
  // the push (wait, or XNAT's answer).
  std::optional<Outcome> ready(const Claim& claim, domain::Destination* destination);
  // Why the job's pushes wait ("" when they do not).
  std::string waiting_reason(std::int64_t job_id) const;

 private:
  struct State {
    bool passed = false;
    std::int64_t next_check_at = 0;                                  // while not passed
    std::string reason;                                              // why the job's pushes wait
    domain::Destination destination = domain::Destination::Archive;  // decided (once passed)
  };
  std::optional<Outcome> held(const State& st, std::int64_t now) const;

  xnat::IArchive& archive_;
  const LiveLimits& limits_;
  Clock clock_;
  std::optional<bool> prearchive_setting_;
  mutable std::mutex mu_;
  std::map<std::int64_t, State> jobs_;
};

}  // namespace p2x::pipeline

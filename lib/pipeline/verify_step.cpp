// pipeline/verify_step: the verification step (see verify_step.hpp).
#include "pipeline/verify_step.hpp"

#include <filesystem>
#include <map>

#include <spdlog/spdlog.h>

#include "pipeline/holding.hpp"
#include "pipeline/spool.hpp"
#include "pipeline/xnat_outcome.hpp"
#include "xnat/archive.hpp"

namespace p2x::pipeline {

using store::ItemState;

namespace {
// The detail of the event that sends an incompletely verified study back to be pushed again
// (for people: the count is the item's `repushes`, never read back from here).
constexpr const char* kRepush = "verification: ";
}  // namespace

Holding compare(const xnat::SessionInfo& s, const std::vector<store::Series>& series) {
  Holding h;
  std::map<std::string, std::int64_t> by_uid;
  for (const auto& scan : s.scans) by_uid[scan.series_uid] += scan.files;
  for (const auto& sr : series) {
    const auto found = by_uid.find(sr.series_uid);
    const std::int64_t n = found == by_uid.end() ? 0 : found->second;
    h.files += std::min(n, sr.expected);
    if (n < sr.expected) {
      h.complete = false;
      h.incomplete.insert(sr.series_uid);
      h.missing += (h.missing.empty() ? "" : "; ") + std::string("series ") + sr.series_uid +
                   (sr.description.empty() ? "" : " (" + sr.description + ")") + ": " +
                   std::to_string(n) + " of " + std::to_string(sr.expected) + " files in XNAT";
    }
  }
  return h;
}

std::optional<xnat::SessionInfo> holding_of(xnat::IArchive& archive, const store::Job& job,
                                            const store::Item& it, bool prearchive) {
  if (prearchive) return archive.prearchive_session(job.project, it.session, it.study_uid);
  return archive.session(job.project, it.session);
}

VerifyStep::VerifyStep(xnat::IArchive& archive, const Spool& spool, const store::Store& store,
                       std::optional<bool> prearchive_setting)
    : archive_(archive), spool_(spool), store_(store), prearchive_setting_(prearchive_setting) {}

Outcome VerifyStep::run(const Claim& claim) {
  const store::Item& it = claim.item();
  const store::Job* job = &claim.job();
  const auto series = store_.series(it.id);
  const bool prearchive = domain::destination_of(job->destination, prearchive_setting_) ==
                          domain::Destination::Prearchive;
  std::optional<xnat::SessionInfo> session;
  try {
    session = holding_of(archive_, *job, it, prearchive);
  } catch (const xnat::XnatError& e) {
    if (!e.transient()) return outcome_of(e, archive_, job->project);
    return Outcome::wait(std::string("verification query failed: ") + e.what());
  }
  Holding h;
  if (session) {
    h = compare(*session, series);
  } else {
    h.complete = false;
    h.missing = "session " + it.session + " not found in " +
                (prearchive ? "the prearchive of " : "") + "project " + job->project;
  }
  store::ItemPatch p;
  p.verified = h.files;
  if (!h.complete && session && !prearchive && archive_.verify_policy().session_after_idle) {
    if (auto split = split_study(*job, it, h, p)) return *split;
  }
  if (!h.complete) return not_yet_verified(it, h, p, job->project);
  p.verify_checks = 0;
  // XNAT holds everything: the spool copy goes first, so no one sees a verified item (or a
  // finished job) with files still in the spool. A crash in between only repeats the check.
  try {
    spool_.remove(it.id);  // with its quarantine
  } catch (const std::exception& e) {
    return Outcome::retry("cannot remove the spool copy: " + std::string(e.what()));
  }
  spdlog::info("verified {} file(s) in XNAT{}; spool removed", h.files,
               prearchive ? "'s prearchive" : "");
  p.wait_reason = std::string();
  const std::string counts =
      std::to_string(h.files) + " files in " + std::to_string(series.size()) + " series";
  return Outcome::done(
      ItemState::Verified,
      prearchive ? "verified in the prearchive: " + counts + "; awaiting review in the prearchive"
                 : "verified in XNAT: " + counts,
      p);
}

// XNAT's DICOM receiver builds a study sent in bursts further apart than its idle interval (an
// interrupted push resumed later) as separate sessions: the archive holds part of it and the
// rest waits in the prearchive (CONFLICT when the project auto-archives). Pushing again only
// adds another such session, so the item fails with what to do in XNAT.
std::optional<Outcome> VerifyStep::split_study(const store::Job& job, const store::Item& it,
                                               const Holding& h, const store::ItemPatch& p) {
  std::optional<xnat::SessionInfo> rest;
  try {
    rest = archive_.prearchive_session(job.project, it.session, it.study_uid);
  } catch (const xnat::XnatError& e) {
    spdlog::debug("prearchive check: {}", e.what());
    return std::nullopt;
  }
  if (!rest) return std::nullopt;
  return Outcome::failed(
      "XNAT's DICOM receiver built this study as more than one session (it arrived in bursts "
      "further apart than XNAT's idle interval, e.g. a push interrupted and resumed later): the "
      "archived session " +
          it.session + " lacks files (" + h.missing +
          ") and the rest waits "
          "in the prearchive of project " +
          job.project +
          ". In XNAT, archive that prearchive "
          "session into " +
          it.session +
          " with overwrite \"append\" (Upload > Prearchive), "
          "then `pacs2xnat retry`",
      true, p);
}

// XNAT does not show the whole study yet. A session built from C-STOREd instances appears only
// after XNAT's idle interval (5 minutes by default), so that path waits much longer than a REST
// import. After enough checks the study is pushed again, which counts an attempt.
// A series import filter in XNAT (site or project) drops matching files and still answers 200;
// a second upload is dropped the same way. So after one re-push that did not complete the
// study, the item fails with the series named and that hint, instead of pushing again.
Outcome VerifyStep::not_yet_verified(const store::Item& it, const Holding& h, store::ItemPatch p,
                                     const std::string& project) {
  const xnat::VerifyPolicy policy = archive_.verify_policy();
  const int max_checks = policy.checks_before_repush;
  const int checks = it.verify_checks + 1;  // this one included
  p.verify_checks = checks;
  if (checks >= max_checks && it.repushes >= 1) {
    return Outcome::failed(
        "XNAT still lacks files after the study was uploaded again: " + h.missing +
            ". XNAT accepted every upload, so a series import filter in project " + project +
            " or in the site settings may be dropping these series (XNAT: project Settings > "
            "Series Import Filter, or Administer > Site Administration > Session Upload & "
            "Import); change the filter if they are wanted, then `pacs2xnat retry`",
        true, p);
  }
  if (checks >= max_checks) {
    p.verify_checks = 0;  // the checks start afresh after the push again
    p.repushes = it.repushes + 1;
    p.last_error = std::string(kRepush) + h.missing;
    return Outcome::retry(std::string(kRepush) + h.missing + "; pushing again", p)
        .to(ItemState::Validated);
  }
  p.wait_reason = "waiting for XNAT to show the upload: " + h.missing;
  return Outcome::wait("XNAT does not show the whole upload yet: " + h.missing, p)
      .after(policy.wait_after(checks));
}

}  // namespace p2x::pipeline

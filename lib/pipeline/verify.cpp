// The verification step: ask XNAT what it holds of a pushed study; when every series is complete
// remove the spool copy and mark the item verified; otherwise wait for XNAT to show the upload,
// and after enough checks push again (counting an attempt).
#include <filesystem>
#include <map>

#include <spdlog/spdlog.h>

#include "pipeline/holding.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/spool.hpp"
#include "xnat/archive.hpp"

namespace p2x::pipeline {

using store::ItemState;

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
      h.missing += (h.missing.empty() ? "" : "; ") + std::string("series ") + sr.series_uid +
                   (sr.description.empty() ? "" : " (" + sr.description + ")") + ": " +
                   std::to_string(n) + " of " + std::to_string(sr.expected) + " files in XNAT";
    }
  }
  return h;
}

Outcome Pipeline::verify(Claim& claim) {
  const store::Item& it = claim.item();
  const auto job = store_.job(it.job_id);
  if (!job) return Outcome::failed("the item's job no longer exists", false);
  const auto series = store_.series(it.id);
  std::optional<xnat::SessionInfo> session;
  try {
    session = archive_.session(job->project, it.session);
  } catch (const xnat::XnatError& e) {
    if (!e.transient()) return outcome_of(e, *job);
    return Outcome::wait(std::string("verification query failed: ") + e.what());
  }
  Holding h;
  if (session) {
    h = compare(*session, series);
  } else {
    h.complete = false;
    h.missing = "session " + it.session + " not found in project " + job->project;
  }
  store::ItemPatch p;
  p.verified = h.files;
  if (!h.complete) return not_yet_verified(it, h, p);
  {
    std::lock_guard<std::mutex> lock(verify_mu_);
    verify_tries_.erase(it.id);
  }
  // XNAT holds everything: the spool copy goes first, so no one sees a verified item (or a
  // finished job) with files still in the spool. A crash in between only repeats the check.
  try {
    remove_item_spool(cfg_.paths.spool_dir, it.id);  // with its quarantine
  } catch (const std::exception& e) {
    return Outcome::retry("cannot remove the spool copy: " + std::string(e.what()));
  }
  spdlog::info("verified {} file(s) in XNAT; spool removed", h.files);
  p.wait_reason = std::string();
  return Outcome::done(ItemState::Verified,
                       "verified in XNAT: " + std::to_string(h.files) + " files in " +
                           std::to_string(series.size()) + " series",
                       p);
}

// XNAT does not show the whole study yet. A session built from C-STOREd instances appears only
// after XNAT's idle interval (5 minutes by default), so that path waits much longer than a REST
// import. After enough checks the study is pushed again, which counts an attempt.
Outcome Pipeline::not_yet_verified(const store::Item& it, const Holding& h, store::ItemPatch p) {
  const bool later = archive_.builds_sessions_later();
  const int max_checks = later ? 40 : 4;
  int checks = 0;
  {
    std::lock_guard<std::mutex> lock(verify_mu_);
    checks = ++verify_tries_[it.id];
    if (checks >= max_checks) verify_tries_.erase(it.id);
  }
  if (checks >= max_checks) {
    p.last_error = "verification: " + h.missing;
    return Outcome::retry("verification: " + h.missing + "; pushing again", p).to(ItemState::Validated);
  }
  p.wait_reason = "waiting for XNAT to show the upload: " + h.missing;
  return Outcome::wait("XNAT does not show the whole upload yet: " + h.missing, p)
      .after(later ? 30 : 2 * checks);
}

}  // namespace p2x::pipeline

// The push step: upload a validated study to XNAT through the archive seam, unless XNAT already
// holds it (a push is never repeated blindly), and map XNAT's answers to outcomes.
#include <spdlog/spdlog.h>

#include "pipeline/holding.hpp"
#include "pipeline/options.hpp"
#include "pipeline/pipeline.hpp"
#include "xnat/archive.hpp"
#include "text/text.hpp"

namespace p2x::pipeline {

using store::ItemState;

namespace {

// A session with this label that is not this study's: a conflict a person must resolve.
std::string conflict_with(const xnat::SessionInfo& existing, const store::Item& it,
                          const std::string& project) {
  if (!existing.study_uid.empty() && existing.study_uid != it.study_uid) {
    return "session " + it.session + " already exists in project " + project +
           " for another study (" + existing.study_uid + "); choose another session label";
  }
  if (!existing.subject_label.empty() && !text::iequals(existing.subject_label, it.subject)) {
    return "session " + it.session + " already exists in project " + project +
           " under subject " + existing.subject_label + ", not " + it.subject;
  }
  return {};
}

}  // namespace

Outcome Pipeline::push(Claim& claim) {
  const store::Item& it = claim.item();
  const auto job = store_.job(it.job_id);
  if (!job) return Outcome::failed("the item's job no longer exists", false);
  try {
    const JobOptions opt = parse_job_options(job->options_json);
    bool prearchive = false;
    if (auto held = project_ready(*job, opt, &prearchive)) return *held;
    const auto series = store_.series(it.id);
    xnat::Upload up{job->project, it.subject, it.session, spool_dir(it.id), opt.append, prearchive};
    // Idempotence: never upload a study twice into the same session.
    if (const auto existing = holding_of(*job, it, prearchive)) {
      const std::string conflict = prearchive ? std::string() : conflict_with(*existing, it, job->project);
      if (!conflict.empty()) return Outcome::failed("XNAT: " + conflict, false);
      const Holding h = compare(*existing, series);
      if (h.complete) {
        store::ItemPatch p;
        p.pushed = h.files;
        return Outcome::done(ItemState::Pushed, "XNAT already holds this study; not uploaded again", p);
      }
      up.append = true;  // a partial earlier upload of this very study: merge, never duplicate
      if (prearchive) up.append = opt.append;  // the prearchive makes a new entry either way
    }
    const std::string where = archive_.upload(up);
    spdlog::info("pushed {} instance(s) to {}", it.received, where);
    store::ItemPatch p;
    p.pushed = it.received;
    p.last_error = std::string();
    return Outcome::done(ItemState::Pushed, "uploaded to " + where, p);
  } catch (const xnat::XnatError& e) {
    return outcome_of(e, *job);
  }
}

// XNAT's answer as an outcome: what affects every item of the job (credentials, TLS, rights, a
// missing project) fails the job once; transient trouble (5xx, timeouts, 400 "Concurrent file
// sends of the same data is not supported.") is retried; the rest fails the item with XNAT's
// text, once: a label conflict that DICOM-zip wraps in a 400 ("Failed to archive N of M
// session(s)", "unable to archive for the Prearchive session") is as permanent as a 409.
Outcome Pipeline::outcome_of(const xnat::XnatError& e, const store::Job& job) {
  using K = xnat::ErrorKind;
  const std::string reason = std::string("XNAT: ") + e.what();
  bool whole_job = e.kind == K::Auth || e.kind == K::Tls || e.kind == K::Forbidden;
  if (e.kind == K::NotFound) {
    try {
      whole_job = !archive_.project_exists(job.project);
    } catch (const std::exception&) {
      // unknown: do not fail the whole job on a guess
    }
  }
  if (whole_job) return Outcome::fail_job(reason);
  store::ItemPatch p;
  p.last_error = reason;
  if (e.transient()) return Outcome::retry(reason, p);
  return Outcome::failed(reason, false, p);
}

}  // namespace p2x::pipeline

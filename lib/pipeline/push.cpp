// The push step: upload a validated study to XNAT through the archive seam — exactly the files
// validation accepted (pipeline/validated.hpp), checked byte for byte as they are sent — unless
// XNAT already holds it (a push is never repeated blindly), and map XNAT's answers to outcomes.
#include <filesystem>
#include <set>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include "pipeline/holding.hpp"
#include "pipeline/options.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/validated.hpp"
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

namespace {

// The files to send: every validated file, or only those of the series XNAT lacks files of.
std::vector<xnat::StudyFile> files_to_send(const std::string& dir,
                                           const std::vector<validate::ValidFile>& validated,
                                           const std::set<std::string>* only_series) {
  std::vector<xnat::StudyFile> out;
  for (const auto& f : validated) {
    if (only_series && only_series->count(f.series_uid) == 0) continue;
    out.push_back({dir + "/" + f.name, f.name, f.size, f.crc});
  }
  return out;
}

// XNAT names what it could not take (a file's name in the zip is <SOPInstanceUID>.dcm, and its
// messages quote the SOP Instance UID): say which kind of object that is, so the row's reason
// names the SOP class. "" when the message names none of the study's files.
std::string refused_object(const std::string& message,
                           const std::vector<validate::ValidFile>& files) {
  for (const auto& f : files) {
    if (f.sop_uid.empty() || message.find(f.sop_uid) == std::string::npos) continue;
    const char* name = dcmFindNameOfUID(f.sop_class.c_str(), nullptr);
    return std::string("; the object XNAT refused is ") +
           (name ? std::string("a ") + name + " (SOP class " + f.sop_class + ")"
                 : "of SOP class " + f.sop_class + ", which XNAT does not know");
  }
  return {};
}

}  // namespace

// XNAT holds part of the study (a re-push after verification, `--append`, a session built by
// hand or by an earlier job): only the series it lacks files of are sent, merged with
// overwrite_files=true. XNAT refuses to merge an instance a session already holds unless told
// to overwrite (MergeSessionsA.checkForConflict), and which instances it holds cannot be told
// reliably from its listings (they name files by the site's DICOM file name template and
// carry no SOP Instance UIDs; an anonymisation script may change the UIDs), so the series
// that are incomplete are sent whole and XNAT replaces the copies it has. Complete series are
// not sent again. Never overwrite=delete: it switches off XNAT's subject and Study UID checks.
Outcome Pipeline::push(Claim& claim) {
  const store::Item& it = claim.item();
  const auto job = store_.job(it.job_id);
  if (!job) return Outcome::failed("the item's job no longer exists", false);
  const std::string dir = spool_dir(it.id);
  std::optional<std::vector<validate::ValidFile>> validated;
  try {
    validated = read_validated(dir);
  } catch (const std::exception& e) {
    spdlog::warn("push: {}; validating the study again", e.what());
  }
  if (!validated || validated->empty())
    return Outcome::retry("no validated file list for this study; validating it again")
        .to(ItemState::Retrieved)
        .without_attempt();
  try {
    const JobOptions opt = parse_job_options(job->options_json);
    bool prearchive = false;
    if (auto held = project_ready(*job, opt, &prearchive)) return *held;
    const auto series = store_.series(it.id);
    xnat::Upload up{job->project, it.subject, it.session, {}, opt.append, false, prearchive};
    const std::set<std::string>* only = nullptr;
    Holding h;
    // Idempotence: never upload a study twice into the same session.
    if (const auto existing = holding_of(*job, it, prearchive)) {
      const std::string conflict = prearchive ? std::string() : conflict_with(*existing, it, job->project);
      if (!conflict.empty()) return Outcome::failed("XNAT: " + conflict, false);
      h = compare(*existing, series);
      if (h.complete) {
        store::ItemPatch p;
        p.pushed = h.files;
        return Outcome::done(ItemState::Pushed, "XNAT already holds this study; not uploaded again", p);
      }
      up.append = !prearchive || opt.append;  // the prearchive reuses its entry either way
      if (!existing->scans.empty()) {
        only = &h.incomplete;
        up.overwrite_files = true;
      }
    }
    up.files = files_to_send(dir, *validated, only);
    const std::string where = archive_.upload(up);
    spdlog::info("pushed {} instance(s) to {}", up.files.size(), where);
    store::ItemPatch p;
    p.pushed = it.received;
    p.last_error = std::string();
    const std::string what =
        only ? std::to_string(up.files.size()) + " file(s) of the " +
                   std::to_string(h.incomplete.size()) + " series XNAT lacked files of, "
             : std::string();
    return Outcome::done(ItemState::Pushed, "uploaded " + what + "to " + where, p);
  } catch (const xnat::StudyFileChanged& e) {
    return changed_since_validation(it, e);
  } catch (const xnat::XnatError& e) {
    const std::string object = e.transient() ? std::string() : refused_object(e.what(), *validated);
    if (object.empty()) return outcome_of(e, *job);
    return outcome_of(xnat::XnatError(e.kind, e.http_status, e.what() + object), *job);
  }
}

// A spool file is no longer the one validation accepted (written to since, on purpose or by a
// fault): it is removed and the study goes back to be retrieved, so what reaches XNAT is again
// what the PACS sent and validation accepted. The upload stopped before that file was complete.
Outcome Pipeline::changed_since_validation(const store::Item& it, const xnat::StudyFileChanged& e) {
  std::error_code ec;
  std::filesystem::remove(e.path, ec);
  forget_validated(spool_dir(it.id));
  spdlog::error("push: {}; the file is fetched from the PACS again", e.what());
  store::ItemPatch p;
  p.last_error = std::string("XNAT: ") + e.what();
  return Outcome::retry(std::string(e.what()) + "; removed, to be fetched from the PACS again", p)
      .to(ItemState::Queued);
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
  // An answer that cannot be read says nothing about the study: wait for XNAT to answer
  // properly, without using attempts (the next push first asks what XNAT holds).
  if (e.kind == K::Unreadable) {
    p.wait_reason = reason;
    return Outcome::wait(reason, p);
  }
  if (e.transient()) return Outcome::retry(reason, p);
  return Outcome::failed(reason, false, p);
}

}  // namespace p2x::pipeline

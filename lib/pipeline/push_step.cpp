// pipeline/push_step: the push step (see push_step.hpp).
#include "pipeline/push_step.hpp"

#include <filesystem>
#include <set>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include "pipeline/holding.hpp"
#include "pipeline/options.hpp"
#include "pipeline/project_check.hpp"
#include "pipeline/spool.hpp"
#include "pipeline/steps.hpp"
#include "pipeline/xnat_outcome.hpp"
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
    return "session " + it.session + " already exists in project " + project + " under subject " +
           existing.subject_label + ", not " + it.subject;
  }
  return {};
}

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
PushStep::PushStep(xnat::IArchive& archive, const Spool& spool, ProjectCheck& project,
                   const store::Store& store)
    : archive_(archive), spool_(spool), project_(project), store_(store) {}

Outcome PushStep::run(const Claim& claim) {
  const store::Item& it = claim.item();
  std::optional<std::vector<validate::ValidFile>> validated;
  try {
    validated = spool_.validated(it.id);
  } catch (const std::exception& e) {
    spdlog::warn("push: {}; validating the study again", e.what());
  }
  if (!validated || validated->empty())
    return Outcome::retry("no validated file list for this study; validating it again")
        .to(ItemState::Retrieved)
        .without_attempt();
  domain::Destination destination = domain::Destination::Archive;
  Outcome outcome;
  try {
    if (auto held = project_.ready(claim, &destination)) return *held;
    outcome = push(claim, *validated, destination);
  } catch (const PermanentError& e) {  // the job's options cannot be used
    return Outcome::failed(e.what(), false);
  }
  // Decided by this job's first push: recorded with this outcome (once; never changed).
  if (!claim.job().destination) outcome.patch.job_destination = destination;
  return outcome;
}

Outcome PushStep::push(const Claim& claim, const std::vector<validate::ValidFile>& validated,
                       domain::Destination destination) {
  const store::Item& it = claim.item();
  const store::Job& job = claim.job();
  try {
    const JobOptions& opt = claim.options();
    const bool prearchive = destination == domain::Destination::Prearchive;
    const auto series = store_.series(it.id);
    xnat::Upload up{job.project, it.subject, it.session, {}, opt.append, false, prearchive};
    const std::set<std::string>* only = nullptr;
    Holding h;
    // Idempotence: never upload a study twice into the same session.
    if (const auto existing = holding_of(archive_, job, it, prearchive)) {
      const std::string conflict =
          prearchive ? std::string() : conflict_with(*existing, it, job.project);
      if (!conflict.empty()) return Outcome::failed("XNAT: " + conflict, false);
      h = compare(*existing, series);
      if (h.complete) {
        store::ItemPatch p;
        p.pushed = h.files;
        return Outcome::done(ItemState::Pushed, "XNAT already holds this study; not uploaded again",
                             p);
      }
      up.append = !prearchive || opt.append;  // the prearchive reuses its entry either way
      if (!existing->scans.empty()) {
        only = &h.incomplete;
        up.overwrite_files = true;
      }
    }
    up.files = files_to_send(spool_.item_dir(it.id), validated, only);
    const std::string where = archive_.upload(up);
    spdlog::info("pushed {} instance(s) to {}", up.files.size(), where);
    store::ItemPatch p;
    p.pushed = it.received;
    p.last_error = std::string();
    const std::string what = only ? std::to_string(up.files.size()) + " file(s) of the " +
                                        std::to_string(h.incomplete.size()) +
                                        " series XNAT lacked files of, "
                                  : std::string();
    return Outcome::done(ItemState::Pushed, "uploaded " + what + "to " + where, p);
  } catch (const xnat::StudyFileChanged& e) {
    return changed_since_validation(it, e);
  } catch (const xnat::XnatError& e) {
    const std::string object = e.transient() ? std::string() : refused_object(e.what(), validated);
    if (object.empty()) return outcome_of(e, archive_, job.project);
    return outcome_of(xnat::XnatError(e.kind, e.http_status, e.what() + object), archive_,
                      job.project);
  }
}

// A spool file is no longer the one validation accepted (written to since, on purpose or by a
// fault): it is removed and the study goes back to be retrieved, so what reaches XNAT is again
// what the PACS sent and validation accepted. The upload stopped before that file was complete.
Outcome PushStep::changed_since_validation(const store::Item& it, const xnat::StudyFileChanged& e) {
  spool_.remove_file(e.path);
  spool_.forget_validated(it.id);
  spdlog::error("push: {}; the file is fetched from the PACS again", e.what());
  store::ItemPatch p;
  p.last_error = std::string("XNAT: ") + e.what();
  return Outcome::retry(std::string(e.what()) + "; removed, to be fetched from the PACS again", p)
      .to(ItemState::Queued);
}

}  // namespace p2x::pipeline

// The validation, push and verification stages.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include <spdlog/spdlog.h>

#include "pacs/pacs.hpp"
#include "pipeline/options.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/steps.hpp"
#include "validate/validate.hpp"
#include "xnat/xnat.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;
using store::ItemState;

namespace {

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Per-series comparison of what XNAT holds with what the PACS reported.
struct Holding {
  bool complete = true;
  std::int64_t files = 0;
  std::string missing;  // readable
};

Holding compare(const xnat::SessionInfo& s, const std::vector<store::Series>& series) {
  Holding h;
  std::map<std::string, std::int64_t> by_uid;
  for (const auto& scan : s.scans) by_uid[scan.series_uid] += scan.files;
  for (const auto& sr : series) {
    std::int64_t n = by_uid.count(sr.series_uid) ? by_uid[sr.series_uid] : 0;
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

}  // namespace

bool Pipeline::validate_once() {
  auto claimed = store_.claim(ItemState::Retrieved, ItemState::Validating, now_s());
  if (!claimed) return false;
  store::Item it = *claimed;
  log::ScopedFields scope(fields_of(it));
  try {
    std::vector<validate::ExpectedSeries> expected;
    auto series = store_.series(it.id);
    for (const auto& s : series) expected.push_back({s.series_uid, s.description, s.expected});
    validate::Report r = validate::check_study(spool_dir(it.id), it.study_uid, expected);
    for (const auto& s : r.series) store_.set_series_received(it.id, s.series_uid, s.received);
    std::error_code ec;
    for (const auto& bad : r.bad_files) fs::remove(bad, ec);
    store::ItemPatch p;
    p.received = r.files;
    p.bytes = r.bytes;
    if (r.complete) {
      p.wait_reason = std::string();
      store_.transition(it.id, ItemState::Validating, ItemState::Validated, r.summary(), p);
      wake();
      return true;
    }
    int attempts = it.attempts + 1;
    p.attempts = attempts;
    std::string reason = "incomplete: " + r.summary();
    p.last_error = reason;
    if (attempts >= cfg_.limits.max_attempts) {
      p.last_error = reason + " (after " + std::to_string(attempts) + " attempts)";
      p.retryable = true;
      spdlog::error("failed validation: {}", *p.last_error);
      store_.transition(it.id, ItemState::Validating, ItemState::Failed, *p.last_error, p);
      store_.refresh_job_state(it.job_id);
    } else {
      int delay = backoff_seconds(attempts, cfg_.limits.backoff_initial_s, cfg_.limits.backoff_max_s,
                                  seed_++ * 2654435761u);
      p.next_attempt_at = now_s() + delay;
      p.wait_reason = "retrieving what is missing in " + std::to_string(delay) + " s: " + r.summary();
      spdlog::warn("{}; retrieving the missing part in {} s", reason, delay);
      store_.transition(it.id, ItemState::Validating, ItemState::Queued, reason, p);
    }
  } catch (const std::exception& e) {
    spdlog::error("validation error: {}", e.what());
    store_.transition(it.id, ItemState::Validating, ItemState::Retrieved, e.what());
  }
  return true;
}

bool Pipeline::push_once() {
  auto claimed = store_.claim(ItemState::Validated, ItemState::Pushing, now_s());
  if (!claimed) return false;
  store::Item it = *claimed;
  auto job = store_.job(it.job_id);
  if (!job) return true;
  log::ScopedFields scope(fields_of(it, job->pacs, job->project));
  JobOptions opt = parse_job_options(job->options_json);
  const std::string dir = spool_dir(it.id);
  try {
    auto series = store_.series(it.id);
    // Idempotence: never upload a study twice into the same session.
    auto existing = xnat_.session(job->project, it.session);
    bool append = opt.append;
    if (existing) {
      if (!existing->study_uid.empty() && existing->study_uid != it.study_uid) {
        throw xnat::XnatError(xnat::ErrorKind::Conflict, 409,
                              "session " + it.session + " already exists in project " +
                                  job->project + " for another study (" + existing->study_uid +
                                  "); choose another session label");
      }
      if (!existing->subject_label.empty() && !iequals(existing->subject_label, it.subject)) {
        throw xnat::XnatError(xnat::ErrorKind::Conflict, 409,
                              "session " + it.session + " already exists in project " +
                                  job->project + " under subject " + existing->subject_label +
                                  ", not " + it.subject);
      }
      Holding h = compare(*existing, series);
      if (h.complete) {
        store::ItemPatch p;
        p.pushed = h.files;
        store_.transition(it.id, ItemState::Pushing, ItemState::Pushed,
                          "XNAT already holds this study; not uploaded again", p);
        verify_once_item(it.id);
        return true;
      }
      append = true;  // a partial earlier upload of this very study: merge, never duplicate
    }
    std::string uri;
    if (cfg_.xnat.push == config::PushMethod::CStore) {
      // XNAT's DICOM receiver routes by the comment "Project: P Subject: S Session: E" and
      // merges instances it already holds, so a re-send after an unknown outcome is safe.
      pacs::Peer target;
      target.ae_title = cfg_.xnat.dicom_ae;
      target.host = cfg_.xnat.dicom_host;
      target.port = cfg_.xnat.dicom_port;
      target.our_ae = cfg_.ae_title;
      const std::string routing = xnat::routing_comment(job->project, it.subject, it.session);
      pacs::SendResult r;
      try {
        r = pacs::Client(target).send_study(dir, {routing});
      } catch (const pacs::PacsError& e) {
        throw xnat::XnatError(e.transient() ? xnat::ErrorKind::Transient : xnat::ErrorKind::BadRequest, 0,
                              e.what());
      }
      if (r.failed > 0) {
        std::string why;
        for (std::size_t i = 0; i < r.failures.size() && i < 3; ++i) why += (i ? "; " : "") + r.failures[i];
        throw xnat::XnatError(xnat::ErrorKind::BadRequest, 0,
                              "XNAT's DICOM receiver refused " + std::to_string(r.failed) + " of " +
                                  std::to_string(r.failed + r.sent) + " instance(s): " + why);
      }
      uri = "DICOM receiver " + target.ae_title + "@" + target.host + ":" + std::to_string(target.port);
    } else {
      uri = xnat_.import_study(job->project, it.subject, it.session, dir, append);
    }
    store::ItemPatch p;
    p.pushed = it.received;
    p.last_error = std::string();
    store_.transition(it.id, ItemState::Pushing, ItemState::Pushed, "uploaded to " + uri, p);
    spdlog::info("pushed {} instance(s) to {}", it.received, uri);
    last_progress_ = now_s();
    verify_once_item(it.id);
  } catch (const xnat::XnatError& e) {
    store::ItemPatch p;
    p.last_error = std::string("XNAT: ") + e.what();
    using K = xnat::ErrorKind;
    if (e.kind == K::Auth || e.kind == K::Tls || e.kind == K::Forbidden ||
        (e.kind == K::NotFound && !xnat_project_exists(job->project))) {
      // Affects every item of the job: fail the job once, clearly.
      std::string reason = std::string("XNAT: ") + e.what();
      spdlog::error("job {} failed: {}", job->id, reason);
      store_.transition(it.id, ItemState::Pushing, ItemState::Failed, reason, p);
      store_.fail_job(job->id, reason);
      return true;
    }
    if (e.transient()) {
      int attempts = it.attempts + 1;
      p.attempts = attempts;
      if (attempts >= cfg_.limits.max_attempts) {
        p.retryable = true;
        p.last_error = *p.last_error + " (gave up after " + std::to_string(attempts) + " attempts)";
        store_.transition(it.id, ItemState::Pushing, ItemState::Failed, *p.last_error, p);
        store_.refresh_job_state(it.job_id);
      } else {
        int delay = backoff_seconds(attempts, cfg_.limits.backoff_initial_s,
                                    cfg_.limits.backoff_max_s, seed_++ * 2654435761u);
        p.next_attempt_at = now_s() + delay;
        p.wait_reason = "push retry in " + std::to_string(delay) + " s after: " + e.what();
        spdlog::warn("push attempt {} failed, retrying in {} s: {}", attempts, delay, e.what());
        store_.transition(it.id, ItemState::Pushing, ItemState::Validated, e.what(), p);
      }
      return true;
    }
    p.retryable = false;
    spdlog::error("push failed: {}", e.what());
    store_.transition(it.id, ItemState::Pushing, ItemState::Failed, *p.last_error, p);
    store_.refresh_job_state(it.job_id);
  } catch (const std::exception& e) {
    spdlog::error("push error: {}", e.what());
    store::ItemPatch p;
    p.last_error = e.what();
    p.next_attempt_at = now_s() + cfg_.limits.backoff_initial_s;
    store_.transition(it.id, ItemState::Pushing, ItemState::Validated, e.what(), p);
  }
  return true;
}

bool Pipeline::xnat_project_exists(const std::string& project) {
  try {
    return xnat_.project_exists(project);
  } catch (const std::exception&) {
    return true;  // unknown: do not fail the whole job on a guess
  }
}

bool Pipeline::verify_once() {
  auto due = store_.due(ItemState::Pushed, now_s(), 1);
  if (due.empty()) return false;
  verify_once_item(due.front().id);
  return true;
}

void Pipeline::verify_once_item(std::int64_t item_id) {
  auto cur = store_.item(item_id);
  if (!cur || cur->state != ItemState::Pushed) return;
  store::Item it = *cur;
  auto job = store_.job(it.job_id);
  if (!job) return;
  log::ScopedFields scope(fields_of(it, job->pacs, job->project));
  try {
    auto series = store_.series(it.id);
    auto session = xnat_.session(job->project, it.session);
    Holding h;
    if (session) {
      h = compare(*session, series);
    } else {
      h.complete = false;
      h.missing = "session " + it.session + " not found in project " + job->project;
    }
    store::ItemPatch p;
    p.verified = h.files;
    if (h.complete) {
      // XNAT holds everything: the spool copy goes first, so no one sees a verified item (or a
      // finished job) with files still in the spool. A crash in between only repeats the check.
      std::error_code ec;
      fs::remove_all(spool_dir(it.id), ec);
      store_.transition(it.id, ItemState::Pushed, ItemState::Verified,
                        "verified in XNAT: " + std::to_string(h.files) + " files in " +
                            std::to_string(series.size()) + " series",
                        p);
      spdlog::info("verified {} file(s) in XNAT; spool removed", h.files);
      store_.refresh_job_state(it.job_id);
      return;
    }
    // XNAT builds a session from C-STOREd instances only after its idle interval (5 minutes by
    // default), so verification of a DICOM push waits much longer than that of a REST import.
    const bool cstore = cfg_.xnat.push == config::PushMethod::CStore;
    const int max_tries = cstore ? 40 : 4;
    int tries = 0;
    {
      std::lock_guard<std::mutex> lock(verify_mu_);
      tries = ++verify_tries_[it.id];
      if (tries >= max_tries) verify_tries_.erase(it.id);
    }
    if (tries >= max_tries) {
      p.last_error = "verification: " + h.missing;
      p.attempts = it.attempts + 1;
      spdlog::warn("verification failed ({}); pushing again", h.missing);
      if (p.attempts >= cfg_.limits.max_attempts) {
        store_.transition(it.id, ItemState::Pushed, ItemState::Failed, *p.last_error, p);
        store_.refresh_job_state(it.job_id);
      } else {
        store_.transition(it.id, ItemState::Pushed, ItemState::Validated, *p.last_error, p);
      }
      return;
    }
    p.next_attempt_at = now_s() + (cstore ? 30 : 2 * tries);
    p.wait_reason = "waiting for XNAT to show the upload: " + h.missing;
    store_.update(it.id, p);
  } catch (const std::exception& e) {
    spdlog::warn("verification query failed: {}", e.what());
    store::ItemPatch p;
    p.next_attempt_at = now_s() + cfg_.limits.backoff_initial_s;
    p.wait_reason = std::string("verification retry after: ") + e.what();
    store_.update(it.id, p);
  }
}

}  // namespace p2x::pipeline

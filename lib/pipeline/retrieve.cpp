// The retrieval stage: C-FIND the row's study, record expected series, then C-MOVE/C-GET
// whatever the spool does not hold yet (whole study, missing series, or missing instances).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "intake/intake.hpp"
#include "pacs/pacs.hpp"
#include "pipeline/options.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/steps.hpp"
#include "validate/validate.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;
using store::ItemState;

namespace {

bool has_modality(const pacs::StudyMatch& m, const std::string& modality) {
  if (modality.empty() || m.modalities.empty()) return true;
  for (const auto& x : m.modalities) {
    if (intake::sanitize_label(x) == intake::sanitize_label(modality)) return true;
  }
  return false;
}

std::string join_uids(const std::vector<pacs::StudyMatch>& m) {
  std::string s;
  for (std::size_t i = 0; i < m.size() && i < 5; ++i) {
    s += (i ? ", " : "") + m[i].study_uid + " (" + m[i].study_date + ")";
  }
  if (m.size() > 5) s += ", ...";
  return s;
}

}  // namespace

Found find_study(pacs::Session& session, const store::Item& it, const JobOptions& opt,
                 const std::string& pacs_name, const std::vector<std::string>& skip_sop_classes) {
  pacs::Query q;
  if (it.kind == "study_uid") {
    q.study_uid = it.study_uid;
  } else if (it.kind == "accession") {
    q.accession = it.accession;
  } else {
    q.patient_id = it.patient_id;
    q.study_date = it.study_date;
  }
  std::string modality = !it.modality.empty() ? it.modality : opt.modality;
  std::vector<pacs::StudyMatch> matches = session.find_studies(q);
  if (!it.study_date.empty() && it.kind != "patient_date") {
    std::vector<pacs::StudyMatch> same_date;
    for (auto& m : matches) if (m.study_date == it.study_date) same_date.push_back(m);
    if (!same_date.empty()) matches = same_date;
  }
  if (matches.size() > 1 && !modality.empty()) {
    std::vector<pacs::StudyMatch> with;
    for (auto& m : matches) if (has_modality(m, modality)) with.push_back(m);
    if (!with.empty()) matches = with;
  }
  if (matches.empty()) {
    throw PermanentError(describe_row(it) + " not found on PACS " + pacs_name);
  }
  if (matches.size() > 1) {
    throw PermanentError(describe_row(it) + " matches " + std::to_string(matches.size()) +
                         " studies on PACS " + pacs_name + ": " + join_uids(matches) +
                         "; add a Modality column or use Study Instance UID rows to choose one");
  }
  Found f;
  f.study = matches.front();
  for (const auto& s : session.find_series(f.study.study_uid)) {
    bool keep = (modality.empty() || s.modality.empty() ||
                 intake::sanitize_label(s.modality) == intake::sanitize_label(modality)) &&
                (opt.series_description.empty() ||
                 glob_match(opt.series_description, s.description));
    if (!keep || s.expected == 0) {
      ++f.skipped_series;
      continue;
    }
    std::int64_t expected = s.expected < 0 ? 0 : s.expected;
    if (!skip_sop_classes.empty()) {
      // Objects that are not wanted (presentation states, PACS-private objects, ...) are
      // neither expected nor retrieved, but counted and reported.
      std::vector<std::string> wanted;
      int skipped = 0;
      for (const auto& inst : session.find_instances(f.study.study_uid, s.series_uid)) {
        if (std::find(skip_sop_classes.begin(), skip_sop_classes.end(), inst.sop_class) !=
            skip_sop_classes.end()) {
          ++skipped;
        } else {
          wanted.push_back(inst.sop_uid);
        }
      }
      f.skipped_objects += skipped;
      if (wanted.empty()) {
        ++f.skipped_series;
        continue;
      }
      if (skipped > 0) f.only_sops[s.series_uid] = wanted;
      expected = static_cast<std::int64_t>(wanted.size());
    }
    store::Series row;
    row.item_id = it.id;
    row.series_uid = s.series_uid;
    row.modality = s.modality;
    row.description = s.description;
    row.number = s.number;
    row.expected = expected;
    f.expected += row.expected;
    f.series.push_back(row);
  }
  if (f.series.empty()) {
    throw PermanentError(describe_row(it) + " (study " + f.study.study_uid + ") has no series" +
                         (modality.empty() && opt.series_description.empty()
                              ? std::string(" on PACS ") + pacs_name
                              : " matching the job's filters"));
  }
  return f;
}

namespace {

// SOP instance UIDs present in the spool (files are named <SOPInstanceUID>.dcm).
std::set<std::string> present_sops(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".dcm" && e.file_size(ec) > 0) out.insert(e.path().stem().string());
  }
  return out;
}

}  // namespace

bool Pipeline::retrieve_once(const std::string& pacs_name) {
  const std::int64_t now = now_s();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!disk_wait_.empty()) return false;
  }
  if (!gate_.try_acquire(pacs_name, now)) return false;
  SlotLease slot(gate_, pacs_name);
  auto claimed = store_.claim(ItemState::Queued, ItemState::Querying, now, pacs_name);
  if (!claimed) return false;
  store::Item it = *claimed;
  auto job = store_.job(it.job_id);
  const config::PacsNode* node = cfg_.find_pacs(pacs_name);
  if (!job || !node) return true;
  log::ScopedFields scope(fields_of(it, pacs_name, job->project));
  JobOptions opt = parse_job_options(job->options_json);
  pacs::Client client(peer_for(*node, cfg_.ae_title));
  // The row's C-FINDs and its C-MOVEs or C-GETs share one association.
  pacs::Session pacs_session(client, node->retrieve == config::RetrieveMethod::Get);
  ItemState state = ItemState::Querying;
  const std::string dir = spool_dir(it.id);

  using Ms = std::chrono::duration<double, std::milli>;
  auto mark = std::chrono::steady_clock::now();
  auto lap = [&mark] {
    auto t = std::chrono::steady_clock::now();
    double ms = Ms(t - mark).count();
    mark = t;
    return ms;
  };
  double t_find = 0, t_record_found = 0, t_move = 0;
  try {
    // 1. Find the study and what it should contain.
    Found found = find_study(pacs_session, it, opt, pacs_name, node->skip_sop_classes);
    t_find = lap();
    gate_.on_success(pacs_name);
    store::ItemPatch patch;
    patch.study_uid = found.study.study_uid;
    patch.pacs_patient_id = found.study.patient_id;
    patch.expected = found.expected;
    patch.wait_reason = std::string();
    std::string subject = it.subject, session = it.session;
    if (subject.empty()) subject = intake::sanitize_label(found.study.patient_id);
    if (session.empty()) session = subject + "_" + found.study.study_date;
    patch.subject = subject;
    patch.session = session;
    // Label consistency across the job: one PatientID <-> one subject label.
    std::string conflict = store_.record_patient(it.id, found.study.patient_id, subject);
    if (!conflict.empty()) {
      if (opt.strict) throw PermanentError(conflict + " (strict mode)");
      spdlog::warn("label inconsistency: {}", conflict);
    }
    store_.set_series(it.id, found.series);
    std::string detail = "found study " + found.study.study_uid + " (" +
                         std::to_string(found.series.size()) + " series, " +
                         std::to_string(found.expected) + " instances";
    if (found.skipped_series) detail += ", " + std::to_string(found.skipped_series) + " series skipped by filters";
    if (found.skipped_objects) {
      detail += ", " + std::to_string(found.skipped_objects) +
                " object(s) skipped by the PACS's skip_sop_classes";
    }
    detail += ")";
    if (!conflict.empty()) detail += "; warning: " + conflict;
    // C-FIND reports no sizes: estimate at 0.5 MB per instance (a 512x512 16-bit slice) and
    // flag studies far above the configured limit before any data moves.
    const std::int64_t estimate_mb = found.expected / 2;
    if (cfg_.limits.study_max_mb > 0 && estimate_mb > cfg_.limits.study_max_mb) {
      std::string flag = "study of " + std::to_string(found.expected) + " instances, estimated ~" +
                         std::to_string(estimate_mb) + " MB, exceeds limits.study_max_mb (" +
                         std::to_string(cfg_.limits.study_max_mb) + " MB)";
      spdlog::warn("{}", flag);
      detail += "; warning: " + flag;
    }
    if (!store_.transition(it.id, ItemState::Querying, ItemState::Retrieving, detail, patch)) {
      return true;  // cancelled meanwhile
    }
    state = ItemState::Retrieving;
    it.study_uid = found.study.study_uid;
    t_record_found = lap();

    // 2. Retrieve what the spool does not hold yet.
    fs::create_directories(dir);
    std::map<std::string, std::int64_t> have = validate::count_by_series(dir);
    std::vector<const store::Series*> missing_series;
    bool nothing_yet = true;
    for (const auto& s : found.series) {
      auto h = have.find(s.series_uid);
      std::int64_t n = h == have.end() ? 0 : h->second;
      if (n > 0) nothing_yet = false;
      if (n < s.expected) missing_series.push_back(&s);
    }
    std::vector<pacs::Selection> selections;
    if (!missing_series.empty() && nothing_yet && found.skipped_series == 0 && found.only_sops.empty()) {
      selections.push_back({it.study_uid, {}, {}});  // the whole study in one association
    } else {
      std::set<std::string> present = present_sops(dir);
      for (const auto* s : missing_series) {
        auto h = have.find(s->series_uid);
        auto only = found.only_sops.find(s->series_uid);
        if (only != found.only_sops.end()) {
          pacs::Selection sel{it.study_uid, {s->series_uid}, {}};
          for (const auto& sop : only->second) if (!present.count(sop)) sel.sop_uids.push_back(sop);
          if (!sel.sop_uids.empty()) selections.push_back(std::move(sel));
          continue;
        }
        if (h == have.end() || h->second == 0) {
          selections.push_back({it.study_uid, {s->series_uid}, {}});
          continue;
        }
        pacs::Selection sel{it.study_uid, {s->series_uid}, {}};
        for (const auto& inst : pacs_session.find_instances(it.study_uid, s->series_uid)) {
          if (!present.count(inst.sop_uid)) sel.sop_uids.push_back(inst.sop_uid);
        }
        if (!sel.sop_uids.empty()) selections.push_back(std::move(sel));
      }
    }

    std::int64_t requested = 0;
    for (const auto* s : missing_series) requested += s->expected - (have.count(s->series_uid) ? have[s->series_uid] : 0);
    int reported_failed = 0, delivered = 0, completed = 0;
    std::string status_text;
    const auto idle = std::chrono::seconds(std::max(1, node->timeouts.idle_s));
    std::unique_ptr<pacs::StorageScp::Route> route;
    if (node->retrieve == config::RetrieveMethod::Move && !selections.empty()) {
      route = scp_.expect(it.study_uid, dir);
    }
    for (const auto& sel : selections) {
      auto last_progress = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
      auto last_poll = std::chrono::steady_clock::now();
      bool cancelled = false;
      auto on_progress = [&](const pacs::Progress&) {
        *last_progress = std::chrono::steady_clock::now();
        last_progress_ = now_s();
      };
      auto should_abort = [&]() {
        auto t = std::chrono::steady_clock::now();
        auto last = *last_progress;
        if (route && route->last_activity() > last) last = route->last_activity();
        if (t - last > idle) return true;
        if (stopping() && now_s() > drain_deadline_.load()) return true;
        if (t - last_poll > std::chrono::seconds(1)) {
          last_poll = t;
          auto cur = store_.item(it.id);
          auto j = store_.job(it.job_id);
          if (!cur || cur->state != ItemState::Retrieving || !j || j->paused) {
            cancelled = true;
            return true;
          }
        }
        return false;
      };
      pacs::RetrieveResult res;
      try {
        res = node->retrieve == config::RetrieveMethod::Move
                  ? pacs_session.move(sel, on_progress, should_abort)
                  : pacs_session.get(sel, dir, on_progress, should_abort);
      } catch (const pacs::PacsError& e) {
        if (e.kind() == pacs::ErrorKind::Aborted && cancelled) {
          auto cur = store_.item(it.id);
          if (cur && cur->state == ItemState::Retrieving) {
            // Paused: back to the queue, keeping what arrived.
            store_.transition(it.id, ItemState::Retrieving, ItemState::Queued, "job paused during retrieval");
          }
          return true;
        }
        if (e.kind() == pacs::ErrorKind::Aborted) {
          throw pacs::PacsError(pacs::ErrorKind::Timeout,
                                stopping() ? "retrieval interrupted by shutdown"
                                           : "retrieval made no progress for " +
                                                 std::to_string(node->timeouts.idle_s) + " s; aborted",
                                true);
        }
        throw;
      }
      gate_.on_success(pacs_name);
      reported_failed += res.failed;
      completed += res.completed;
      if (!route) delivered += res.received;
      if (!res.status_text.empty()) status_text = res.status_text;
    }
    pacs_session.close();
    t_move = lap();
    // The PACS is done with us: its association slot goes to the next study while this one's
    // files are counted and recorded. They are not fsynced: see pipeline/spool.hpp.
    slot.release();
    wake();
    if (route) delivered = route->received();
    // A PACS that reports failed sub-operations has told us what went wrong: validation names
    // what is missing. One that claims success but delivered nothing is misconfigured.
    if (requested > 0 && delivered == 0 && reported_failed == 0) {
      throw pacs::PacsError(pacs::ErrorKind::Failed,
                            "PACS " + pacs_name + " reported " + std::to_string(completed) +
                                " instance(s) sent but none arrived" +
                                (node->retrieve == config::RetrieveMethod::Move
                                     ? " (does the PACS know AE " + cfg_.ae_title +
                                           " as a move destination on port " +
                                           std::to_string(cfg_.storage_port) + "?)"
                                     : std::string()),
                            true);
    }
    // Files are counted, not parsed: validation parses each one next and corrects the count.
    std::int64_t files = 0, bytes = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (!e.is_regular_file(ec)) continue;
      const auto size = static_cast<std::int64_t>(e.file_size(ec));
      bytes += size;
      if (e.path().extension() == ".dcm" && size > 0) ++files;
    }
    store::ItemPatch done;
    done.received = files;
    done.bytes = bytes;
    std::string detail2 = "received " + std::to_string(delivered) + " instance(s), spool holds " +
                          std::to_string(files) + " of " + std::to_string(found.expected);
    if (reported_failed > 0) {
      detail2 += "; PACS reported " + std::to_string(reported_failed) + " failed sub-operation(s)" +
                 (status_text.empty() ? "" : " (" + status_text + ")");
    }
    const double t_count = lap();
    store_.transition(it.id, ItemState::Retrieving, ItemState::Retrieved, detail2, done);
    spdlog::debug("retrieval timings (ms): find {:.1f}, record {:.1f}, move {:.1f}, count {:.1f}, "
                  "record {:.1f}", t_find, t_record_found, t_move, t_count, lap());
    last_progress_ = now_s();
    wake();
  } catch (const PermanentError& e) {
    store::ItemPatch p;
    p.last_error = e.what();
    p.retryable = false;
    spdlog::error("failed: {}", e.what());
    store_.transition(it.id, state, ItemState::Failed, e.what(), p);
    store_.refresh_job_state(it.job_id);
  } catch (const pacs::PacsError& e) {
    const bool connect = e.kind() == pacs::ErrorKind::Connect ||
                         (e.kind() == pacs::ErrorKind::Rejected && e.transient());
    store::ItemPatch p;
    p.last_error = e.what();
    if (connect) {
      bool opened = gate_.on_connect_failure(pacs_name, e.what(), now_s());
      if (opened) spdlog::error("PACS {} unreachable: circuit breaker open ({})", pacs_name, e.what());
      // Connection failures do not use up attempts: the items wait for the PACS.
      int delay = backoff_seconds(std::min(it.attempts + 1, 6), cfg_.limits.backoff_initial_s,
                                  cfg_.limits.backoff_max_s, seed_++ * 2654435761u);
      p.next_attempt_at = now_s() + delay;
      p.wait_reason = "PACS " + pacs_name + " unreachable: " + e.what();
      store_.transition(it.id, state, ItemState::Queued, std::string("waiting: ") + e.what(), p);
      return true;
    }
    int attempts = it.attempts + 1;
    p.attempts = attempts;
    if (!e.transient() || attempts >= cfg_.limits.max_attempts) {
      std::string reason = e.transient() ? std::string(e.what()) + " (gave up after " +
                                               std::to_string(attempts) + " attempts)"
                                         : std::string(e.what());
      p.last_error = reason;
      p.retryable = true;
      spdlog::error("failed: {}", reason);
      store_.transition(it.id, state, ItemState::Failed, reason, p);
      store_.refresh_job_state(it.job_id);
    } else {
      int delay = backoff_seconds(attempts, cfg_.limits.backoff_initial_s,
                                  cfg_.limits.backoff_max_s, seed_++ * 2654435761u);
      p.next_attempt_at = now_s() + delay;
      p.wait_reason = std::string("retrying in ") + std::to_string(delay) + " s after: " + e.what();
      spdlog::warn("attempt {} failed, retrying in {} s: {}", attempts, delay, e.what());
      store_.transition(it.id, state, ItemState::Queued, e.what(), p);
    }
  } catch (const std::exception& e) {
    // Unexpected (disk full, store error): keep the item, retry later.
    spdlog::error("retrieval error: {}", e.what());
    store::ItemPatch p;
    p.last_error = e.what();
    p.attempts = it.attempts + 1;
    p.next_attempt_at = now_s() + cfg_.limits.backoff_initial_s;
    try {
      store_.transition(it.id, state,
                        p.attempts >= cfg_.limits.max_attempts ? ItemState::Failed : ItemState::Queued,
                        e.what(), p);
    } catch (const std::exception&) {
    }
  }
  return true;
}

}  // namespace p2x::pipeline

// pipeline/find: the C-FINDs of one row — which study it means, and what that study should hold
// after the job's filters (series, expected instances, SOP classes the PACS node skips).
#include <algorithm>

#include "pacs/retrieval.hpp"
#include "pipeline/options.hpp"
#include "pipeline/steps.hpp"
#include "text/text.hpp"

namespace p2x::pipeline {

namespace {

bool same_modality(const std::string& a, const std::string& b) {
  return text::sanitize_label(a) == text::sanitize_label(b);
}

bool has_modality(const pacs::StudyMatch& m, const std::string& modality) {
  if (modality.empty() || m.modalities.empty()) return true;
  return std::any_of(m.modalities.begin(), m.modalities.end(),
                     [&](const std::string& x) { return same_modality(x, modality); });
}

std::string join_uids(const std::vector<pacs::StudyMatch>& m) {
  std::string s;
  for (std::size_t i = 0; i < m.size() && i < 5; ++i) {
    s += (i ? ", " : "") + m[i].study_uid + " (" + m[i].study_date + ")";
  }
  if (m.size() > 5) s += ", ...";
  return s;
}

pacs::Query query_of(const store::Item& it) {
  pacs::Query q;
  if (it.kind == "study_uid") {
    q.study_uid = it.study_uid;
  } else if (it.kind == "accession") {
    q.accession = it.accession;
  } else {
    q.patient_id = it.patient_id;
    q.study_date = it.study_date;
  }
  return q;
}

// Narrows the matches by the row's date and modality; throws unless exactly one is left.
pacs::StudyMatch one_study(std::vector<pacs::StudyMatch> matches, const store::Item& it,
                           const std::string& modality, const std::string& pacs_name) {
  auto narrow = [&matches](auto keep) {
    std::vector<pacs::StudyMatch> kept;
    std::copy_if(matches.begin(), matches.end(), std::back_inserter(kept), keep);
    if (!kept.empty()) matches = std::move(kept);
  };
  if (!it.study_date.empty() && it.kind != "patient_date") {
    narrow([&](const pacs::StudyMatch& m) { return m.study_date == it.study_date; });
  }
  if (matches.size() > 1 && !modality.empty()) {
    narrow([&](const pacs::StudyMatch& m) { return has_modality(m, modality); });
  }
  if (matches.empty()) throw PermanentError(describe_row(it) + " not found on PACS " + pacs_name);
  if (matches.size() > 1) {
    throw PermanentError(describe_row(it) + " matches " + std::to_string(matches.size()) +
                         " studies on PACS " + pacs_name + ": " + join_uids(matches) +
                         "; add a Modality column or use Study Instance UID rows to choose one");
  }
  return matches.front();
}

// Instances of the series that are wanted (not of a skipped SOP class); counts the others.
std::vector<std::string> wanted_instances(pacs::IRetrieval& pacs, const std::string& study_uid,
                                          const std::string& series_uid,
                                          const std::vector<std::string>& skip, int& skipped) {
  std::vector<std::string> wanted;
  for (const auto& inst : pacs.find_instances(study_uid, series_uid)) {
    if (std::find(skip.begin(), skip.end(), inst.sop_class) != skip.end()) {
      ++skipped;
    } else {
      wanted.push_back(inst.sop_uid);
    }
  }
  return wanted;
}

// Adds one series to `f` if the job's filters keep it.
void add_series(Found& f, pacs::IRetrieval& pacs, const pacs::SeriesInfo& s,
                const store::Item& it, const std::string& modality, const JobOptions& opt,
                const std::vector<std::string>& skip) {
  const bool keep = (modality.empty() || s.modality.empty() || same_modality(s.modality, modality)) &&
                    (opt.series_description.empty() || glob_match(opt.series_description, s.description));
  if (!keep || s.expected == 0) {
    ++f.skipped_series;
    return;
  }
  std::int64_t expected = s.expected < 0 ? 0 : s.expected;
  if (!skip.empty()) {
    // Objects that are not wanted (presentation states, PACS-private objects, ...) are neither
    // expected nor retrieved, but counted and reported.
    int skipped = 0;
    auto wanted = wanted_instances(pacs, f.study.study_uid, s.series_uid, skip, skipped);
    f.skipped_objects += skipped;
    if (wanted.empty()) {
      ++f.skipped_series;
      return;
    }
    expected = static_cast<std::int64_t>(wanted.size());
    if (skipped > 0) f.only_sops[s.series_uid] = std::move(wanted);
  }
  store::Series row;
  row.item_id = it.id;
  row.series_uid = s.series_uid;
  row.modality = s.modality;
  row.description = s.description;
  row.number = s.number;
  row.expected = expected;
  f.expected += expected;
  f.series.push_back(row);
}

}  // namespace

Found find_study(pacs::IRetrieval& pacs, const store::Item& it, const JobOptions& opt,
                 const std::string& pacs_name, const std::vector<std::string>& skip_sop_classes) {
  const std::string modality = !it.modality.empty() ? it.modality : opt.modality;
  Found f;
  f.study = one_study(pacs.find_studies(query_of(it)), it, modality, pacs_name);
  for (const auto& s : pacs.find_series(f.study.study_uid)) {
    add_series(f, pacs, s, it, modality, opt, skip_sop_classes);
  }
  if (f.series.empty()) {
    throw PermanentError(describe_row(it) + " (study " + f.study.study_uid + ") has no series" +
                         (modality.empty() && opt.series_description.empty()
                              ? std::string(" on PACS ") + pacs_name
                              : " matching the job's filters"));
  }
  return f;
}

}  // namespace p2x::pipeline

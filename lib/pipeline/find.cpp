// pipeline/find: the C-FINDs of one row — which study it means (filtering on our side what a
// PACS that ignores matching keys returned), and what that study should hold after the job's
// filters (series, expected instances, SOP classes the PACS node skips, the SOP classes a C-GET
// must negotiate).
#include <algorithm>
#include <map>

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
  return std::any_of(m.modalities.begin(), m.modalities.end(),
                     [&](const std::string& x) { return same_modality(x, modality); });
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// "UID (date, MR\CT), ..." for messages.
std::string describe_candidates(const std::vector<pacs::StudyMatch>& m) {
  std::string s;
  for (std::size_t i = 0; i < m.size() && i < 5; ++i) {
    s += (i ? ", " : "") + m[i].study_uid + " (" + m[i].study_date;
    if (!m[i].modalities.empty()) s += ", " + join(m[i].modalities, "\\");
    s += ")";
  }
  if (m.size() > 5) s += ", ...";
  return s;
}

pacs::Query query_of(const store::Item& it) {
  pacs::Query q;
  if (it.kind == domain::RowKind::StudyUid) {
    q.study_uid = it.study_uid;
  } else if (it.kind == domain::RowKind::Accession) {
    q.accession = it.accession;
  } else {
    q.patient_id = it.patient_id;
    q.study_date = it.study_date;
  }
  return q;
}

// The modalities of a study's series, for a PACS that does not return ModalitiesInStudy.
std::vector<std::string> series_modalities(pacs::IRetrieval& pacs, const std::string& study_uid) {
  std::vector<std::string> out;
  for (const auto& s : pacs.find_series(study_uid)) {
    if (!s.modality.empty() && std::find(out.begin(), out.end(), s.modality) == out.end()) {
      out.push_back(s.modality);
    }
  }
  return out;
}

// Keeps the candidates that hold `modality` (ModalitiesInStudy as returned, else learned from
// their series); throws when none does.
void narrow_by_modality(std::vector<pacs::StudyMatch>& matches, pacs::IRetrieval& pacs,
                        const store::Item& it, const std::string& modality,
                        const std::string& pacs_name) {
  for (auto& m : matches) {
    if (m.modalities.empty()) m.modalities = series_modalities(pacs, m.study_uid);
  }
  std::vector<pacs::StudyMatch> kept;
  std::copy_if(matches.begin(), matches.end(), std::back_inserter(kept),
               [&](const pacs::StudyMatch& m) { return has_modality(m, modality); });
  if (kept.empty()) {
    throw PermanentError(describe_row(it) + ": none of the " + std::to_string(matches.size()) +
                         " studies on PACS " + pacs_name + " holds modality " + modality + ": " +
                         describe_candidates(matches));
  }
  matches = std::move(kept);
}

// Narrows the matches by the row's date and modality; throws unless exactly one is left.
pacs::StudyMatch one_study(std::vector<pacs::StudyMatch> matches, pacs::IRetrieval& pacs,
                           const store::Item& it, const std::string& modality,
                           const std::string& pacs_name) {
  // The row's date also for patient + date rows: a PACS may ignore a key (kept when none has it).
  if (!it.study_date.empty() && matches.size() > 1) {
    std::vector<pacs::StudyMatch> kept;
    std::copy_if(matches.begin(), matches.end(), std::back_inserter(kept),
                 [&](const pacs::StudyMatch& m) { return m.study_date == it.study_date; });
    if (!kept.empty()) matches = std::move(kept);
  }
  if (matches.size() > 1 && !modality.empty())
    narrow_by_modality(matches, pacs, it, modality, pacs_name);
  if (matches.empty()) throw PermanentError(describe_row(it) + " not found on PACS " + pacs_name);
  if (matches.size() > 1) {
    throw PermanentError(
        describe_row(it) + " matches " + std::to_string(matches.size()) + " studies on PACS " +
        pacs_name + ": " + describe_candidates(matches) +
        (modality.empty()
             ? "; add a Modality column or use Study Instance UID rows to choose one"
             : "; all hold modality " + modality + ": use Study Instance UID rows to choose one"));
  }
  return matches.front();
}

// The IMAGE-level C-FIND of each series of the row's study, asked at most once.
class Instances {
 public:
  Instances(pacs::IRetrieval& pacs, std::string study_uid)
      : pacs_(pacs), study_uid_(std::move(study_uid)) {}
  const std::vector<pacs::InstanceInfo>& of(const std::string& series_uid) {
    auto it = cache_.find(series_uid);
    if (it == cache_.end())
      it = cache_.emplace(series_uid, pacs_.find_instances(study_uid_, series_uid)).first;
    return it->second;
  }

 private:
  pacs::IRetrieval& pacs_;
  std::string study_uid_;
  std::map<std::string, std::vector<pacs::InstanceInfo>> cache_;
};

bool skipped(const std::vector<std::string>& skip, const std::string& sop_class) {
  return std::find(skip.begin(), skip.end(), sop_class) != skip.end();
}

// Adds one series to `f` if the job's filters keep it.
void add_series(Found& f, Instances& instances, const pacs::SeriesInfo& s, const store::Item& it,
                const std::string& modality, const JobOptions& opt,
                const std::vector<std::string>& skip) {
  const bool keep =
      (modality.empty() || s.modality.empty() || same_modality(s.modality, modality)) &&
      (opt.series_description.empty() || glob_match(opt.series_description, s.description));
  if (!keep || s.expected == 0) {
    ++f.skipped_series;
    return;
  }
  std::int64_t expected = s.expected < 0 ? 0 : s.expected;
  if (!skip.empty()) {
    // Objects that are not wanted (presentation states, PACS-private objects, ...) are neither
    // expected nor retrieved, but counted and reported.
    std::vector<std::string> wanted;
    int n_skipped = 0;
    for (const auto& inst : instances.of(s.series_uid)) {
      if (skipped(skip, inst.sop_class)) {
        ++n_skipped;
      } else {
        wanted.push_back(inst.sop_uid);
      }
    }
    f.skipped_objects += n_skipped;
    if (wanted.empty()) {
      ++f.skipped_series;
      return;
    }
    expected = static_cast<std::int64_t>(wanted.size());
    if (n_skipped > 0) f.only_sops[s.series_uid] = std::move(wanted);
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

void add_unique(std::vector<std::string>& v, const std::string& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

// The SOP classes a C-GET of the wanted instances must negotiate: the study's SOP Classes in
// Study when the PACS returns it, every series is wanted and one association can carry them
// all; else those of the wanted instances of each series (IMAGE-level C-FIND), so a class only
// a filtered-out series holds is not asked for. Left empty when a PACS reports no class for
// some instance: a C-GET then proposes its built-in list.
void learn_sop_classes(Found& f, Instances& instances, const std::vector<std::string>& skip) {
  if (!f.study.sop_classes.empty() && f.skipped_series == 0 &&
      f.study.sop_classes.size() <= pacs::kMaxGetSopClasses) {
    for (const auto& c : f.study.sop_classes) {
      if (!skipped(skip, c)) add_unique(f.sop_classes, c);
    }
    return;
  }
  for (const auto& s : f.series) {
    std::vector<std::string>& classes = f.series_sop_classes[s.series_uid];
    for (const auto& inst : instances.of(s.series_uid)) {
      if (inst.sop_class.empty()) {  // the PACS does not say (dcmqrscp): unknown
        f.sop_classes.clear();
        f.series_sop_classes.clear();
        return;
      }
      if (skipped(skip, inst.sop_class)) continue;
      add_unique(classes, inst.sop_class);
      add_unique(f.sop_classes, inst.sop_class);
    }
  }
}

}  // namespace

Found find_study(pacs::IRetrieval& pacs, const store::Item& it, const JobOptions& opt,
                 const std::string& pacs_name, const std::vector<std::string>& skip_sop_classes,
                 bool want_sop_classes) {
  const std::string modality = !it.modality.empty() ? it.modality : opt.modality;
  Found f;
  f.study = one_study(pacs.find_studies(query_of(it)), pacs, it, modality, pacs_name);
  const auto all_series = pacs.find_series(f.study.study_uid);
  if (!opt.series_description.empty() &&
      std::none_of(all_series.begin(), all_series.end(),
                   [](const pacs::SeriesInfo& s) { return !s.description.empty(); })) {
    // The filter is matched here, on the descriptions the PACS returns: without any, every
    // series would be dropped as not matching.
    throw PermanentError(
        describe_row(it) + " (study " + f.study.study_uid + "): PACS " + pacs_name +
        " returns no SeriesDescription in C-FIND, so the job's "
        "series-description filter '" +
        opt.series_description + "' cannot be applied; submit without --series-description");
  }
  Instances instances(pacs, f.study.study_uid);
  for (const auto& s : all_series) add_series(f, instances, s, it, modality, opt, skip_sop_classes);
  if (f.series.empty()) {
    throw PermanentError(describe_row(it) + " (study " + f.study.study_uid + ") has no series" +
                         (modality.empty() && opt.series_description.empty()
                              ? std::string(" on PACS ") + pacs_name
                              : " matching the job's filters"));
  }
  if (want_sop_classes) learn_sop_classes(f, instances, skip_sop_classes);
  return f;
}

}  // namespace p2x::pipeline

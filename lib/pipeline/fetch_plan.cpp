// pipeline/fetch_plan: plan_fetch and the spool reader it works from.
#include "pipeline/fetch_plan.hpp"

#include <algorithm>
#include <filesystem>
#include <map>

#include "validate/validate.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;

SpoolContents read_spool(const std::string& dir) {
  SpoolContents c;
  c.per_series = validate::count_by_series(dir);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    // Files are named <SOPInstanceUID>.dcm.
    if (e.path().extension() == ".dcm" && e.file_size(ec) > 0)
      c.sops.insert(e.path().stem().string());
  }
  return c;
}

namespace {

std::int64_t held(const SpoolContents& have, const std::string& series_uid) {
  auto h = have.per_series.find(series_uid);
  return h == have.per_series.end() ? 0 : h->second;
}

// The instances of `wanted` that the spool does not hold, as one selection (none if complete).
void add_missing(FetchPlan& plan, const Found& found, const std::string& series_uid,
                 const std::vector<std::string>& wanted, const SpoolContents& have) {
  pacs::Selection sel{found.study.study_uid, {series_uid}, {}, classes_of(found, series_uid)};
  for (const auto& sop : wanted) {
    if (!have.sops.count(sop)) sel.sop_uids.push_back(sop);
  }
  if (!sel.sop_uids.empty()) plan.selections.push_back(std::move(sel));
}

pacs::Selection whole_series(const Found& found, const std::string& series_uid) {
  return {found.study.study_uid, {series_uid}, {}, classes_of(found, series_uid)};
}

// Whether the study's classes need more than one C-GET association, and are known per series
// (so it can be fetched series by series).
bool split_by_series(const Found& found) {
  return found.sop_classes.size() > pacs::kMaxGetSopClasses && !found.series_sop_classes.empty();
}

}  // namespace

std::vector<std::string> classes_of(const Found& found, const std::string& series_uid) {
  auto it = found.series_sop_classes.find(series_uid);
  return it != found.series_sop_classes.end() ? it->second : found.sop_classes;
}

FetchPlan plan_fetch(const Found& found, const SpoolContents& have, const InstanceLister& list) {
  FetchPlan plan;
  const std::string& study = found.study.study_uid;
  std::vector<const store::Series*> missing;
  bool nothing_yet = true;
  for (const auto& s : found.series) {
    const std::int64_t n = held(have, s.series_uid);
    if (n > 0) nothing_yet = false;
    if (n < s.expected) {
      missing.push_back(&s);
      plan.requested += s.expected - n;
    }
  }
  if (missing.empty()) return plan;
  if (nothing_yet && found.skipped_series == 0 && found.only_sops.empty() &&
      !split_by_series(found)) {
    plan.selections.push_back({study, {}, {}, found.sop_classes});  // the whole study at once
    return plan;
  }
  for (const auto* s : missing) {
    auto only = found.only_sops.find(s->series_uid);
    if (only != found.only_sops.end()) {
      add_missing(plan, found, s->series_uid, only->second, have);
    } else if (held(have, s->series_uid) == 0) {
      plan.selections.push_back(whole_series(found, s->series_uid));
    } else {
      add_missing(plan, found, s->series_uid, list(s->series_uid), have);
    }
  }
  return plan;
}

std::vector<std::vector<pacs::Selection>> split_lanes(const FetchPlan& plan, const Found& found,
                                                      int lanes) {
  std::map<std::string, std::int64_t> expected;
  for (const auto& s : found.series) expected[s.series_uid] = s.expected;
  std::vector<std::pair<std::int64_t, pacs::Selection>> sels;  // (instances, selection)
  for (const auto& sel : plan.selections) {
    if (sel.series_uids.empty() && sel.sop_uids.empty() && found.series.size() > 1) {
      for (const auto& s : found.series)
        sels.push_back({s.expected, whole_series(found, s.series_uid)});
    } else {
      const std::int64_t n = !sel.sop_uids.empty() ? static_cast<std::int64_t>(sel.sop_uids.size())
                             : sel.series_uids.size() == 1 ? expected[sel.series_uids.front()]
                                                           : found.expected;
      sels.push_back({n, sel});
    }
  }
  if (lanes <= 1 || sels.size() <= 1) return {plan.selections};
  // Largest first, each to the lane with the fewest instances so far.
  std::stable_sort(sels.begin(), sels.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  const std::size_t n = std::min(sels.size(), static_cast<std::size_t>(lanes));
  std::vector<std::vector<pacs::Selection>> groups(n);
  std::vector<std::int64_t> load(n, 0);
  for (auto& [count, sel] : sels) {
    const auto lane =
        static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[lane] += count;
    groups[lane].push_back(std::move(sel));
  }
  return groups;
}

}  // namespace p2x::pipeline

// pipeline/fetch_plan: what to ask the PACS for, given what C-FIND reported and what the spool
// already holds. Pure (no network, no store): the PACS's instance list for a partly present
// series comes through a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "pacs/pacs.hpp"
#include "pipeline/steps.hpp"

namespace p2x::pipeline {

// What the spool holds of one study: files per series and the SOP Instance UIDs present.
struct SpoolContents {
  std::map<std::string, std::int64_t> per_series;
  std::set<std::string> sops;
};
SpoolContents read_spool(const std::string& dir);

struct FetchPlan {
  std::vector<pacs::Selection> selections;  // empty: the spool holds everything expected
  std::int64_t requested = 0;               // instances asked for
};

// What one retrieval's transfer brought, against what was asked.
struct Fetched {
  pacs::RetrieveResult result;
  std::int64_t requested = 0;
};

// SOP Instance UIDs of one series on the PACS (an IMAGE-level C-FIND).
using InstanceLister = std::function<std::vector<std::string>(const std::string& series_uid)>;

// Nothing in the spool and every series wanted: the whole study in one request (one per series
// when the study's SOP classes are more than one C-GET association can negotiate and are known
// per series). Otherwise, per series short of its expected count: the whole series if none of
// it is there, else only the missing instances (listed through `list`, or from
// Found::only_sops for series of which only some SOP classes are wanted). Every selection
// carries the SOP classes it holds as far as Found knows them (classes_of).
FetchPlan plan_fetch(const Found& found, const SpoolContents& have, const InstanceLister& list);

// The SOP classes of one series as Found knows them: its own when learned per series, else
// the study's (empty: unknown).
std::vector<std::string> classes_of(const Found& found, const std::string& series_uid);

// The plan's selections dealt round-robin over at most `lanes` associations (one study's series
// retrieved in parallel); a whole-study selection is first split into one per series of
// `found` (each with its classes). One lane, or a single selection that cannot be split: one
// group, the plan as it is.
std::vector<std::vector<pacs::Selection>> split_lanes(const FetchPlan& plan, const Found& found,
                                                      int lanes);

}  // namespace p2x::pipeline

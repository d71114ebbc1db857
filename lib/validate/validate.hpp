// validate: decides whether a retrieved study in the spool is complete and sane.
//
// A study is complete only if every expected series arrived with its expected instance count,
// every file parses as DICOM, every file's StudyInstanceUID matches, and SOP Instance UIDs are
// unique. Otherwise the report names what is missing (series, counts) so the retrieval can ask
// the PACS for just that, and which files are bad. Files of SOP classes the job skips are
// counted separately, never silently dropped.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace p2x::validate {

struct ExpectedSeries {
  std::string series_uid;
  std::string description;     // for messages
  std::int64_t expected = 0;
};

struct SeriesCount {
  std::string series_uid, description;
  std::int64_t expected = 0, received = 0;
};

struct Report {
  bool complete = false;
  std::int64_t files = 0;               // DICOM files found (valid ones)
  std::int64_t bytes = 0;
  std::vector<SeriesCount> series;      // every expected series with its received count
  std::vector<SeriesCount> missing;     // expected series with received < expected
  std::vector<std::string> problems;    // human-readable reasons (bad files, wrong study, ...)
  std::vector<std::string> bad_files;   // files to delete and fetch again
  std::map<std::string, std::int64_t> received_by_series;  // incl. series not expected
  std::set<std::string> sop_uids;       // valid SOP instances present
  std::string summary() const;          // one line: "complete: 3 series, 120 instances" or what is missing
};

// Examines every *.dcm file under `dir` (non-recursive).
Report check_study(const std::string& dir, const std::string& study_uid,
                   const std::vector<ExpectedSeries>& expected);

// Counts instances per series in `dir` without full validation (fast progress view).
std::map<std::string, std::int64_t> count_by_series(const std::string& dir);

}  // namespace p2x::validate

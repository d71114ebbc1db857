// validate: decides whether a retrieved study in the spool is complete and sane.
//
// A study is complete only if every expected series arrived with its expected instance count,
// every file parses as DICOM, and SOP Instance UIDs are unique. Otherwise the report names what
// is missing (series, counts) so the retrieval can ask the PACS for just that, and which files
// are bad (unreadable: to delete and fetch again). Files that are not the study the PACS
// described — another StudyInstanceUID, or a series its C-FIND did not report — are foreign:
// never counted, never part of the study, listed with the reason to quarantine them.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace p2x::validate {

struct ExpectedSeries {
  std::string series_uid;
  std::string description;  // for messages
  std::int64_t expected = 0;
};

struct SeriesCount {
  std::string series_uid, description;
  std::int64_t expected = 0, received = 0;
};

// A valid file of an expected series, as validation read it: what the push sends, byte for
// byte (the size and CRC-32 of the whole file, from the same pass that parsed it).
struct ValidFile {
  std::string name;  // file name in the study directory
  std::uint64_t size = 0;
  std::uint32_t crc = 0;
  std::string series_uid, sop_uid, sop_class;
};

// A file that does not belong to the study as reported, and why.
struct ForeignFile {
  std::string path, reason;
};

struct Report {
  bool complete = false;
  std::int64_t files = 0;              // valid files of the expected series
  std::int64_t bytes = 0;              // their size
  std::vector<SeriesCount> series;     // every expected series with its received count
  std::vector<SeriesCount> missing;    // expected series with received < expected
  std::vector<std::string> problems;   // human-readable reasons (bad files, wrong study, ...)
  std::vector<std::string> bad_files;  // files to delete and fetch again
  std::vector<ForeignFile> foreign;    // files to quarantine (not counted anywhere above)
  std::map<std::string, std::int64_t> received_by_series;  // incl. series not expected
  std::set<std::string> sop_uids;  // valid SOP instances of the expected series
  std::vector<ValidFile> valid;    // those instances' files, sorted by name
  std::string summary() const;  // one line: "complete: 3 series, 120 instances" or what is missing
};

// Examines every *.dcm file under `dir` (non-recursive; hidden files such as the Storage SCP's
// unfinished ".p2x-*.part" are never study files). With `expected` empty no series is
// called foreign (the study is incomplete anyway).
Report check_study(const std::string& dir, const std::string& study_uid,
                   const std::vector<ExpectedSeries>& expected);

// Counts instances per series in `dir` without full validation (fast progress view).
std::map<std::string, std::int64_t> count_by_series(const std::string& dir);

// The readable *.dcm files of `dir` with their series and SOP instance, from their headers only
// (values over 4 KiB are skipped unread): what the retrieval reconciles with the PACS.
struct Instance {
  std::string path, series_uid, sop_uid;
};
std::vector<Instance> list_instances(const std::string& dir);

}  // namespace p2x::validate

// pipeline/preflight: what is checked before anything is queued — the submit pre-flight (the
// project exists in XNAT and is set up as the site requires; rows whose session XNAT already
// holds are refused, skipped or appended to as the job's options say) and the dry run (the
// same project checks, and the C-FIND of every row: what would be retrieved). Both work over
// the seams (xnat::IArchive, pacs::IPacs), so the daemon runs them against XNAT and the PACS and
// tests against fakes; service/operations turns their answers into the socket's JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "intake/intake.hpp"
#include "pipeline/options.hpp"
#include "pipeline/steps.hpp"
#include "store/store.hpp"
#include "xnat/project_checks.hpp"

namespace p2x::pacs {
class IPacs;
}

namespace p2x::pipeline {

// The project's settings as submit and --dry-run show them.
struct ProjectReport {
  xnat::ProjectChecks checks;     // the anonymisation script, the prearchive code
  xnat::Destination destination;  // where sessions would go, and why
};

// Asks XNAT about the project's settings (the project itself must exist). Throws XnatError.
ProjectReport report_project(xnat::IArchive& archive, const std::string& project,
                             bool waive_anonymisation, std::optional<bool> forced_prearchive);

// The submit pre-flight refused: what() says why and what to do. Nothing was queued.
struct PreflightRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SubmitPreflight {
  std::vector<int> skip_rows;         // rows whose session exists (opt.skip_existing)
  std::vector<std::string> warnings;  // each existing session skipped or appended to
  std::vector<std::string> checks;    // the anonymisation line, the destination line
};

// The project must exist in XNAT and have an anonymisation script enabled (its own or the
// site's; not asked with opt.no_anonymisation_check; an XNAT that does not answer is "not
// verified" and refused too); rows whose session label already exists there are refused
// (listed with their CSV lines) unless opt.skip_existing (skipped) or opt.append (appended to).
// `forced_prearchive` is xnat.prearchive (nullopt: "project"). Throws PreflightRefused (its
// message ends saying nothing was queued).
SubmitPreflight submit_preflight(xnat::IArchive& archive, const std::string& project,
                                 const JobOptions& opt, const std::vector<store::NewItem>& items,
                                 std::optional<bool> forced_prearchive);

// --dry-run's answer for one row: what C-FIND found, or why the row cannot be retrieved.
struct DryRunRow {
  int row = 0, line = 0;
  std::optional<Found> found;
  std::string reason;  // when not found
};

// --dry-run's XNAT part: whether a submit would pass the project checks, for a person.
struct DryRunProject {
  bool ok = false;
  std::string text;
  std::optional<ProjectReport> report;  // when the project exists and XNAT answered
};

struct DryRun {
  std::optional<DryRunProject> project;  // nullopt: no XNAT (or no project) to ask
  std::vector<DryRunRow> rows;
  int found = 0;
  std::int64_t instances = 0;
  bool ok = false;   // every row found and the project checks passed
  std::string text;  // the whole answer for a person, one line per row
};

// What a dry run is asked: the validated rows, the PACS node and our AE title, the job's
// options, and (with `archive`) the project to check.
struct DryRunRequest {
  std::vector<intake::Row> rows;
  config::PacsNode node;
  std::string our_ae;
  JobOptions options;
  std::string project;                    // empty: no project checks
  std::optional<bool> forced_prearchive;  // xnat.prearchive
};

// Checks the project (when `archive` is given), runs the C-FIND of every row on one
// association and says what would be retrieved; retrieves and queues nothing. A PACS that
// cannot be reached makes every row "not retrievable" with the reason.
DryRun dry_run(pacs::IPacs& pacs, xnat::IArchive* archive, const DryRunRequest& request);

}  // namespace p2x::pipeline

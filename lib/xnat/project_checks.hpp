// xnat/project_checks: the project settings the site's import procedure requires before data
// goes into a research project, judged in one place for the submit pre-flight, `--dry-run` and
// the pipeline's check before a job's first push.
//
// Anonymisation: the project's script or the site-wide one must be enabled
// (/xapi/anonymize/projects/P/enabled, /xapi/anonymize/site/enabled). An XNAT that answers
// neither (older versions, an account without the rights) leaves it "not verified", which
// refuses like "disabled" unless the job carries the override (--no-anonymisation-check).
// Prearchive: the project's prearchive_code (0 = review in the prearchive, 4/5 = auto-archive)
// decides where sessions go when xnat.prearchive is "project"; true/false force one way.
#pragma once

#include <optional>
#include <string>

#include "xnat/archive.hpp"

namespace p2x::xnat {

struct ProjectChecks {
  bool anonymisation_ok = false;       // an enabled script was seen, or the check was waived
  bool anonymisation_waived = false;   // the override: not asked
  std::string anonymisation;           // one line for a person: what was found, what to do
  std::optional<int> prearchive_code;  // nullopt: XNAT did not say
  std::string prearchive_note;         // why the code is unknown
};

// Asks `archive` (3 requests; 2 with the override). Throws XnatError for transient trouble,
// credentials and TLS; a 4xx from a settings endpoint is "not answered", never an exception.
ProjectChecks check_project(IArchive& archive, const std::string& project,
                            bool waive_anonymisation);

// The judgement alone (socket-free, unit-tested).
ProjectChecks judge_anonymisation(const AnonymisationSettings& s, const std::string& project);

// Where sessions of the project go. `forced`: xnat.prearchive true/false; nullopt: "project".
struct Destination {
  bool prearchive = false;
  std::string why;  // e.g. "project P reviews sessions in the prearchive (prearchive_code 0)"
};
Destination choose_destination(std::optional<bool> forced, const ProjectChecks& checks,
                               const std::string& project);

}  // namespace p2x::xnat

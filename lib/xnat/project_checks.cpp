// xnat/project_checks: anonymisation and prearchive settings, judged (see project_checks.hpp).
#include "xnat/project_checks.hpp"

namespace p2x::xnat {

namespace {

std::string what_to_set(const std::string& project) {
  return "In XNAT, enable an anonymisation script for project " + project +
         " (project page > Project Settings > Anonymization Script: paste the script, tick "
         "\"Enable\", save) or a site-wide one (Administer > Site Administration > Anonymization, "
         "as an administrator); for a project meant to hold identifiable data, submit with "
         "--no-anonymisation-check";
}

}  // namespace

ProjectChecks judge_anonymisation(const AnonymisationSettings& s, const std::string& project) {
  ProjectChecks c;
  if (s.project == Answer::Yes || s.site == Answer::Yes) {
    c.anonymisation_ok = true;
    c.anonymisation = s.project == Answer::Yes
                          ? "anonymisation: project " + project + "'s script is enabled"
                          : "anonymisation: the site-wide script is enabled";
    return c;
  }
  if (s.project == Answer::No && s.site == Answer::No) {
    c.anonymisation = "project " + project +
                      " has no anonymisation script enabled and neither "
                      "has the site: the data would arrive identifiable. " +
                      what_to_set(project);
    return c;
  }
  std::string unanswered;
  for (const auto* note : {&s.project_note, &s.site_note})
    if (!note->empty()) unanswered += (unanswered.empty() ? "" : "; ") + *note;
  c.anonymisation = "anonymisation script of project " + project +
                    " not verified: XNAT did not "
                    "say whether one is enabled (" +
                    unanswered +
                    "; an XNAT older than 1.7 or "
                    "an account without the rights to read the settings). " +
                    what_to_set(project);
  return c;
}

ProjectChecks check_project(IArchive& archive, const std::string& project,
                            bool waive_anonymisation) {
  ProjectChecks c;
  if (waive_anonymisation) {
    c.anonymisation_ok = c.anonymisation_waived = true;
    c.anonymisation = "anonymisation: not checked (--no-anonymisation-check)";
  } else {
    c = judge_anonymisation(archive.anonymisation(project), project);
  }
  c.prearchive_code = archive.prearchive_code(project, &c.prearchive_note);
  return c;
}

Destination choose_destination(std::optional<bool> forced, const ProjectChecks& checks,
                               const std::string& project) {
  Destination d;
  if (forced) {
    d.prearchive = *forced;
    d.why = std::string("xnat.prearchive is ") +
            (*forced ? "true: into the prearchive" : "false: into the archive");
    return d;
  }
  const auto code = checks.prearchive_code;
  if (code && (*code == 4 || *code == 5)) {
    d.why = "project " + project + " archives automatically (prearchive_code " +
            std::to_string(*code) + "): into the archive";
    return d;
  }
  d.prearchive = true;
  d.why = code ? "project " + project + " reviews sessions in the prearchive (prearchive_code " +
                     std::to_string(*code) + "): into the prearchive, awaiting review"
               : "XNAT did not give project " + project + "'s prearchive setting (" +
                     checks.prearchive_note + "): into the prearchive, awaiting review, to be safe";
  return d;
}

}  // namespace p2x::xnat

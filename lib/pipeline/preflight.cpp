// pipeline/preflight: the submit pre-flight and the dry run over the seams (see preflight.hpp).
#include "pipeline/preflight.hpp"

#include <sstream>
#include <unordered_map>

#include "pacs/pacs.hpp"
#include "pacs/retrieval.hpp"
#include "xnat/archive.hpp"

namespace p2x::pipeline {

namespace {

constexpr int kMaxConflictsListed = 50;

void require_project(xnat::IArchive& archive, const std::string& project) {
  bool exists = false;
  try {
    exists = archive.project_exists(project);
  } catch (const xnat::XnatError& e) {
    throw PreflightRefused("cannot check project " + project + " in XNAT: " + e.what() +
                           "; nothing was queued");
  }
  if (!exists) {
    throw PreflightRefused("project " + project +
                           " does not exist in XNAT (or this account "
                           "cannot see it); XNAT would put the sessions into its Unassigned "
                           "prearchive. Create the project or fix --project; nothing was queued");
  }
}

std::unordered_map<std::string, xnat::SessionSummary> sessions_of(xnat::IArchive& archive,
                                                                  const std::string& project) {
  std::unordered_map<std::string, xnat::SessionSummary> existing;
  try {
    for (auto& s : archive.sessions(project)) existing[s.label] = s;
  } catch (const xnat::XnatError& e) {
    throw PreflightRefused("cannot list the sessions of project " + project +
                           " in XNAT: " + e.what() + "; nothing was queued");
  }
  return existing;
}

// Rows naming sessions XNAT holds: skipped, appended to, or (neither asked) refused.
void existing_sessions(xnat::IArchive& archive, const std::string& project, const JobOptions& opt,
                       const std::vector<store::NewItem>& items, SubmitPreflight& out) {
  const auto existing = sessions_of(archive, project);
  std::string conflicts;
  int n = 0;
  for (const auto& it : items) {
    if (it.session.empty()) continue;
    const auto e = existing.find(it.session);
    if (e == existing.end()) continue;
    ++n;
    const std::string what = "line " + std::to_string(it.line) + ": session " + it.session +
                             " already exists in project " + project + " (subject " +
                             e->second.subject_label + ")";
    if (opt.skip_existing) {
      out.skip_rows.push_back(it.row);
      out.warnings.push_back(what + "; skipped");
    } else if (opt.append) {
      out.warnings.push_back(what + "; the study will be appended to it");
    } else if (n <= kMaxConflictsListed) {
      conflicts += "\n  " + what;
    }
  }
  if (!conflicts.empty()) {
    throw PreflightRefused(std::to_string(n) +
                           " row(s) name sessions that already exist in "
                           "XNAT; nothing was queued. Use --skip-existing to skip them or "
                           "--append to add to them:" +
                           conflicts + (n > kMaxConflictsListed ? "\n  ..." : ""));
  }
}

// A validated CSV row as the C-FIND sees it: as `submit` queues it, the job's modality option
// standing in for a row without one (service/commands.cpp).
store::Item item_of(const intake::Row& r, const std::string& job_modality) {
  store::Item it;
  it.row = r.row;
  it.line = r.line;
  it.kind = r.kind;
  it.accession = r.accession;
  it.patient_id = r.patient_id;
  it.study_date = r.study_date;
  it.study_uid = r.study_uid;
  it.modality = r.modality.empty() ? job_modality : r.modality;
  return it;
}

DryRunProject dry_run_project(xnat::IArchive& archive, const DryRunRequest& r) {
  DryRunProject out;
  try {
    if (!archive.project_exists(r.project)) {
      out.text = "project " + r.project + " does not exist in XNAT (or this account cannot see it)";
    } else {
      out.report =
          report_project(archive, r.project, r.options.no_anonymisation_check, r.forced_prearchive);
      out.ok = out.report->checks.anonymisation_ok;
      out.text = std::string(out.ok ? "" : "REFUSED: ") + out.report->checks.anonymisation +
                 "\nXNAT destination: " + out.report->destination.why;
    }
  } catch (const xnat::XnatError& e) {
    out.text = "cannot check project " + r.project + " in XNAT: " + e.what();
  }
  return out;
}

// One row's C-FIND on the open association (or the reason none could be opened).
DryRunRow dry_run_row(pacs::IRetrieval* session, const std::string& no_session,
                      const intake::Row& r, const DryRunRequest& req, std::ostringstream& text) {
  const store::Item it = item_of(r, req.options.modality);
  DryRunRow row;
  row.row = r.row;
  row.line = r.line;
  text << "row " << r.row << " (line " << r.line << ", " << describe_row(it) << "): ";
  try {
    if (!session) throw std::runtime_error(no_session);
    Found f = find_study(*session, it, req.options, req.node.name, req.node.skip_sop_classes);
    std::string mods;
    for (const auto& m : f.study.modalities) mods += (mods.empty() ? "" : "\\") + m;
    text << "study " << f.study.study_uid << ", " << f.study.study_date << ", " << mods << ", "
         << f.series.size() << " series, " << f.expected << " instances";
    if (f.skipped_series) text << " (" << f.skipped_series << " series skipped by filters)";
    text << "\n";
    row.found = std::move(f);
  } catch (const std::exception& e) {
    row.reason = e.what();
    text << "NOT RETRIEVABLE: " << e.what() << "\n";
  }
  return row;
}

}  // namespace

ProjectReport report_project(xnat::IArchive& archive, const std::string& project,
                             bool waive_anonymisation, std::optional<bool> forced_prearchive) {
  ProjectReport r;
  r.checks = xnat::check_project(archive, project, waive_anonymisation);
  r.destination = xnat::choose_destination(forced_prearchive, r.checks, project);
  return r;
}

SubmitPreflight submit_preflight(xnat::IArchive& archive, const std::string& project,
                                 const JobOptions& opt, const std::vector<store::NewItem>& items,
                                 std::optional<bool> forced_prearchive) {
  require_project(archive, project);
  ProjectReport report;
  try {
    report = report_project(archive, project, opt.no_anonymisation_check, forced_prearchive);
  } catch (const xnat::XnatError& e) {
    throw PreflightRefused("cannot check the settings of project " + project +
                           " in XNAT: " + e.what() + "; nothing was queued");
  }
  if (!report.checks.anonymisation_ok) {
    throw PreflightRefused(report.checks.anonymisation + ". Nothing was queued");
  }
  SubmitPreflight out;
  existing_sessions(archive, project, opt, items, out);
  out.checks = {report.checks.anonymisation, report.destination.why};
  return out;
}

DryRun dry_run(pacs::IPacs& pacs, xnat::IArchive* archive, const DryRunRequest& request) {
  DryRun out;
  std::ostringstream text;
  if (archive && !request.project.empty()) {
    out.project = dry_run_project(*archive, request);
    text << "XNAT project " << request.project << ": " << out.project->text << "\n";
  }
  // Every row's C-FINDs on one association; nothing is retrieved.
  std::unique_ptr<pacs::IRetrieval> session;
  std::string no_session;
  try {
    session = pacs.open(peer_for(request.node, request.our_ae), pacs::RetrieveMethod::Move);
  } catch (const pacs::PacsError& e) {
    no_session = e.what();
  }
  for (const auto& r : request.rows) {
    out.rows.push_back(dry_run_row(session.get(), no_session, r, request, text));
    if (const auto& f = out.rows.back().found) {
      ++out.found;
      out.instances += f->expected;
    }
  }
  if (session) session->close();
  text << out.found << " of " << request.rows.size() << " rows found, " << out.instances
       << " instances would be retrieved; nothing was queued";
  out.ok = out.found == static_cast<int>(request.rows.size()) && (!out.project || out.project->ok);
  out.text = text.str();
  return out;
}

}  // namespace p2x::pipeline

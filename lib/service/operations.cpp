#include "service/operations.hpp"

#include <chrono>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "intake/intake.hpp"
#include "pacs/pacs.hpp"
#include "pacs/retrieval.hpp"
#include "pipeline/options.hpp"
#include "pipeline/steps.hpp"
#include "xnat/archive.hpp"
#include "xnat/project_checks.hpp"
#include "xnat/xnat.hpp"

namespace p2x::service {

using ipc::CommandError;
using nlohmann::json;
namespace code = ipc::code;

namespace {

const config::PacsNode& require_pacs(const config::Config& cfg, const std::string& name) {
  const config::PacsNode* node = cfg.find_pacs(name);
  if (!node) {
    std::string known;
    for (const auto& p : cfg.pacs) known += (known.empty() ? "" : ", ") + p.name;
    throw CommandError(code::refused, "unknown PACS \"" + name + "\"; configured: " + known);
  }
  return *node;
}

json pacs_echo(const config::Config& cfg, const json& args) {
  const auto& node = require_pacs(cfg, args.at("pacs").get<std::string>());
  pacs::Client client(pipeline::peer_for(node, cfg.ae_title));
  try {
    double s = client.echo();
    return json{{"pacs", node.name}, {"ae_title", node.ae_title}, {"host", node.host},
                {"port", node.port}, {"ms", static_cast<long long>(s * 1000 + 0.5)}};
  } catch (const pacs::PacsError& e) {
    throw CommandError(code::refused, "C-ECHO to " + node.name + " (" + node.ae_title + "@" +
                                          node.host + ":" + std::to_string(node.port) +
                                          ") failed: " + e.what());
  }
}

// The project settings the site procedure requires, as the submit answer and --dry-run show
// them: {"anonymisation": {"ok", "waived", "text"}, "destination": {"prearchive", "text"}}.
// Throws XnatError for transient trouble.
json project_checks(xnat::Client& xnat, const std::string& project, bool waive,
                    std::optional<bool> forced_prearchive) {
  xnat::RestArchive archive(xnat);
  const xnat::ProjectChecks c = xnat::check_project(archive, project, waive);
  const xnat::Destination d = xnat::choose_destination(forced_prearchive, c, project);
  return json{{"anonymisation",
               {{"ok", c.anonymisation_ok}, {"waived", c.anonymisation_waived},
                {"text", c.anonymisation}}},
              {"destination", {{"prearchive", d.prearchive}, {"text", d.why}}}};
}

// --dry-run's XNAT part: the project, its anonymisation script, where sessions would go.
json dry_run_xnat(const config::Config& cfg, xnat::Client* xnat, const std::string& project,
                  const pipeline::JobOptions& opt, std::ostringstream& text) {
  json out{{"ok", false}};
  if (!xnat) return out;
  try {
    if (!xnat->project_exists(project)) {
      out["text"] = "project " + project + " does not exist in XNAT (or this account cannot see it)";
    } else {
      out.update(project_checks(*xnat, project, opt.no_anonymisation_check, cfg.xnat.prearchive));
      out["ok"] = out["anonymisation"]["ok"];
      out["text"] = std::string(out["ok"] ? "" : "REFUSED: ") +
                    out["anonymisation"]["text"].get<std::string>() + "\nXNAT destination: " +
                    out["destination"]["text"].get<std::string>();
    }
  } catch (const xnat::XnatError& e) {
    out["text"] = std::string("cannot check project ") + project + " in XNAT: " + e.what();
  }
  text << "XNAT project " << project << ": " << out["text"].get<std::string>() << "\n";
  return out;
}

// Checks the project in XNAT, runs the C-FIND for every row and says what would be retrieved;
// queues nothing.
json dry_run(const config::Config& cfg, xnat::Client* xnat, const json& args) {
  const auto& node = require_pacs(cfg, args.at("pacs").get<std::string>());
  const std::string bytes = ipc::bytes_argument(args, "csv_base64");
  intake::Result parsed = intake::parse_csv(bytes);
  if (!parsed.ok()) {
    std::string msg = std::to_string(parsed.problems.size()) + " problem(s) in the CSV:";
    for (const auto& p : parsed.problems) msg += "\n  " + intake::format(p);
    throw CommandError(code::refused, msg);
  }
  pipeline::JobOptions opt;
  try {
    opt = pipeline::job_options_from(args);
  } catch (const pipeline::OptionError& e) {
    throw CommandError(code::bad_request, std::string("dry-run option ") + e.what());
  }
  std::ostringstream text;
  const json checks = xnat && args.contains("project") && args["project"].is_string()
                          ? dry_run_xnat(cfg, xnat, args["project"].get<std::string>(), opt, text)
                          : json{{"ok", true}};
  // Every row's C-FINDs on one association; nothing is retrieved (no Storage SCP).
  pacs::DimsePacs pacs_side(nullptr);
  auto session = pacs_side.open(pipeline::peer_for(node, cfg.ae_title), pacs::RetrieveMethod::Move);
  json rows = json::array();
  int found_n = 0;
  std::int64_t total = 0;
  for (const auto& r : parsed.rows) {
    store::Item it;
    it.row = r.row;
    it.kind = r.kind == intake::RowKind::Accession     ? "accession"
              : r.kind == intake::RowKind::PatientDate ? "patient_date"
                                                       : "study_uid";
    it.accession = r.accession;
    it.patient_id = r.patient_id;
    it.study_date = r.study_date;
    it.study_uid = r.study_uid;
    it.modality = r.modality;
    json row{{"row", r.row}, {"line", r.line}};
    text << "row " << r.row << " (line " << r.line << ", " << pipeline::describe_row(it) << "): ";
    try {
      pipeline::Found f = pipeline::find_study(*session, it, opt, node.name, node.skip_sop_classes);
      json series = json::array();
      for (const auto& s : f.series) {
        series.push_back({{"series_uid", s.series_uid}, {"modality", s.modality},
                          {"description", s.description}, {"instances", s.expected}});
      }
      std::string mods;
      for (const auto& m : f.study.modalities) mods += (mods.empty() ? "" : "\\") + m;
      row.update({{"found", true}, {"study_uid", f.study.study_uid},
                  {"study_date", f.study.study_date}, {"patient_id", f.study.patient_id},
                  {"modalities", mods}, {"series", series}, {"instances", f.expected}});
      text << "study " << f.study.study_uid << ", " << f.study.study_date << ", " << mods << ", "
           << f.series.size() << " series, " << f.expected << " instances";
      if (f.skipped_series) text << " (" << f.skipped_series << " series skipped by filters)";
      text << "\n";
      ++found_n;
      total += f.expected;
    } catch (const std::exception& e) {
      row.update({{"found", false}, {"reason", e.what()}});
      text << "NOT RETRIEVABLE: " << e.what() << "\n";
    }
    rows.push_back(std::move(row));
  }
  session->close();
  text << found_n << " of " << parsed.rows.size() << " rows found, " << total
       << " instances would be retrieved; nothing was queued";
  const bool ok = found_n == static_cast<int>(parsed.rows.size()) && checks.value("ok", false);
  return json{{"rows", rows},  {"found", found_n}, {"total", parsed.rows.size()},
              {"instances", total}, {"ok", ok}, {"xnat", checks}, {"text", text.str()}};
}

}  // namespace

json xnat_preflight(xnat::Client& xnat, const json& args, const std::vector<store::NewItem>& items,
                    std::optional<bool> forced_prearchive) {
  const std::string project = args.at("project").get<std::string>();
  try {
    if (!xnat.project_exists(project)) {
      throw CommandError(code::refused,
                         "project " + project + " does not exist in XNAT (or this account cannot "
                         "see it); XNAT would put the sessions into its Unassigned prearchive. "
                         "Create the project or fix --project; nothing was queued");
    }
  } catch (const xnat::XnatError& e) {
    throw CommandError(code::refused, "cannot check project " + project + " in XNAT: " +
                                          e.what() + "; nothing was queued");
  }
  const bool waive = args.value("no_anonymisation_check", false);
  json checks;
  try {
    checks = project_checks(xnat, project, waive, forced_prearchive);
  } catch (const xnat::XnatError& e) {
    throw CommandError(code::refused, "cannot check the settings of project " + project +
                                          " in XNAT: " + e.what() + "; nothing was queued");
  }
  if (!checks["anonymisation"]["ok"].get<bool>()) {
    throw CommandError(code::refused, checks["anonymisation"]["text"].get<std::string>() +
                                          ". Nothing was queued");
  }
  std::unordered_map<std::string, xnat::SessionSummary> existing;
  try {
    for (auto& s : xnat.sessions(project)) existing[s.label] = s;
  } catch (const xnat::XnatError& e) {
    throw CommandError(code::refused, "cannot list the sessions of project " + project +
                                          " in XNAT: " + e.what() + "; nothing was queued");
  }
  const bool skip = args.value("skip_existing", false), append = args.value("append", false);
  json skip_rows = json::array(), warnings = json::array();
  std::string conflicts;
  int n = 0;
  for (const auto& it : items) {
    if (it.session.empty()) continue;
    auto e = existing.find(it.session);
    if (e == existing.end()) continue;
    ++n;
    std::string what = "line " + std::to_string(it.line) + ": session " + it.session +
                       " already exists in project " + project + " (subject " +
                       e->second.subject_label + ")";
    if (skip) {
      skip_rows.push_back(it.row);
      warnings.push_back(what + "; skipped");
    } else if (append) {
      warnings.push_back(what + "; the study will be appended to it");
    } else if (n <= 50) {
      conflicts += "\n  " + what;
    }
  }
  if (!conflicts.empty()) {
    throw CommandError(code::refused,
                       std::to_string(n) + " row(s) name sessions that already exist in XNAT; "
                       "nothing was queued. Use --skip-existing to skip them or --append to add "
                       "to them:" + conflicts + (n > 50 ? "\n  ..." : ""));
  }
  return json{{"skip_rows", skip_rows},
              {"warnings", warnings},
              {"checks", {checks["anonymisation"]["text"], checks["destination"]["text"]}}};
}

void register_operations(ipc::Dispatcher& d, const config::Config& cfg, xnat::Client* xnat) {
  d.add("pacs_echo", [&cfg](const json& a, const ipc::Peer&) { return pacs_echo(cfg, a); });
  d.add("dry_run", [&cfg, xnat](const json& a, const ipc::Peer&) { return dry_run(cfg, xnat, a); });
}

}  // namespace p2x::service

// service/operations: pacs echo, and the dry run and submit pre-flight of pipeline/preflight
// against the configured PACS and XNAT, answered as JSON (see operations.hpp).
#include "service/operations.hpp"

#include <optional>

#include <spdlog/spdlog.h>

#include "intake/intake.hpp"
#include "pacs/pacs.hpp"
#include "jobopts/jobopts.hpp"
#include "pacs/retrieval.hpp"
#include "pipeline/preflight.hpp"
#include "pipeline/steps.hpp"
#include "xnat/archive.hpp"
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
    return json{{"pacs", node.name},
                {"ae_title", node.ae_title},
                {"host", node.host},
                {"port", node.port},
                {"ms", static_cast<long long>(s * 1000 + 0.5)}};
  } catch (const pacs::PacsError& e) {
    throw CommandError(code::refused, "C-ECHO to " + node.name + " (" + node.ae_title + "@" +
                                          node.host + ":" + std::to_string(node.port) +
                                          ") failed: " + e.what());
  }
}

// The project settings as --dry-run shows them: {"anonymisation": {"ok", "waived", "text"},
// "destination": {"prearchive", "text"}}.
json report_json(const pipeline::ProjectReport& r) {
  const xnat::ProjectChecks& c = r.checks;
  return json{
      {"anonymisation",
       {{"ok", c.anonymisation_ok}, {"waived", c.anonymisation_waived}, {"text", c.anonymisation}}},
      {"destination", {{"prearchive", r.destination.prearchive}, {"text", r.destination.why}}}};
}

json row_json(const pipeline::DryRunRow& r) {
  json row{{"row", r.row}, {"line", r.line}};
  if (!r.found) {
    row.update({{"found", false}, {"reason", r.reason}});
    return row;
  }
  const pipeline::Found& f = *r.found;
  json series = json::array();
  for (const auto& s : f.series) {
    series.push_back({{"series_uid", s.series_uid},
                      {"modality", s.modality},
                      {"description", s.description},
                      {"instances", s.expected}});
  }
  std::string mods;
  for (const auto& m : f.study.modalities) mods += (mods.empty() ? "" : "\\") + m;
  row.update({{"found", true},
              {"study_uid", f.study.study_uid},
              {"study_date", f.study.study_date},
              {"patient_id", f.study.patient_id},
              {"modalities", mods},
              {"series", series},
              {"instances", f.expected}});
  return row;
}

// The dry run's answer: {"rows", "found", "total", "instances", "ok", "xnat", "text"}.
json dry_run_json(const pipeline::DryRun& d) {
  json rows = json::array();
  for (const auto& r : d.rows) rows.push_back(row_json(r));
  json checks{{"ok", true}};
  if (d.project) {
    checks = json{{"ok", d.project->ok}, {"text", d.project->text}};
    if (d.project->report) checks.update(report_json(*d.project->report));
  }
  return json{
      {"rows", rows}, {"found", d.found}, {"total", d.rows.size()}, {"instances", d.instances},
      {"ok", d.ok},   {"xnat", checks},   {"text", d.text}};
}

// Checks the project in XNAT, runs the C-FIND for every row and says what would be retrieved;
// queues nothing (pipeline::dry_run against the configured PACS and XNAT).
json dry_run(const config::Config& cfg, xnat::Client* xnat, const json& args) {
  pipeline::DryRunRequest request;
  request.node = require_pacs(cfg, args.at("pacs").get<std::string>());
  const std::string bytes = ipc::bytes_argument(args, "csv_base64");
  intake::Result parsed = intake::parse_csv(bytes);
  if (!parsed.ok()) {
    std::string msg = std::to_string(parsed.problems.size()) + " problem(s) in the CSV:";
    for (const auto& p : parsed.problems) msg += "\n  " + intake::format(p);
    throw CommandError(code::refused, msg);
  }
  try {
    request.options = jobopts::job_options_from(args);
  } catch (const jobopts::OptionError& e) {
    throw CommandError(code::bad_request, std::string("dry-run option ") + e.what());
  }
  request.rows = std::move(parsed.rows);
  request.our_ae = cfg.ae_title;
  if (args.contains("project") && args["project"].is_string()) {
    request.project = args["project"].get<std::string>();
  }
  request.forced_prearchive = cfg.xnat.prearchive;
  pacs::DimsePacs pacs_side(nullptr);  // C-FIND only: no Storage SCP
  std::optional<xnat::RestArchive> archive;
  if (xnat) archive.emplace(*xnat);
  return dry_run_json(pipeline::dry_run(pacs_side, archive ? &*archive : nullptr, request));
}

}  // namespace

json xnat_preflight(xnat::Client& xnat, const json& args, const std::vector<store::NewItem>& items,
                    std::optional<bool> forced_prearchive) {
  jobopts::JobOptions opt;
  try {
    opt = jobopts::job_options_from(args);
  } catch (const jobopts::OptionError& e) {
    throw CommandError(code::bad_request,
                       std::string("submit option ") + e.what() + "; nothing was queued");
  }
  xnat::RestArchive archive(xnat);
  pipeline::SubmitPreflight pre;
  try {
    pre = pipeline::submit_preflight(archive, args.at("project").get<std::string>(), opt, items,
                                     forced_prearchive);
  } catch (const pipeline::PreflightRefused& e) {
    throw CommandError(code::refused, e.what());
  }
  return json{{"skip_rows", pre.skip_rows}, {"warnings", pre.warnings}, {"checks", pre.checks}};
}

void register_operations(ipc::Dispatcher& d, const config::Config& cfg, xnat::Client* xnat) {
  d.add("pacs_echo", [&cfg](const json& a, const ipc::Peer&) { return pacs_echo(cfg, a); });
  d.add("dry_run", [&cfg, xnat](const json& a, const ipc::Peer&) { return dry_run(cfg, xnat, a); });
}

}  // namespace p2x::service

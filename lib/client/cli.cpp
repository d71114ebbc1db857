#include "client/cli.hpp"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <CLI/CLI.hpp>

#include "client/format.hpp"
#include "client/watch.hpp"
#include "intake/intake.hpp"
#include "ipc/client.hpp"

namespace p2x::client {

using nlohmann::json;

namespace {

constexpr const char* kDefaultSocket = "/run/pacs2xnat/pacs2xnatd.sock";

std::string resolve_socket(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("PACS2XNAT_SOCKET"); env && *env) return env;
  return kDefaultSocket;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

struct Runner {
  std::ostream& out;
  std::ostream& err;
  std::string socket;

  // Sends one request; prints the error and returns the exit code on failure.
  int request(const std::string& cmd, const json& args, json& result, int timeout_s = 120) {
    json response;
    try {
      response = ipc::call(socket, cmd, args, timeout_s);
    } catch (const ipc::Unreachable& e) {
      err << "pacs2xnat: " << e.what() << "\n"
          << "  Is the daemon running? Start it with `systemctl start pacs2xnatd` (or "
             "`pacs2xnatd --config FILE`), or point the CLI at its socket with --socket PATH "
             "or PACS2XNAT_SOCKET.\n";
      return kUnreachable;
    } catch (const std::exception& e) {
      err << "pacs2xnat: " << e.what() << "\n";
      return kUnreachable;
    }
    if (!response.value("ok", false)) {
      const json& e = response.value("error", json::object());
      err << "pacs2xnat: " << e.value("message", std::string("request refused")) << "\n";
      return kRefused;
    }
    result = response.value("result", json::object());
    return kOk;
  }
};

int cmd_check(const std::string& path, bool as_json, std::ostream& out, std::ostream& err) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const std::exception& e) {
    err << "pacs2xnat: " << e.what() << "\n";
    return kUsage;
  }
  intake::Result r = intake::parse_csv(bytes);
  if (as_json) {
    json problems = json::array();
    for (const auto& p : r.problems) {
      problems.push_back({{"line", p.line}, {"column", p.column}, {"column_name", p.column_name},
                          {"message", p.message}});
    }
    out << json{{"file", path}, {"rows", r.rows.size()}, {"problems", problems}}.dump(2) << "\n";
  } else if (r.ok()) {
    std::size_t acc = 0, pd = 0, uid = 0;
    for (const auto& row : r.rows) {
      (row.kind == intake::RowKind::Accession ? acc
       : row.kind == intake::RowKind::PatientDate ? pd : uid)++;
    }
    out << path << ": " << r.rows.size() << " rows OK (" << acc << " by accession, " << pd
        << " by patient ID + date, " << uid << " by Study Instance UID)\n";
  } else {
    for (const auto& p : r.problems) err << path << ": " << intake::format(p) << "\n";
    err << path << ": " << r.problems.size() << " problem(s); fix them before submitting\n";
  }
  return r.ok() ? kOk : kRefused;
}

}  // namespace

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"pacs2xnat - queue and follow bulk DICOM imports from a PACS into XNAT"};
  app.require_subcommand(1);
  std::string socket_flag;
  app.add_option("--socket", socket_flag,
                 "daemon socket (default: $PACS2XNAT_SOCKET, else /run/pacs2xnat/pacs2xnatd.sock)");
  bool as_json = false;
  std::int64_t job_id = 0;
  std::string csv_path, project, pacs, modality, series_description, pacs_name;
  bool strict = false, dry_run = false, show_all = false, skip_existing = false, append = false;

  auto* check = app.add_subcommand("check", "validate a CSV locally (no daemon needed)");
  check->add_option("file", csv_path, "CSV file")->required();
  check->add_flag("--json", as_json, "machine-readable output");

  auto* submit = app.add_subcommand("submit", "validate a CSV and queue its studies");
  submit->add_option("file", csv_path, "CSV file")->required();
  submit->add_option("--project,-p", project, "XNAT project ID")->required();
  submit->add_option("--pacs", pacs, "PACS name from the daemon's configuration")->required();
  submit->add_option("--modality", modality, "only series of this modality (e.g. MR)");
  submit->add_option("--series-description", series_description,
                     "only series whose description matches this pattern (* and ? wildcards)");
  submit->add_flag("--strict", strict, "label inconsistencies are errors, not warnings");
  submit->add_flag("--dry-run", dry_run, "query the PACS for every row and print what would be "
                                         "retrieved; queue nothing");
  submit->add_flag("--skip-existing", skip_existing,
                   "skip rows whose session label already exists in XNAT");
  submit->add_flag("--append", append, "append to sessions that already exist in XNAT");
  submit->add_flag("--json", as_json, "machine-readable output");

  auto* status = app.add_subcommand("status", "show per-state counts and latest failures");
  status->add_option("job", job_id, "job number (default: all active jobs)");
  status->add_flag("--all", show_all, "include finished jobs");
  status->add_flag("--json", as_json, "machine-readable output");

  auto* list = app.add_subcommand("list", "list all jobs");
  list->add_flag("--json", as_json, "machine-readable output");

  auto* report = app.add_subcommand("report", "print one CSV line per input row of a job");
  report->add_option("job", job_id, "job number")->required();
  report->add_flag("--json", as_json, "machine-readable output");

  auto* watch = app.add_subcommand("watch", "follow a job's progress until it finishes");
  watch->add_option("job", job_id, "job number")->required();
  watch->add_flag("--json", as_json, "one JSON status object per refresh");

  std::map<std::string, CLI::App*> controls;
  for (const char* what : {"cancel", "pause", "resume", "retry"}) {
    const char* help = std::string(what) == "cancel" ? "cancel every unfinished study of a job"
                       : std::string(what) == "pause" ? "stop starting new work for a job"
                       : std::string(what) == "resume" ? "resume a paused job"
                                                       : "re-queue a job's failed studies";
    auto* c = app.add_subcommand(what, help);
    c->add_option("job", job_id, "job number")->required();
    c->add_flag("--json", as_json, "machine-readable output");
    controls[what] = c;
  }

  auto* pacs_cmd = app.add_subcommand("pacs", "PACS diagnostics");
  pacs_cmd->require_subcommand(1);
  auto* echo = pacs_cmd->add_subcommand("echo", "C-ECHO a configured PACS through the daemon");
  echo->add_option("name", pacs_name, "PACS name")->required();
  echo->add_flag("--json", as_json, "machine-readable output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    out << app.help();
    return kOk;
  } catch (const CLI::CallForAllHelp& e) {
    out << app.help("", CLI::AppFormatMode::All);
    return kOk;
  } catch (const CLI::ParseError& e) {
    err << "pacs2xnat: " << e.what() << "\n" << "Run `pacs2xnat --help` for usage.\n";
    return kUsage;
  }

  if (*check) return cmd_check(csv_path, as_json, out, err);

  Runner run{out, err, resolve_socket(socket_flag)};
  json result;
  auto print_json = [&] { out << result.dump(2) << "\n"; };

  if (*submit) {
    std::string bytes;
    try {
      bytes = read_file(csv_path);
    } catch (const std::exception& e) {
      err << "pacs2xnat: " << e.what() << "\n";
      return kUsage;
    }
    json args{{"csv_name", base_name(csv_path)}, {"csv_base64", ipc::bytes_value(bytes)},
              {"project", project}, {"pacs", pacs}};
    if (!modality.empty()) args["modality"] = modality;
    if (!series_description.empty()) args["series_description"] = series_description;
    if (strict) args["strict"] = true;
    if (skip_existing) args["skip_existing"] = true;
    if (append) args["append"] = true;
    if (dry_run) {
      if (int rc = run.request("dry_run", args, result, 3600)) return rc;
      if (as_json) {
        print_json();
      } else {
        out << result.value("text", std::string()) << "\n";
      }
      return result.value("ok", true) ? kOk : kRefused;
    }
    if (int rc = run.request("submit", args, result, 600)) return rc;
    if (as_json) {
      print_json();
    } else {
      out << "job " << result["job"] << " queued: " << result["items"] << " studies from "
          << base_name(csv_path) << " into project " << project << " (follow it with `pacs2xnat watch "
          << result["job"] << "`)\n";
      for (const auto& w : result.value("warnings", json::array())) {
        out << "warning: " << w.get<std::string>() << "\n";
      }
    }
    return kOk;
  }
  if (*status || *list) {
    json args = json::object();
    if (*status && job_id > 0) args["job"] = job_id;
    if (show_all) args["all"] = true;
    if (int rc = run.request(*status ? "status" : "list", args, result)) return rc;
    if (as_json) {
      print_json();
      return kOk;
    }
    const json& jobs = result.at("jobs");
    if (jobs.empty()) out << (*status ? "no active jobs (see `pacs2xnat list`)\n" : "no jobs\n");
    for (const auto& j : jobs) out << (*status ? format_job_status(j) : format_job_line(j) + "\n");
    return kOk;
  }
  if (*report) {
    if (int rc = run.request("report", json{{"job", job_id}}, result)) return rc;
    if (as_json) {
      print_json();
    } else {
      out << result.value("csv", std::string());
    }
    return kOk;
  }
  if (*watch) return watch_job(run.socket, job_id, as_json, out, err);
  for (const auto& [what, sub] : controls) {
    if (!*sub) continue;
    if (int rc = run.request(what, json{{"job", job_id}}, result)) return rc;
    if (as_json) {
      print_json();
    } else if (what == "cancel") {
      out << "job " << job_id << ": " << result.value("cancelled", 0) << " studies cancelled\n";
    } else if (what == "retry") {
      out << "job " << job_id << ": " << result.value("requeued", 0) << " failed studies re-queued\n";
    } else {
      out << "job " << job_id << " " << (what == "pause" ? "paused" : "resumed") << "\n";
    }
    return kOk;
  }
  if (*echo) {
    if (int rc = run.request("pacs_echo", json{{"pacs", pacs_name}}, result, 120)) return rc;
    if (as_json) {
      print_json();
    } else {
      out << "C-ECHO " << pacs_name << " (" << result.value("ae_title", "") << "@"
          << result.value("host", "") << ":" << result.value("port", 0) << "): ok in "
          << result.value("ms", 0.0) << " ms\n";
    }
    return kOk;
  }
  return kUsage;
}

}  // namespace p2x::client

#include "client/cli.hpp"

#include <cstdlib>
#include <map>
#include <ostream>
#include <utility>
#include <optional>

#include <CLI/CLI.hpp>

#include "client/format.hpp"
#include "client/upload.hpp"
#include "client/watch.hpp"
#include "config/config.hpp"
#include "intake/intake.hpp"
#include "ipc/client.hpp"
#include "jobopts/jobopts.hpp"

namespace p2x::client {

using nlohmann::json;

namespace {

constexpr const char* kDefaultSocket = "/run/pacs2xnat/pacs2xnatd.sock";

std::string resolve_socket(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("PACS2XNAT_SOCKET"); env && *env) return env;
  return kDefaultSocket;
}

// The CSV's name as a job records it: the file's name, or "stdin".
std::string base_name(const std::string& path) {
  if (is_standard_input(path)) return "stdin";
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// ---------------------------------------------------------------------------------------------
// Argument parsing

// What the command line asked for (CLI11 fills it in).
struct Options {
  std::string socket_flag;
  bool as_json = false;
  std::int64_t job_id = 0;
  std::string csv_path, pacs_name;
  bool dry_run = false, show_all = false;
  jobopts::SubmitArgs submit;  // the flags jobopts' schema defines
};

// The subcommands, to tell which one was given.
struct Subcommands {
  CLI::App *check = nullptr, *submit = nullptr, *status = nullptr, *list = nullptr,
           *report = nullptr, *watch = nullptr, *echo = nullptr;
  std::map<std::string, CLI::App*> controls;  // cancel, pause, resume, retry
};

// The submit's flags, as jobopts' schema defines them (the CSV's name and bytes are not flags).
void add_submit_arguments(CLI::App& submit, jobopts::SubmitArgs& args) {
  std::map<std::string, CLI::Option*> added;
  for (const jobopts::Spec& spec : jobopts::specs()) {
    if (!spec.cli) continue;
    CLI::Option* opt = spec.flag_in ? submit.add_flag(spec.cli, *spec.flag_in(args), spec.help)
                                    : submit.add_option(spec.cli, *spec.text_in(args), spec.help);
    if (spec.required) opt->required();
    if (spec.excludes && added.count(spec.excludes)) opt->excludes(added.at(spec.excludes));
    added[spec.key] = opt;
  }
}

void add_check_and_submit(CLI::App& app, Options& o, Subcommands& s) {
  s.check = app.add_subcommand("check", "validate a CSV locally (no daemon needed)");
  s.check->add_option("file", o.csv_path, "CSV file (- or /dev/stdin: standard input)")->required();
  s.check->add_flag("--json", o.as_json, "machine-readable output");

  auto* submit = s.submit = app.add_subcommand("submit", "validate a CSV and queue its studies");
  submit->add_option("file", o.csv_path, "CSV file (- or /dev/stdin: standard input)")->required();
  add_submit_arguments(*submit, o.submit);
  submit->add_flag("--dry-run", o.dry_run,
                   "check the project's settings in XNAT, query the PACS "
                   "for every row and print what would be retrieved; "
                   "queue nothing");
  submit->add_flag("--json", o.as_json, "machine-readable output");
}

void add_views(CLI::App& app, Options& o, Subcommands& s) {
  s.status = app.add_subcommand("status", "show per-state counts and latest failures");
  s.status->add_option("job", o.job_id, "job number (default: all active jobs)");
  s.status->add_flag("--all", o.show_all, "include finished jobs");
  s.status->add_flag("--json", o.as_json, "machine-readable output");

  s.list = app.add_subcommand("list", "list all jobs");
  s.list->add_flag("--json", o.as_json, "machine-readable output");

  s.report = app.add_subcommand("report", "print one CSV line per input row of a job");
  s.report->add_option("job", o.job_id, "job number")->required();
  s.report->add_flag("--json", o.as_json, "machine-readable output");

  s.watch = app.add_subcommand("watch", "follow a job's progress until it finishes");
  s.watch->add_option("job", o.job_id, "job number")->required();
  s.watch->add_flag("--json", o.as_json, "one JSON status object per refresh");
}

void add_controls_and_pacs(CLI::App& app, Options& o, Subcommands& s) {
  const std::pair<const char*, const char*> controls[] = {
      {"cancel", "cancel every unfinished study of a job"},
      {"pause", "stop starting new work for a job"},
      {"resume", "resume a paused job"},
      {"retry", "re-queue a job's failed studies"}};
  for (const auto& [what, help] : controls) {
    auto* c = app.add_subcommand(what, help);
    c->add_option("job", o.job_id, "job number")->required();
    c->add_flag("--json", o.as_json, "machine-readable output");
    s.controls[what] = c;
  }

  auto* pacs_cmd = app.add_subcommand("pacs", "PACS diagnostics");
  pacs_cmd->require_subcommand(1);
  s.echo = pacs_cmd->add_subcommand("echo", "C-ECHO a configured PACS through the daemon");
  s.echo->add_option("name", o.pacs_name, "PACS name")->required();
  s.echo->add_flag("--json", o.as_json, "machine-readable output");
}

// Parses argv; returns the exit code when the run ends here (help printed, usage error).
std::optional<int> parse(CLI::App& app, int argc, char** argv, std::ostream& out,
                         std::ostream& err) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kOk;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kOk;
  } catch (const CLI::ParseError& e) {
    err << "pacs2xnat: " << e.what() << "\n"
        << "Run `pacs2xnat --help` for usage.\n";
    return kUsage;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// The commands

struct Runner {
  const Options& opt;
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
    return read_answer(response, result, err);
  }

  // Prints the result as JSON with --json, else the text that `format()` returns.
  template <class Format>
  int print(const json& result, Format format) {
    if (opt.as_json) {
      out << result.dump(2) << "\n";
    } else {
      out << format();
    }
    return kOk;
  }
};

json problems_json(const std::vector<intake::Problem>& problems) {
  json out = json::array();
  for (const auto& p : problems) {
    out.push_back({{"line", p.line},
                   {"column", p.column},
                   {"column_name", p.column_name},
                   {"message", p.message}});
  }
  return out;
}

// "PATH: line 2, column 1 (Patient ID): warning: ..." for each warning of a parsed CSV.
void print_warnings(const std::string& path, const intake::Result& r, std::ostream& err) {
  for (const auto& w : r.warnings) {
    intake::Problem shown = w;
    shown.message = "warning: " + w.message;
    err << path << ": " << intake::format(shown) << "\n";
  }
}

json submit_args(const Options& o, const std::string& csv_bytes);

// The bytes of the request line around the CSV's base64 text (which the daemon's limit counts).
std::uint64_t request_overhead(const std::string& cmd, const Options& o) {
  const json request = ipc::make_request(cmd, submit_args(o, std::string()));
  return request.dump(-1, ' ', false, json::error_handler_t::replace).size();
}

int cmd_check(const Options& o, const std::string& socket, std::ostream& out, std::ostream& err) {
  std::string bytes;
  if (int rc = read_csv_for_check(o.csv_path, socket, request_overhead("submit", o), bytes, err)) {
    return rc;
  }
  const std::string path = shown_name(o.csv_path);
  intake::Result r = intake::parse_csv(bytes);
  if (o.as_json) {
    out << json{{"file", path},
                {"rows", r.rows.size()},
                {"problems", problems_json(r.problems)},
                {"warnings", problems_json(r.warnings)}}
               .dump(2)
        << "\n";
    return r.ok() ? kOk : kRefused;
  }
  print_warnings(path, r, err);
  if (r.ok()) {
    std::size_t acc = 0, pd = 0, uid = 0;
    for (const auto& row : r.rows) {
      (row.kind == intake::RowKind::Accession     ? acc
       : row.kind == intake::RowKind::PatientDate ? pd
                                                  : uid)++;
    }
    out << path << ": " << r.rows.size() << " rows OK (" << acc << " by accession, " << pd
        << " by patient ID + date, " << uid << " by Study Instance UID)\n";
  } else {
    for (const auto& p : r.problems) err << path << ": " << intake::format(p) << "\n";
    err << path << ": " << r.problems.size() << " problem(s); fix them before submitting\n";
  }
  return r.ok() ? kOk : kRefused;
}

json submit_args(const Options& o, const std::string& csv_bytes) {
  jobopts::SubmitArgs args = o.submit;
  args.csv_name = base_name(o.csv_path);
  args.csv_base64 = ipc::bytes_value(csv_bytes).get<std::string>();
  return jobopts::to_json(args);
}

// Reads the CSV a submit sends, within the limit the daemon says (its ping answer; the default
// when it does not answer in time: the submit itself then says whether the daemon is reachable),
// and warns about formula-like values. Returns kOk with `bytes` set, else the exit code after a
// message.
int read_submitted_csv(Runner& run, const std::string& cmd, std::string& bytes) {
  const Options& o = run.opt;
  std::optional<std::uint64_t> daemon_limit;
  try {
    daemon_limit = daemon_request_limit(run.socket, 10);
  } catch (const ipc::Unreachable&) {
  }
  const std::uint64_t limit =
      daemon_limit.value_or(static_cast<std::uint64_t>(config::Limits{}.max_request_bytes));
  const LimitSource source = daemon_limit ? LimitSource::Daemon : LimitSource::Default;
  if (int rc = read_csv_for_request(o.csv_path, limit, source, request_overhead(cmd, o), bytes,
                                    run.err)) {
    return rc;
  }
  // The daemon validates the CSV again and refuses it on a problem; warnings are ours to show.
  print_warnings(shown_name(o.csv_path), intake::parse_csv(bytes), run.err);
  return kOk;
}

int cmd_submit(Runner& run) {
  const Options& o = run.opt;
  std::string bytes;
  if (int rc = read_submitted_csv(run, o.dry_run ? "dry_run" : "submit", bytes)) return rc;
  const json args = submit_args(o, bytes);
  json result;
  if (o.dry_run) {
    if (int rc = run.request("dry_run", args, result, 3600)) return rc;
    run.print(result, [&] { return result.value("text", std::string()) + "\n"; });
    return result.value("ok", true) ? kOk : kRefused;
  }
  if (int rc = run.request("submit", args, result, 600)) return rc;
  return run.print(
      result, [&] { return format_submitted(result, base_name(o.csv_path), o.submit.project); });
}

int cmd_jobs(Runner& run, JobsView view) {
  json args = json::object();
  if (view == JobsView::Status && run.opt.job_id > 0) args["job"] = run.opt.job_id;
  if (run.opt.show_all) args["all"] = true;
  json result;
  if (int rc = run.request(view == JobsView::Status ? "status" : "list", args, result)) return rc;
  return run.print(result, [&] { return format_jobs(result, view); });
}

int cmd_report(Runner& run) {
  json result;
  if (int rc = run.request("report", json{{"job", run.opt.job_id}}, result)) return rc;
  return run.print(result, [&] { return format_report(result); });
}

int cmd_control(Runner& run, const std::string& what) {
  json result;
  if (int rc = run.request(what, json{{"job", run.opt.job_id}}, result)) return rc;
  return run.print(result, [&] { return format_control(what, run.opt.job_id, result); });
}

int cmd_echo(Runner& run) {
  json result;
  if (int rc = run.request("pacs_echo", json{{"pacs", run.opt.pacs_name}}, result, 120)) return rc;
  return run.print(result, [&] { return format_echo(run.opt.pacs_name, result); });
}

int dispatch(const Subcommands& s, const Options& o, std::ostream& out, std::ostream& err) {
  if (*s.check) return cmd_check(o, resolve_socket(o.socket_flag), out, err);
  Runner run{o, out, err, resolve_socket(o.socket_flag)};
  if (*s.submit) return cmd_submit(run);
  if (*s.status) return cmd_jobs(run, JobsView::Status);
  if (*s.list) return cmd_jobs(run, JobsView::List);
  if (*s.report) return cmd_report(run);
  if (*s.watch) return watch_job(run.socket, o.job_id, o.as_json, out, err);
  for (const auto& [what, sub] : s.controls) {
    if (*sub) return cmd_control(run, what);
  }
  if (*s.echo) return cmd_echo(run);
  return kUsage;
}

}  // namespace

int read_answer(const json& response, json& result, std::ostream& err) {
  if (!response.value("ok", false)) {
    const json e = response.value("error", json::object());
    err << "pacs2xnat: " << e.value("message", std::string("request refused")) << "\n";
    return kRefused;
  }
  result = response.value("result", json::object());
  return kOk;
}

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"pacs2xnat - queue and follow bulk DICOM imports from a PACS into XNAT"};
  app.require_subcommand(1);
  Options options;
  app.add_option("--socket", options.socket_flag,
                 "daemon socket (default: $PACS2XNAT_SOCKET, else /run/pacs2xnat/pacs2xnatd.sock)");
  Subcommands subcommands;
  add_check_and_submit(app, options, subcommands);
  add_views(app, options, subcommands);
  add_controls_and_pacs(app, options, subcommands);
  if (auto rc = parse(app, argc, argv, out, err)) return *rc;
  return dispatch(subcommands, options, out, err);
}

}  // namespace p2x::client

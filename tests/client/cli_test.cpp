// run_cli end to end without a daemon process: exit codes for usage errors, refusals and an
// unreachable daemon, the requests each command sends, and what it prints - against an
// in-process ipc::Server whose answers come from the daemon's own command handlers
// (lib/service's register_commands/register_operations over a temporary store and config:
// tests/service/fixture.hpp), so a change to what the daemon answers shows here.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli_run.hpp"
#include "client/cli.hpp"
#include "client/format.hpp"
#include "ipc/protocol.hpp"
#include "ipc/server.hpp"
#include "pacs/pacs.hpp"
#include "service/fixture.hpp"
#include "service/operations.hpp"
#include "standin.hpp"
#include "support/pacs_fixture.hpp"
#include "support/temp_dir.hpp"
#include "xnat/xnat.hpp"

using namespace p2x::client;
using nlohmann::json;
using p2x::test::CliRun;
using p2x::test::run;
using p2x::test::TempDir;
namespace ipc = p2x::ipc;
namespace store = p2x::store;

namespace {

// The daemon's side of the socket: an ipc::Server whose commands are answered by the daemon's
// own handlers (`handlers`: lib/service over a temporary store, PACS nodes testpacs and
// otherpacs at 127.0.0.1:<pacs_port>); records every request and the answer it got.
class Daemon {
 public:
  explicit Daemon(std::uint16_t pacs_port = 1) : handlers(pacs_port) {}

  // Answers `cmd` with the daemon's handler; `after` runs once the answer is made.
  void serve(const std::string& cmd, std::function<void()> after = {}) {
    dispatcher_.add(cmd, [this, cmd, after](const json& args, const ipc::Peer& peer) {
      // Not handlers.call(): no Catch assertion on the server's thread.
      const json answer = handlers.dispatcher.dispatch(ipc::make_request(cmd, args).dump(), peer);
      {
        std::lock_guard lock(mu_);
        requests_.push_back({{"cmd", cmd}, {"args", args}});
        answers_.push_back(answer);
      }
      if (after) after();
      if (answer.at("ok") != true) {
        throw ipc::CommandError(answer.at("error").at("code").get<std::string>(),
                                answer.at("error").at("message").get<std::string>());
      }
      return answer.at("result");
    });
  }
  void start() { server_ = std::make_unique<ipc::Server>(socket_, dispatcher_, 1 << 20); }
  std::vector<json> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // The daemon's answers ({"ok", "result"} or {"ok", "error"}), in order.
  std::vector<json> answers() {
    std::lock_guard lock(mu_);
    return answers_;
  }
  json last_answer() {
    std::lock_guard lock(mu_);
    REQUIRE_FALSE(answers_.empty());
    return answers_.back();
  }
  // run() with --socket pointing here.
  CliRun cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_});
    return run(std::move(args));
  }

  p2x::service::test::Commands handlers;

 private:
  TempDir dir_{"p2x-client"};
  std::string socket_ = dir_.file("pacs2xnatd.sock");
  ipc::Dispatcher dispatcher_;
  std::unique_ptr<ipc::Server> server_;
  std::mutex mu_;
  std::vector<json> requests_, answers_;
};

// The store's id of the item of CSV row `row` of the job (0: none). No Catch assertions in
// these helpers: they also run on the server's thread.
std::int64_t item_id(Daemon& d, std::int64_t job, int row) {
  for (const auto& it : d.handlers.store.items(job))
    if (it.row == row) return it.id;
  return 0;
}

// Moves the queued item of `row` through every step to verified, as the pipeline does; false if
// a step was refused.
bool verify_row(Daemon& d, std::int64_t job, int row) {
  using S = store::ItemState;
  const S path[] = {S::Queued,    S::Querying, S::Retrieving, S::Retrieved, S::Validating,
                    S::Validated, S::Pushing,  S::Pushed,     S::Verifying, S::Verified};
  const std::int64_t id = item_id(d, job, row);
  for (std::size_t i = 1; i < std::size(path); ++i)
    if (!d.handlers.store.transition(id, path[i - 1], path[i], "test")) return false;
  return id != 0;
}

bool fail_row(Daemon& d, std::int64_t job, int row, const std::string& reason) {
  store::ItemPatch p;
  p.last_error = reason;
  return d.handlers.store.transition(item_id(d, job, row), store::ItemState::Queued,
                                     store::ItemState::Failed, reason, p);
}

}  // namespace

TEST_CASE("usage errors exit 2 with a hint, --help exits 0", "[client][exit]") {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"frobnicate"},
                                             {"submit"},
                                             {"submit", "x.csv", "--pacs", "P"},
                                             {"status", "--bogus"},
                                             {"report"},
                                             {"watch", "one"},
                                             {"pacs"},
                                             {"cancel"}}) {
    CliRun r = run(args);
    INFO(json(args).dump() << " -> " << r.err);
    CHECK(r.code == kUsage);
    CHECK(r.err.find("Run `pacs2xnat --help` for usage.") != std::string::npos);
    CHECK(r.out.empty());
  }
  CliRun help = run({"--help"});
  CHECK(help.code == kOk);
  for (const char* sub : {"check", "submit", "status", "list", "report", "watch", "cancel", "pause",
                          "resume", "retry", "pacs"}) {
    CHECK(help.out.find(sub) != std::string::npos);
  }
}

TEST_CASE("check is local: 0 for a good CSV, 1 with its problems, 2 without a file",
          "[client][exit]") {
  TempDir t("p2x-client");
  std::ofstream(t.file("good.csv"))
      << "Accession Number,Patient ID,Study Date,Study Instance UID,Session\n"
         "A1,,,,E1\n,P2,20240101,,E2\n,,,1.2.3,E3\n";
  CliRun good = run({"--socket", t.file("none.sock"), "check", t.file("good.csv")});
  CHECK(good.code == kOk);
  CHECK(good.out == t.file("good.csv") +
                        ": 3 rows OK (1 by accession, 1 by patient ID + date, "
                        "1 by Study Instance UID)\n");

  std::ofstream(t.file("bad.csv")) << "Accession Number,Session\nA1,E1\nA2,E1\n";
  CliRun bad = run({"check", t.file("bad.csv")});
  CHECK(bad.code == kRefused);
  // Both lines of a duplicate session label are named.
  CHECK(bad.err.find(t.file("bad.csv") + ": line 2, column 2 (Session): ") == 0);
  CHECK(bad.err.find("\n" + t.file("bad.csv") + ": line 3, column 2 (Session): ") !=
        std::string::npos);
  CHECK(bad.err.find(t.file("bad.csv") + ": 2 problem(s); fix them before submitting\n") !=
        std::string::npos);
  CHECK(bad.out.empty());
  CliRun bad_json = run({"check", t.file("bad.csv"), "--json"});
  CHECK(bad_json.code == kRefused);
  json j = json::parse(bad_json.out);
  CHECK(j.at("file") == t.file("bad.csv"));
  CHECK(j.at("rows") == 0);
  REQUIRE(j.at("problems").size() == 2);
  CHECK(j.at("problems")[1].at("line") == 3);
  CHECK(j.at("problems")[1].at("column_name") == "Session");

  CliRun missing = run({"check", t.file("absent.csv")});
  CHECK(missing.code == kUsage);
  CHECK(missing.err ==
        "pacs2xnat: cannot read " + t.file("absent.csv") + ": No such file or directory\n");
}

TEST_CASE("no daemon on the socket exits 3 and says how to start one", "[client][exit]") {
  TempDir t("p2x-client");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"list"}, {"status", "1"}, {"report", "1"}, {"cancel", "1"}, {"pacs", "echo", "P"}}) {
    std::vector<std::string> full{"--socket", t.file("none.sock")};
    full.insert(full.end(), args.begin(), args.end());
    CliRun r = run(full);
    INFO(json(args).dump() << " -> " << r.err);
    CHECK(r.code == kUnreachable);
    CHECK(r.err.find(t.file("none.sock")) != std::string::npos);
    CHECK(r.err.find("Is the daemon running?") != std::string::npos);
  }
  CliRun watch = run({"--socket", t.file("none.sock"), "watch", "1"});
  CHECK(watch.code == kUnreachable);

  setenv("PACS2XNAT_SOCKET", t.file("env.sock").c_str(), 1);
  CliRun env = run({"list"});
  unsetenv("PACS2XNAT_SOCKET");
  CHECK(env.code == kUnreachable);
  CHECK(env.err.find(t.file("env.sock")) != std::string::npos);
}

TEST_CASE("a refused request exits 1 with the daemon's message", "[client][exit]") {
  Daemon d;
  for (const char* cmd : {"status", "report", "pause", "submit", "pacs_echo"}) d.serve(cmd);
  d.start();
  TempDir t("p2x-client");
  std::ofstream(t.file("s.csv")) << "Accession Number\nA1\n";
  // Each with what the daemon's refusal must name.
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"status", "42"}, "no job 42"},
      {{"report", "42"}, "no job 42"},
      {{"pause", "42"}, "no job 42"},
      {{"watch", "42"}, "no job 42"},
      {{"submit", t.file("s.csv"), "-p", "P", "--pacs", "X"}, "unknown PACS \"X\""},
      {{"pacs", "echo", "X"}, "unknown PACS \"X\""}};
  for (const auto& [args, named] : cases) {
    INFO(json(args).dump());
    const std::size_t before = d.answers().size();
    CliRun r = d.cli(args);
    const std::vector<json> answers = d.answers();
    REQUIRE(answers.size() == before + 1);
    REQUIRE(answers.back().at("ok") == false);
    const std::string message = answers.back().at("error").at("message");
    CHECK_THAT(message, Catch::Contains(named));
    CHECK(r.code == kRefused);
    CHECK(r.err == "pacs2xnat: " + message + "\n");
    CHECK(r.out.empty());
  }
  // A command the daemon does not know is refused too.
  CliRun r = d.cli({"list"});
  CHECK(r.code == kRefused);
  CHECK(r.err.find("unknown command \"list\"") != std::string::npos);
}

TEST_CASE("status and list send their arguments and print the daemon's answer", "[client][cli]") {
  Daemon d;
  d.serve("status");
  d.serve("list");
  d.start();
  const std::int64_t job = d.handlers.submit(4);  // ACC1..ACC4 into PROJ1 from testpacs
  REQUIRE(job == 1);
  REQUIRE(verify_row(d, job, 1));
  REQUIRE(fail_row(d, job, 2, "no study with accession ACC2"));
  const std::string line =
      "job 1  active  project PROJ1  pacs testpacs  1/4 verified, 1 failed  (studies.csv, ";

  CliRun status = d.cli({"status", "1", "--all"});
  CHECK(status.code == kOk);
  CHECK(status.out == format_jobs(d.last_answer().at("result"), JobsView::Status));
  CHECK_THAT(status.out, Catch::StartsWith(line));
  CHECK_THAT(status.out, Catch::Contains("\n  states:  failed 1  queued 2  verified 1\n"));
  CHECK_THAT(status.out,
             Catch::Contains("\n    row 2 (line 3, ACC2): no study with accession ACC2\n"));
  CliRun list = d.cli({"list"});
  CHECK(list.code == kOk);
  CHECK(list.out == format_jobs(d.last_answer().at("result"), JobsView::List));
  CHECK_THAT(list.out, Catch::StartsWith(line));
  CliRun as_json = d.cli({"status", "--json"});
  CHECK(json::parse(as_json.out) == d.last_answer().at("result"));

  auto requests = d.requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0] == json{{"cmd", "status"}, {"args", {{"job", 1}, {"all", true}}}});
  CHECK(requests[1] == json{{"cmd", "list"}, {"args", json::object()}});
  CHECK(requests[2] == json{{"cmd", "status"}, {"args", json::object()}});
}

TEST_CASE("submit sends the CSV's bytes and options - dry run prints the daemon's text",
          "[client][cli]") {
  Daemon d;  // its PACS nodes at a closed port: nothing is found in a dry run
  d.serve("submit");
  d.serve("dry_run");
  d.start();
  TempDir t("p2x-client");
  const std::string csv = "Accession Number\r\nA\xc3\xa9\r\n";  // sent as its bytes (base64)
  std::ofstream(t.file("s.csv"), std::ios::binary) << csv;

  CliRun r = d.cli({"submit", t.file("s.csv"), "-p", "PROJ1", "--pacs", "testpacs", "--modality",
                    "MR", "--series-description", "T1*", "--strict", "--append"});
  INFO(r.err);
  CHECK(r.code == kOk);
  const json submitted = d.last_answer();
  REQUIRE(submitted.at("ok") == true);
  CHECK(r.out == format_submitted(submitted.at("result"), "s.csv", "PROJ1"));
  CHECK_THAT(r.out, Catch::StartsWith("job 1 queued: 1 studies from s.csv into project PROJ1 "
                                      "(follow it with `pacs2xnat watch 1`)\n"));
  const json args = d.requests().at(0).at("args");
  CHECK(ipc::bytes_argument(args, "csv_base64") == csv);
  CHECK(args.at("csv_name") == "s.csv");
  CHECK(args.at("project") == "PROJ1");
  CHECK(args.at("pacs") == "testpacs");
  CHECK(args.at("modality") == "MR");
  CHECK(args.at("series_description") == "T1*");
  CHECK(args.at("strict") == true);
  CHECK_FALSE(args.contains("skip_existing"));
  CHECK(args.at("append") == true);
  // What the daemon made of it: one job of one row, from these bytes.
  const auto jobs = d.handlers.store.jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].project == "PROJ1");
  CHECK(d.handlers.store.items(jobs[0].id).size() == 1);
  // Skipping existing sessions and appending to them exclude each other: a usage error, sent
  // nowhere.
  CliRun both = d.cli({"submit", t.file("s.csv"), "-p", "PROJ1", "--pacs", "testpacs",
                       "--skip-existing", "--append"});
  CHECK(both.code == kUsage);
  CHECK_THAT(both.err, Catch::Contains("excludes"));
  CHECK(d.requests().size() == 1);

  // The dry run finds nothing (the PACS is down): the daemon's text, and exit 1.
  CliRun dry = d.cli({"submit", t.file("s.csv"), "-p", "PROJ1", "--pacs", "testpacs", "--dry-run"});
  const json dry_answer = d.last_answer();
  REQUIRE(dry_answer.at("ok") == true);
  CHECK(dry_answer.at("result").at("ok") == false);
  CHECK(dry.code == kRefused);
  CHECK(dry.out == dry_answer.at("result").at("text").get<std::string>() + "\n");
  CHECK_THAT(dry.out, Catch::Contains("0 of 1 rows found"));
  CHECK(d.requests().at(1).at("cmd") == "dry_run");
  CHECK(d.handlers.store.jobs().size() == 1);  // a dry run queues nothing

  CliRun missing = d.cli({"submit", t.file("absent.csv"), "-p", "PROJ1", "--pacs", "testpacs"});
  CHECK(missing.code == kUsage);

  // Bytes that are not UTF-8 reach the daemon as they are, which refuses them by line.
  std::ofstream(t.file("latin1.csv"), std::ios::binary) << "Accession Number\r\nA\xe9\r\n";
  CliRun latin1 = d.cli({"submit", t.file("latin1.csv"), "-p", "PROJ1", "--pacs", "testpacs"});
  CHECK(ipc::bytes_argument(d.requests().back().at("args"), "csv_base64") ==
        "Accession Number\r\nA\xe9\r\n");
  CHECK(latin1.code == kRefused);
  CHECK(latin1.err ==
        "pacs2xnat: " + d.last_answer().at("error").at("message").get<std::string>() + "\n");
  CHECK_THAT(latin1.err, Catch::Contains("line 2") && Catch::Contains("UTF-8"));
  CHECK(d.handlers.store.jobs().size() == 1);
}

TEST_CASE(
    "submit --no-anonymisation-check is sent as the job option, the answer's checks are "
    "printed",
    "[client][cli]") {
  // The daemon's pre-flight against the XNAT stand-in, wired as the daemon wires it; project P
  // has no anonymisation script.
  TempDir x("p2x-client-xnat");
  p2x::test::XnatStandin standin{x.file("xnat"), {"admin:admin"}, {"P"}};
  standin.admin("POST", "/_admin/anonymisation?mode=off");
  p2x::xnat::Settings settings;
  settings.url = standin.url();
  settings.timeout_s = 10;
  p2x::xnat::Client xnat{settings, p2x::xnat::Credentials{"admin", "admin"}};
  Daemon d;
  d.handlers.ctx.hooks.preflight = [&xnat](const json& args,
                                           const std::vector<store::NewItem>& items) {
    return p2x::service::xnat_preflight(xnat, args, items);
  };
  d.serve("submit");
  d.start();
  TempDir t("p2x-client");
  std::ofstream(t.file("s.csv"), std::ios::binary) << "Accession Number\nA1\n";
  CliRun plain = d.cli({"submit", t.file("s.csv"), "-p", "P", "--pacs", "testpacs"});
  CHECK(plain.code == kRefused);
  CHECK(plain.err ==
        "pacs2xnat: " + d.last_answer().at("error").at("message").get<std::string>() + "\n");
  CHECK_THAT(plain.err, Catch::Contains("anonymisation"));
  CliRun waived = d.cli(
      {"submit", t.file("s.csv"), "-p", "P", "--pacs", "testpacs", "--no-anonymisation-check"});
  INFO(waived.err);
  CHECK(waived.code == kOk);
  CHECK(waived.out == format_submitted(d.last_answer().at("result"), "s.csv", "P"));
  CHECK_THAT(waived.out, Catch::Contains("\nXNAT anonymisation: not checked") &&
                             Catch::Contains("\nXNAT project P "));
  REQUIRE(d.requests().size() == 2);
  CHECK_FALSE(d.requests().at(0).at("args").contains("no_anonymisation_check"));
  CHECK(d.requests().at(1).at("args").at("no_anonymisation_check") == true);
}

TEST_CASE("report, controls and pacs echo print the daemon's answers", "[client][cli]") {
  p2x::pacs::init_network();
  const std::uint16_t port = p2x::test::free_port();
  p2x::pacs::StorageScp scp("TESTPACS", port, 2);  // answers C-ECHO for testpacs
  scp.start();
  Daemon d(port);
  for (const char* cmd : {"report", "pause", "resume", "cancel", "pacs_echo"}) d.serve(cmd);
  d.start();
  const std::int64_t job = d.handlers.submit(4);
  REQUIRE(verify_row(d, job, 1));

  CliRun report = d.cli({"report", "1"});
  CHECK(report.code == kOk);
  CHECK(report.out == d.last_answer().at("result").at("csv").get<std::string>());
  CHECK_THAT(report.out, Catch::StartsWith("row,line,"));
  CHECK(std::count(report.out.begin(), report.out.end(), '\n') == 5);  // header + 4 rows
  CHECK(d.cli({"pause", "1"}).out == "job 1 paused\n");
  const CliRun resumed = d.cli({"resume", "1", "--json"});
  CHECK(json::parse(resumed.out) == d.last_answer().at("result"));
  CHECK(d.last_answer().at("result").at("paused") == false);
  CHECK(d.cli({"cancel", "1"}).out == "job 1: 3 studies cancelled\n");  // all but the verified
  CliRun echo = d.cli({"pacs", "echo", "testpacs"});
  CHECK(echo.code == kOk);
  const json echoed = d.last_answer().at("result");
  CHECK(echo.out == "C-ECHO testpacs (TESTPACS@127.0.0.1:" + std::to_string(port) + "): ok in " +
                        std::to_string(echoed.at("ms").get<long long>()) + " ms\n");
  auto requests = d.requests();
  REQUIRE(requests.size() == 5);
  for (int i = 0; i < 4; ++i) CHECK(requests[i].at("args") == json{{"job", 1}});
  CHECK(requests[4].at("args") == json{{"pacs", "testpacs"}});
}

TEST_CASE("watch follows a job until it finishes - failures exit 1", "[client][watch]") {
  const bool with_failure = GENERATE(false, true);
  Daemon d;
  const std::int64_t job = d.handlers.submit(2);
  REQUIRE(verify_row(d, job, 1));
  // After the daemon's first answer the job finishes: row 2 verified, or failed.
  std::atomic<int> calls{0};
  std::atomic<bool> finished{false};
  d.serve("status", [&] {
    if (++calls != 1) return;
    finished = with_failure ? fail_row(d, job, 2, "no study") : verify_row(d, job, 2);
  });
  d.start();
  CliRun r = d.cli({"watch", "1"});
  CHECK(finished);
  CHECK(r.code == (with_failure ? kRefused : kOk));
  CHECK(calls == 2);
  for (const auto& request : d.requests()) CHECK(request.at("args") == json{{"job", 1}});
  CHECK(r.out == std::string("job 1 1/2 verified, 0 B moved\n") +
                     (with_failure ? "job 1 1/2 verified, 1 failed, 0 B moved\n"
                                   : "job 1 2/2 verified, 0 B moved\n"));
}

// run_cli end to end without a daemon process: exit codes for usage errors, refusals and an
// unreachable daemon, the requests each command sends, and what it prints - against an
// in-process ipc::Server answering with canned handlers.
#include <stdlib.h>

#include <atomic>
#include <fstream>
#include <functional>
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
#include "support/temp_dir.hpp"

using namespace p2x::client;
using nlohmann::json;
using p2x::test::CliRun;
using p2x::test::run;
using p2x::test::TempDir;
namespace ipc = p2x::ipc;

namespace {

// The daemon's side of the socket: an ipc::Server with handlers the test gives; records every
// request it answers.
class FakeDaemon {
 public:
  void on(const std::string& cmd, std::function<json(const json&)> handler) {
    dispatcher_.add(cmd, [this, cmd, handler](const json& args, const ipc::Peer&) {
      {
        std::lock_guard lock(mu_);
        requests_.push_back({{"cmd", cmd}, {"args", args}});
      }
      return handler(args);
    });
  }
  void start() { server_ = std::make_unique<ipc::Server>(socket_, dispatcher_, 1 << 20); }
  const std::string& socket() const { return socket_; }
  std::vector<json> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // run() with --socket pointing here.
  CliRun cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_});
    return run(std::move(args));
  }

 private:
  TempDir dir_{"p2x-client"};
  std::string socket_ = dir_.file("pacs2xnatd.sock");
  ipc::Dispatcher dispatcher_;
  std::unique_ptr<ipc::Server> server_;
  std::mutex mu_;
  std::vector<json> requests_;
};

json summary(std::int64_t id, const std::string& state, std::int64_t verified,
             std::int64_t failed, std::int64_t total) {
  return json{{"job", id}, {"project", "PROJ1"}, {"pacs", "testpacs"},
              {"csv_name", "studies.csv"}, {"created_at", 1704067200}, {"state", state},
              {"paused", false}, {"total", total},
              {"counts", {{"queued", total - verified - failed}, {"verified", verified},
                          {"failed", failed}, {"cancelled", 0}}},
              {"instances", {{"expected", 0}}}, {"bytes", 0},
              {"latest_failures", json::array()}};
}

}  // namespace

TEST_CASE("usage errors exit 2 with a hint, --help exits 0", "[client][exit]") {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {}, {"frobnicate"}, {"submit"}, {"submit", "x.csv", "--pacs", "P"},
           {"status", "--bogus"}, {"report"}, {"watch", "one"}, {"pacs"}, {"cancel"}}) {
    CliRun r = run(args);
    INFO(json(args).dump() << " -> " << r.err);
    CHECK(r.code == kUsage);
    CHECK(r.err.find("Run `pacs2xnat --help` for usage.") != std::string::npos);
    CHECK(r.out.empty());
  }
  CliRun help = run({"--help"});
  CHECK(help.code == kOk);
  for (const char* sub : {"check", "submit", "status", "list", "report", "watch", "cancel",
                          "pause", "resume", "retry", "pacs"}) {
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
  CHECK(good.out == t.file("good.csv") + ": 3 rows OK (1 by accession, 1 by patient ID + date, "
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
  FakeDaemon d;
  for (const char* cmd : {"status", "report", "pause", "submit", "pacs_echo"}) {
    d.on(cmd, [](const json&) -> json {
      throw ipc::CommandError(ipc::code::not_found, "no job 42 (see `pacs2xnat list`)");
    });
  }
  d.start();
  TempDir t("p2x-client");
  std::ofstream(t.file("s.csv")) << "Accession Number\nA1\n";
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"status", "42"}, {"report", "42"}, {"pause", "42"}, {"watch", "42"},
           {"submit", t.file("s.csv"), "-p", "P", "--pacs", "X"}, {"pacs", "echo", "X"}}) {
    CliRun r = d.cli(args);
    INFO(json(args).dump());
    CHECK(r.code == kRefused);
    CHECK(r.err == "pacs2xnat: no job 42 (see `pacs2xnat list`)\n");
    CHECK(r.out.empty());
  }
  // A command the daemon does not know is refused too.
  CliRun r = d.cli({"list"});
  CHECK(r.code == kRefused);
  CHECK(r.err.find("unknown command \"list\"") != std::string::npos);
}

TEST_CASE("status and list send their arguments and print the answer", "[client][cli]") {
  const json answer{{"jobs", {summary(3, "active", 1, 1, 4)}}};
  FakeDaemon d;
  d.on("status", [&](const json&) { return answer; });
  d.on("list", [&](const json&) { return answer; });
  d.start();

  CliRun status = d.cli({"status", "3", "--all"});
  CHECK(status.code == kOk);
  CHECK(status.out == format_jobs(answer, JobsView::Status));
  CliRun list = d.cli({"list"});
  CHECK(list.code == kOk);
  CHECK(list.out == format_jobs(answer, JobsView::List));
  CliRun as_json = d.cli({"status", "--json"});
  CHECK(json::parse(as_json.out) == answer);

  auto requests = d.requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0] == json{{"cmd", "status"}, {"args", {{"job", 3}, {"all", true}}}});
  CHECK(requests[1] == json{{"cmd", "list"}, {"args", json::object()}});
  CHECK(requests[2] == json{{"cmd", "status"}, {"args", json::object()}});
}

TEST_CASE("submit sends the CSV's bytes and options - dry run prints the daemon's text",
          "[client][cli]") {
  FakeDaemon d;
  d.on("submit", [](const json&) {
    return json{{"job", 9}, {"items", 1}, {"warnings", {"line 2: odd"}}};
  });
  d.on("dry_run", [](const json& args) {
    return json{{"ok", !args.contains("modality")}, {"text", "1 of 1 rows found"}};
  });
  d.start();
  TempDir t("p2x-client");
  const std::string csv = "Accession Number\r\nA\xe9\r\n";  // not UTF-8: sent as base64
  std::ofstream(t.file("s.csv"), std::ios::binary) << csv;

  CliRun r = d.cli({"submit", t.file("s.csv"), "-p", "PROJ1", "--pacs", "main", "--modality",
                    "MR", "--series-description", "T1*", "--strict", "--append"});
  CHECK(r.code == kOk);
  CHECK(r.out == format_submitted(json{{"job", 9}, {"items", 1}, {"warnings", {"line 2: odd"}}},
                                  "s.csv", "PROJ1"));
  const json args = d.requests().at(0).at("args");
  CHECK(ipc::bytes_argument(args, "csv_base64") == csv);
  CHECK(args.at("csv_name") == "s.csv");
  CHECK(args.at("project") == "PROJ1");
  CHECK(args.at("pacs") == "main");
  CHECK(args.at("modality") == "MR");
  CHECK(args.at("series_description") == "T1*");
  CHECK(args.at("strict") == true);
  CHECK_FALSE(args.contains("skip_existing"));
  CHECK(args.at("append") == true);
  // Skipping existing sessions and appending to them exclude each other: a usage error, sent
  // nowhere.
  CliRun both = d.cli({"submit", t.file("s.csv"), "-p", "PROJ1", "--pacs", "main",
                       "--skip-existing", "--append"});
  CHECK(both.code == kUsage);
  CHECK_THAT(both.err, Catch::Contains("excludes"));
  CHECK(d.requests().size() == 1);

  CliRun dry = d.cli({"submit", t.file("s.csv"), "-p", "PROJ1", "--pacs", "main", "--dry-run"});
  CHECK(dry.code == kOk);
  CHECK(dry.out == "1 of 1 rows found\n");
  CliRun dry_bad = d.cli({"submit", t.file("s.csv"), "-p", "PROJ1", "--pacs", "main",
                          "--dry-run", "--modality", "CT"});
  CHECK(dry_bad.code == kRefused);
  CHECK(d.requests().at(1).at("cmd") == "dry_run");

  CliRun missing = d.cli({"submit", t.file("absent.csv"), "-p", "PROJ1", "--pacs", "main"});
  CHECK(missing.code == kUsage);
}

TEST_CASE("submit --no-anonymisation-check is sent as the job option, the answer's checks are "
          "printed", "[client][cli]") {
  FakeDaemon d;
  const json answer{{"job", 4}, {"items", 1}, {"warnings", json::array()},
                    {"checks", {"anonymisation: not checked (--no-anonymisation-check)",
                                "project P archives automatically (prearchive_code 4): into the "
                                "archive"}}};
  d.on("submit", [&](const json&) { return answer; });
  d.start();
  TempDir t("p2x-client");
  std::ofstream(t.file("s.csv"), std::ios::binary) << "Accession Number\nA1\n";
  CliRun plain = d.cli({"submit", t.file("s.csv"), "-p", "P", "--pacs", "main"});
  CliRun waived = d.cli({"submit", t.file("s.csv"), "-p", "P", "--pacs", "main",
                         "--no-anonymisation-check"});
  CHECK(waived.code == kOk);
  CHECK_THAT(waived.out, Catch::Contains("XNAT anonymisation: not checked") &&
                             Catch::Contains("XNAT project P archives automatically"));
  REQUIRE(d.requests().size() == 2);
  CHECK_FALSE(d.requests().at(0).at("args").contains("no_anonymisation_check"));
  CHECK(d.requests().at(1).at("args").at("no_anonymisation_check") == true);
}

TEST_CASE("report, controls and pacs echo print their answers", "[client][cli]") {
  FakeDaemon d;
  d.on("report", [](const json&) { return json{{"job", 5}, {"csv", "row,line\n1,2\n"}}; });
  d.on("cancel", [](const json&) { return json{{"job", 5}, {"cancelled", 4}}; });
  d.on("resume", [](const json&) { return json{{"job", 5}, {"paused", false}}; });
  d.on("pacs_echo", [](const json&) {
    return json{{"pacs", "main"}, {"ae_title", "PACS"}, {"host", "h"}, {"port", 104}, {"ms", 3}};
  });
  d.start();
  CHECK(d.cli({"report", "5"}).out == "row,line\n1,2\n");
  CHECK(d.cli({"cancel", "5"}).out == "job 5: 4 studies cancelled\n");
  CHECK(json::parse(d.cli({"cancel", "5", "--json"}).out) == json{{"job", 5}, {"cancelled", 4}});
  CHECK(d.cli({"resume", "5"}).out == "job 5 resumed\n");
  CHECK(d.cli({"pacs", "echo", "main"}).out == "C-ECHO main (PACS@h:104): ok in 3 ms\n");
  auto requests = d.requests();
  REQUIRE(requests.size() == 5);
  CHECK(requests[0].at("args") == json{{"job", 5}});
  CHECK(requests[4].at("args") == json{{"pacs", "main"}});
}

TEST_CASE("watch follows a job until it finishes - failures exit 1", "[client][watch]") {
  const bool with_failure = GENERATE(false, true);
  FakeDaemon d;
  std::atomic<int> calls{0};
  d.on("status", [&](const json&) {
    if (++calls == 1) return json{{"jobs", {summary(6, "active", 1, 0, 2)}}};
    return json{{"jobs", {summary(6, "done", with_failure ? 1 : 2, with_failure ? 1 : 0, 2)}}};
  });
  d.start();
  CliRun r = d.cli({"watch", "6"});
  CHECK(r.code == (with_failure ? kRefused : kOk));
  CHECK(calls == 2);
  for (const auto& request : d.requests()) CHECK(request.at("args") == json{{"job", 6}});
  CHECK(r.out == std::string("job 6 1/2 verified, 0 B moved\n") +
                     (with_failure ? "job 6 1/2 verified, 1 failed, 0 B moved\n"
                                   : "job 6 2/2 verified, 0 B moved\n"));
}

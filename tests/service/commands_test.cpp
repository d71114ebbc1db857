// lib/service/commands: submit, status, list, report, items, events and the job controls, driven
// through the ipc::Dispatcher exactly as the socket delivers requests; the answers and the
// store's states are checked.
#include <set>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "ipc/protocol.hpp"
#include "pipeline/options.hpp"
#include "pipeline/steps.hpp"

using namespace p2x::service::test;
using p2x::ipc::CommandError;
using p2x::store::ItemPatch;
using p2x::store::ItemState;
using p2x::store::JobState;
namespace ipc = p2x::ipc;

namespace {

// Fails the item of `row` in the job with `reason` (through the store's state machine).
void fail_row(Commands& c, std::int64_t job, int row, const std::string& reason) {
  for (const auto& it : c.store.items(job)) {
    if (it.row != row) continue;
    ItemPatch p;
    p.last_error = reason;
    REQUIRE(c.store.transition(it.id, ItemState::Queued, ItemState::Failed, reason, p));
    return;
  }
  FAIL("no row " << row);
}

std::multiset<std::string> states_of(Commands& c, std::int64_t job) {
  std::multiset<std::string> out;
  for (const auto& it : c.store.items(job))
    out.insert(std::string(p2x::store::to_string(it.state)));
  return out;
}

}  // namespace

TEST_CASE("submit queues every row and answers what it stored", "[service][submit]") {
  Commands c;
  const std::string csv =
      "Accession Number,Patient ID,Study Date,Study Instance UID,Subject,Session\r\n"
      "ACC1,,,,SUBJ1,SESS1\r\n"
      ",PID2,2024-01-02,,SUBJ2,SESS2\r\n"
      ",,,1.2.3.4,SUBJ3,SESS3\r\n";
  json args = submit_args(csv, "PROJ1", "otherpacs");
  args["modality"] = "MR";
  args["series_description"] = "T1*";
  args["strict"] = true;
  json r = c.ok("submit", args);
  CHECK(r.at("job") == 1);
  CHECK(r.at("items") == 3);
  CHECK(r.at("skipped") == 0);
  CHECK(r.at("warnings") == json::array());
  CHECK(r.at("sha256").get<std::string>().size() == 64);
  CHECK(c.wakes == 1);

  auto job = c.store.job(1);
  REQUIRE(job);
  CHECK(job->project == "PROJ1");
  CHECK(job->pacs == "otherpacs");
  CHECK(job->csv_name == "studies.csv");
  CHECK(job->csv_sha256 == r.at("sha256"));
  CHECK(job->submitted_by == 4242);
  CHECK(job->state == JobState::Active);
  CHECK(json::parse(job->options_json) ==
        json{{"modality", "MR"}, {"series_description", "T1*"}, {"strict", true}});

  auto items = c.store.items(1);
  REQUIRE(items.size() == 3);
  CHECK(items[0].kind == p2x::domain::RowKind::Accession);
  CHECK(items[0].accession == "ACC1");
  CHECK(items[0].line == 2);
  CHECK(items[1].kind == p2x::domain::RowKind::PatientDate);
  CHECK(items[1].patient_id == "PID2");
  CHECK(items[1].study_date == "20240102");
  CHECK(items[2].kind == p2x::domain::RowKind::StudyUid);
  CHECK(items[2].study_uid == "1.2.3.4");
  for (const auto& it : items) {
    CHECK(it.state == ItemState::Queued);
    CHECK(it.modality == "MR");  // the job's --modality where the row names none
  }
  CHECK(items[1].subject == "SUBJ2");
  CHECK(items[1].session == "SESS2");
}

TEST_CASE("submit: the CSV's SHA-256 is of its exact bytes", "[service][submit]") {
  Commands c;
  json r = c.ok("submit", submit_args(accession_csv(3)));
  CHECK(r.at("sha256") == "87e2c6523381b6622f393221c8adeca9f8874198dce96d21235a032886990935");
}

TEST_CASE("submit refuses bad requests and queues nothing", "[service][submit]") {
  Commands c;
  const std::string good = accession_csv(2);
  json e;

  e = error_of(c.call("submit", submit_args(good, "bad project!")));
  CHECK(e.at("code") == ipc::code::refused);
  CHECK(e.at("message") ==
        "project \"bad project!\" is not a valid XNAT project ID (letters, digits, _ and -)");

  e = error_of(c.call("submit", submit_args(good, "PROJ1", "nope")));
  CHECK(e.at("code") == ipc::code::refused);
  CHECK(e.at("message") == "unknown PACS \"nope\"; configured PACS nodes: testpacs, otherpacs");

  e = error_of(c.call("submit", submit_args("Accession Number,Session\r\nA1,E1\r\nA2,E1\r\n")));
  CHECK(e.at("code") == ipc::code::refused);
  const std::string msg = e.at("message");
  CHECK(msg.rfind("studies.csv: 2 problem(s); nothing was queued:\n  studies.csv: line 2, ", 0) ==
        0);
  CHECK(msg.find("\n  studies.csv: line 3, column 2 (Session): ") != std::string::npos);

  json no_csv = submit_args(good);
  no_csv.erase("csv_base64");
  e = error_of(c.call("submit", no_csv));
  CHECK(e.at("code") == ipc::code::bad_request);
  CHECK(e.at("message") == "submit needs \"csv_base64\"; nothing was queued");

  json not_base64 = submit_args(good);
  not_base64["csv_base64"] = "***";
  CHECK(error_of(c.call("submit", not_base64)).at("code") == ipc::code::bad_request);

  json numeric_project = submit_args(good);
  numeric_project["project"] = 7;
  CHECK(error_of(c.call("submit", numeric_project)).at("code") == ipc::code::bad_request);

  CHECK(c.store.jobs().empty());
  CHECK(c.wakes == 0);
}

TEST_CASE("submit checks every option before queuing and names the bad one", "[service][submit]") {
  Commands c;
  bool preflight_ran = false;
  c.ctx.hooks.preflight = [&](const json&, const std::vector<p2x::store::NewItem>&) {
    preflight_ran = true;
    return json::object();
  };
  const std::vector<std::pair<json, std::string>> cases{
      {{{"series_description", 5}},
       "submit option \"series_description\" must be text, not number; nothing was queued"},
      {{{"series_description", std::string(200, '*')}},
       "submit option \"series_description\" is longer than 128 characters; nothing was queued"},
      {{{"modality", json::array({"MR"})}},
       "submit option \"modality\" must be text, not array; nothing was queued"},
      {{{"modality", "M/R"}},
       "submit option \"modality\" \"M/R\" is not a DICOM modality (letters, digits, _ and space, "
       "e.g. MR); nothing was queued"},
      {{{"modality", "MR\nCT"}},
       "submit option \"modality\" holds control characters; nothing was queued"},
      {{{"strict", "yes"}},
       "submit option \"strict\" must be true or false, not string; nothing was queued"},
      {{{"skip_existing", 1}},
       "submit option \"skip_existing\" must be true or false, not number; nothing was queued"},
      {{{"append", nullptr}},
       "submit option \"append\" must be true or false, not null; nothing was queued"},
      {{{"allow_duplicate", "true"}},
       "submit option \"allow_duplicate\" must be true or false, not string; nothing was queued"},
      {{{"colour", "red"}},
       "unknown submit option \"colour\" (is the CLI newer than the daemon?); nothing was queued"},
      {{{"csv_name", "a\nb.csv"}},
       "submit option \"csv_name\" holds control characters; nothing was queued"},
      {{{"csv_name", std::string(256, 'a')}},
       "submit option \"csv_name\" is longer than 255 characters; nothing was queued"},
      {{{"csv_name", 3}},
       "submit option \"csv_name\" must be text, not number; nothing was queued"},
      {{{"pacs", true}}, "submit option \"pacs\" must be text, not boolean; nothing was queued"},
      {{{"csv_base64", 12}},
       "submit option \"csv_base64\" must be text, not number; nothing was queued"},
  };
  for (const auto& [patch, message] : cases) {
    json args = submit_args(accession_csv(2));
    args.update(patch);
    INFO(args.dump().substr(0, 300));
    json e = error_of(c.call("submit", args));
    CHECK(e.at("code") == ipc::code::bad_request);
    CHECK(e.at("message") == message);
  }
  json no_project = submit_args(accession_csv(2));
  no_project.erase("project");
  CHECK(error_of(c.call("submit", no_project)).at("message") ==
        "submit needs \"project\"; nothing was queued");
  CHECK_FALSE(preflight_ran);
  CHECK(c.store.jobs().empty());
  CHECK(c.wakes == 0);
}

TEST_CASE("submit refuses the same CSV into the same project while its job is active",
          "[service][submit]") {
  Commands c;
  const auto first = c.submit(3);
  json e = error_of(c.call("submit", submit_args(accession_csv(3))));
  CHECK(e.at("code") == ipc::code::refused);
  const std::string m = e.at("message");
  CHECK_THAT(m, Catch::StartsWith("studies.csv (sha256 87e2c6523381...) was already submitted to "
                                  "project PROJ1 as job 1 (from studies.csv), which is still "
                                  "active; nothing was queued.") &&
                    Catch::Contains("pacs2xnat status 1") && Catch::Contains("--allow-duplicate"));
  CHECK(c.store.jobs().size() == 1);

  // Another project, another CSV, or allow_duplicate: queued.
  CHECK(c.submit(3, "PROJ2") == 2);
  CHECK(c.submit(4) == 3);
  json again = submit_args(accession_csv(3));
  again["allow_duplicate"] = true;
  CHECK(c.ok("submit", again).at("job") == 4);
  // Once the first jobs are no longer active, the same CSV is welcome again.
  c.ok("cancel", {{"job", first}});
  c.ok("cancel", {{"job", 4}});
  CHECK(c.ok("submit", submit_args(accession_csv(3))).at("job") == 5);
}

TEST_CASE("submit waits on XNAT on the Remote lane, reads run on the Local lane", "[service]") {
  Commands c;
  auto lane = [&](const std::string& cmd) {
    auto parsed = c.dispatcher.parse(ipc::make_request(cmd).dump());
    REQUIRE(std::holds_alternative<ipc::Request>(parsed));
    return std::get<ipc::Request>(parsed).lane;
  };
  for (const char* cmd : {"submit", "dry_run", "pacs_echo"}) {
    INFO(cmd);
    CHECK(lane(cmd) == ipc::Lane::Remote);
  }
  for (const char* cmd : {"ping", "status", "list", "items", "events", "report", "cancel", "pause",
                          "resume", "retry"}) {
    INFO(cmd);
    CHECK(lane(cmd) == ipc::Lane::Local);
  }
}

TEST_CASE("job options stored unusable fail the item's step for good, naming the option",
          "[service][options]") {
  using p2x::pipeline::parse_job_options;
  using p2x::pipeline::PermanentError;
  CHECK(parse_job_options("").modality.empty());
  CHECK(parse_job_options(R"({"modality":"MR","future_key":1})").modality == "MR");
  CHECK_THROWS_MATCHES(parse_job_options(R"({"series_description":5})"), PermanentError,
                       Catch::Message("the job's stored options cannot be used: "
                                      "\"series_description\" must be text, not number; cancel "
                                      "the job and submit its CSV again"));
  CHECK_THROWS_AS(parse_job_options("{"), PermanentError);
  CHECK_THROWS_AS(parse_job_options("[1]"), PermanentError);
  const auto round_trip = p2x::pipeline::job_options_from(
      json{{"modality", "CT"}, {"series_description", "T1*"}, {"strict", true}, {"append", true}});
  CHECK(
      p2x::pipeline::to_json(round_trip) ==
      json{{"modality", "CT"}, {"series_description", "T1*"}, {"strict", true}, {"append", true}});
}

TEST_CASE("submit: the pre-flight skips rows or refuses the whole CSV", "[service][submit]") {
  Commands c;
  std::vector<std::string> sessions_seen;
  c.ctx.hooks.preflight = [&](const json& args, const std::vector<p2x::store::NewItem>& items) {
    CHECK(args.at("project") == "PROJ1");
    for (const auto& it : items) sessions_seen.push_back(it.session);
    if (args.value("append", false)) {
      throw CommandError(ipc::code::refused, "XNAT says no; nothing was queued");
    }
    return json{{"skip_rows", {2}}, {"warnings", {"line 3: session SESS2 exists; skipped"}}};
  };
  json args = submit_args(accession_csv(3));
  args["skip_existing"] = true;
  json r = c.ok("submit", args);
  CHECK(sessions_seen == std::vector<std::string>{"SESS1", "SESS2", "SESS3"});
  CHECK(r.at("skipped") == 1);
  CHECK(r.at("warnings") == json{"line 3: session SESS2 exists; skipped"});
  auto items = c.store.items(r.at("job"));
  REQUIRE(items.size() == 3);
  CHECK(items[0].state == ItemState::Queued);
  CHECK(items[1].state == ItemState::Cancelled);
  CHECK(items[1].last_error == "skipped: session SESS2 already exists in XNAT");
  CHECK(items[2].state == ItemState::Queued);
  CHECK(json::parse(c.store.job(r.at("job"))->options_json).at("skip_existing") == true);

  json refused = submit_args(accession_csv(3));
  refused["append"] = true;
  refused["allow_duplicate"] = true;  // past the duplicate check, to the pre-flight
  json e = error_of(c.call("submit", refused));
  CHECK(e.at("code") == ipc::code::refused);
  CHECK(e.at("message") == "XNAT says no; nothing was queued");
  CHECK(c.store.jobs().size() == 1);

  // Skipping and appending to existing sessions exclude each other: refused before the
  // pre-flight, naming both.
  refused["skip_existing"] = true;
  e = error_of(c.call("submit", refused));
  CHECK(e.at("code") == ipc::code::bad_request);
  CHECK_THAT(e.at("message").get<std::string>(),
             Catch::Contains("\"skip_existing\" and \"append\" exclude each other"));
  CHECK(c.store.jobs().size() == 1);
}

TEST_CASE("status: active jobs, --all, one job with its notes", "[service][status]") {
  Commands c;
  CHECK(c.ok("status").at("jobs") == json::array());
  const auto first = c.submit(2);
  const auto second = c.submit(3, "PROJ2");
  REQUIRE(c.ok("cancel", {{"job", first}}).at("cancelled") == 2);
  c.ctx.hooks.job_notes = [](std::int64_t id) {
    return json{"PACS testpacs closed until 20:00 (job " + std::to_string(id) + ")"};
  };

  json active = c.ok("status").at("jobs");
  REQUIRE(active.size() == 1);
  CHECK(active[0].at("job") == second);
  CHECK(active[0].at("notes") == json{"PACS testpacs closed until 20:00 (job 2)"});
  CHECK(c.ok("status", {{"all", true}}).at("jobs").size() == 2);

  fail_row(c, second, 2, "C-FIND: no study with accession ACC2");
  json one = c.ok("status", {{"job", second}}).at("jobs");
  REQUIRE(one.size() == 1);
  const json& j = one[0];
  CHECK(j.at("project") == "PROJ2");
  CHECK(j.at("pacs") == "testpacs");
  CHECK(j.at("state") == "active");
  CHECK(j.at("paused") == false);
  CHECK(j.at("total") == 3);
  CHECK(j.at("submitted_by") == 4242);
  CHECK(j.at("counts").size() == p2x::store::all_states().size());
  CHECK(j.at("counts").at("queued") == 2);
  CHECK(j.at("counts").at("failed") == 1);
  CHECK(j.at("counts").at("verified") == 0);
  CHECK(j.at("instances") ==
        json{{"expected", 0}, {"received", 0}, {"pushed", 0}, {"verified", 0}});
  REQUIRE(j.at("latest_failures").size() == 1);
  CHECK(j.at("latest_failures")[0].at("row") == 2);
  CHECK(j.at("latest_failures")[0].at("accession") == "ACC2");
  CHECK(j.at("latest_failures")[0].at("last_error") == "C-FIND: no study with accession ACC2");

  // A finished job is shown when asked for by number.
  CHECK(c.ok("status", {{"job", first}}).at("jobs")[0].at("state") == "cancelled");
}

TEST_CASE("status, report and the controls refuse unknown jobs and bad job numbers",
          "[service][args]") {
  Commands c;
  c.submit(1);
  for (const char* cmd : {"status", "report", "items", "cancel", "pause", "resume", "retry"}) {
    INFO(cmd);
    json e = error_of(c.call(cmd, {{"job", 42}}));
    CHECK(e.at("code") == ipc::code::not_found);
    CHECK(e.at("message") == "no job 42 (see `pacs2xnat list`)");
    for (const json& bad : {json{{"job", "1"}}, json{{"job", 1.5}}, json{{"job", nullptr}}}) {
      e = error_of(c.call(cmd, bad));
      CHECK(e.at("code") == ipc::code::bad_request);
      CHECK(e.at("message") == "a job number is required");
    }
  }
  for (const char* cmd : {"report", "items", "cancel", "pause", "resume", "retry"}) {
    INFO(cmd);
    CHECK(error_of(c.call(cmd)).at("message") == "a job number is required");
  }
  json e = error_of(c.call("events", {{"item", "one"}}));
  CHECK(e.at("code") == ipc::code::bad_request);
  CHECK(e.at("message") == "an item number is required");
  CHECK(states_of(c, 1) == std::multiset<std::string>{"queued"});
}

TEST_CASE("list shows every job, newest first", "[service][list]") {
  Commands c;
  CHECK(c.ok("list").at("jobs") == json::array());
  c.submit(1);
  c.submit(2);
  c.ok("cancel", {{"job", 1}});
  json jobs = c.ok("list").at("jobs");
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0].at("job") == 2);
  CHECK(jobs[0].at("state") == "active");
  CHECK(jobs[1].at("job") == 1);
  CHECK(jobs[1].at("state") == "cancelled");
  CHECK(jobs[1].at("counts").at("cancelled") == 1);
}

TEST_CASE("report: one CSV line per row with the reason of failed and waiting rows",
          "[service][report]") {
  Commands c;
  const auto job = c.submit(3);
  fail_row(c, job, 1, "PACS said \"no\", twice");
  for (const auto& it : c.store.items(job)) {
    if (it.row != 3) continue;
    ItemPatch p;
    p.wait_reason = "PACS testpacs closed until 20:00";
    c.store.update(it.id, p);
  }
  json r = c.ok("report", {{"job", job}});
  CHECK(r.at("job") == job);
  CHECK(r.at("csv") ==
        "row,line,kind,accession,patient_id,study_date,study_uid,subject,session,state,"
        "expected,received,verified,attempts,reason\n"
        "1,2,accession,ACC1,,,,SUBJ1,SESS1,failed,0,0,0,0,\"PACS said \"\"no\"\", twice\"\n"
        "2,3,accession,ACC2,,,,SUBJ2,SESS2,queued,0,0,0,0,\n"
        "3,4,accession,ACC3,,,,SUBJ3,SESS3,queued,0,0,0,0,PACS testpacs closed until 20:00\n");
}

TEST_CASE("items and events show a job's rows and an item's history", "[service][items]") {
  Commands c;
  const auto job = c.submit(2);
  json items = c.ok("items", {{"job", job}}).at("items");
  REQUIRE(items.size() == 2);
  CHECK(items[1].at("session") == "SESS2");
  CHECK(items[1].at("state") == "queued");
  const std::int64_t item = items[0].at("id");
  c.ok("cancel", {{"job", job}});
  json events = c.ok("events", {{"item", item}}).at("events");
  REQUIRE(events.size() >= 1);
  CHECK(events.back().at("to") == "cancelled");
}

TEST_CASE("pause and resume an active job - finished jobs refuse both", "[service][control]") {
  Commands c;
  const auto job = c.submit(2);
  CHECK(c.ok("pause", {{"job", job}}) == json{{"job", job}, {"paused", true}});
  CHECK(c.store.job(job)->paused);
  CHECK(c.ok("status", {{"job", job}}).at("jobs")[0].at("paused") == true);
  CHECK(c.ok("resume", {{"job", job}}) == json{{"job", job}, {"paused", false}});
  CHECK_FALSE(c.store.job(job)->paused);
  CHECK(c.wakes == 3);  // submit, pause, resume

  c.ok("cancel", {{"job", job}});
  for (const char* cmd : {"pause", "resume"}) {
    json e = error_of(c.call(cmd, {{"job", job}}));
    CHECK(e.at("code") == ipc::code::refused);
    CHECK(e.at("message") == "job 1 is cancelled; only active jobs can be paused or resumed");
  }
  CHECK_FALSE(c.store.job(job)->paused);
}

TEST_CASE("cancel stops every unfinished row - retry re-queues the failed ones",
          "[service][control]") {
  Commands c;
  const auto job = c.submit(4);
  fail_row(c, job, 2, "timeout");
  fail_row(c, job, 4, "refused");

  json retry = c.ok("retry", {{"job", job}});
  CHECK(retry == json{{"job", job}, {"requeued", 2}});
  CHECK(states_of(c, job) == std::multiset<std::string>{"queued", "queued", "queued", "queued"});
  for (const auto& it : c.store.items(job)) CHECK(it.last_error.empty());

  fail_row(c, job, 3, "timeout");
  json cancel = c.ok("cancel", {{"job", job}});
  CHECK(cancel == json{{"job", job}, {"cancelled", 3}});
  CHECK(states_of(c, job) ==
        std::multiset<std::string>{"cancelled", "cancelled", "cancelled", "failed"});
  CHECK(c.store.job(job)->state == JobState::Cancelled);
  CHECK(c.ok("cancel", {{"job", job}}).at("cancelled") == 0);

  // Retrying a cancelled job brings back its failed row only.
  CHECK(c.ok("retry", {{"job", job}}).at("requeued") == 1);
  CHECK(states_of(c, job) ==
        std::multiset<std::string>{"cancelled", "cancelled", "cancelled", "queued"});
}

TEST_CASE("unknown commands and malformed requests get error answers", "[service][dispatch]") {
  Commands c;
  json e = error_of(c.call("frobnicate"));
  CHECK(e.at("code") == ipc::code::unknown_command);
  CHECK(e.at("message") == "unknown command \"frobnicate\" (is the CLI newer than the daemon?)");

  ipc::Peer peer;
  CHECK(error_of(c.dispatcher.dispatch("not json", peer)).at("code") == ipc::code::bad_request);
  CHECK(error_of(c.dispatcher.dispatch(R"({"cmd":"status","args":[1]})", peer)).at("code") ==
        ipc::code::bad_request);
  CHECK(error_of(c.dispatcher.dispatch(R"({"args":{}})", peer)).at("code") ==
        ipc::code::bad_request);

  json pong = c.ok("ping");
  CHECK(pong.at("pong") == true);
  CHECK(pong.at("pid").get<long long>() > 0);
}

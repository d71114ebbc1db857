// lib/client/format and the watch view: the text the CLI prints for given daemon answers.
#include <stdlib.h>
#include <time.h>

#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "client/cli.hpp"
#include "client/format.hpp"
#include "client/watch.hpp"

using namespace p2x::client;
using nlohmann::json;

namespace {

// Local times are printed in UTC for these tests.
struct Utc {
  Utc() {
    setenv("TZ", "UTC", 1);
    tzset();
  }
};

json counts(std::int64_t queued, std::int64_t verified, std::int64_t failed = 0,
            std::int64_t cancelled = 0) {
  json c = json::object();
  for (const char* s : {"queued", "querying", "retrieving", "retrieved", "validating", "validated",
                        "pushing", "pushed", "verified", "failed", "cancelled"}) {
    c[s] = 0;
  }
  c["queued"] = queued;
  c["verified"] = verified;
  c["failed"] = failed;
  c["cancelled"] = cancelled;
  return c;
}

// A job summary as the daemon's status/list answers carry it (service::job_summary_json).
json job(std::int64_t id, json job_counts, std::int64_t total) {
  return json{{"job", id},
              {"project", "PROJ1"},
              {"pacs", "testpacs"},
              {"csv_name", "studies.csv"},
              {"created_at", 1704067200},  // 2024-01-01 00:00 UTC
              {"state", "active"},
              {"paused", false},
              {"total", total},
              {"counts", std::move(job_counts)},
              {"instances", {{"expected", 0}, {"received", 0}, {"pushed", 0}, {"verified", 0}}},
              {"bytes", 0},
              {"latest_failures", json::array()}};
}

}  // namespace

TEST_CASE("durations and sizes", "[client][format]") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(59.4) == "59s");
  CHECK(format_duration(61) == "1m01s");
  CHECK(format_duration(3599) == "59m59s");
  CHECK(format_duration(3600 * 5 + 7 * 60 + 30) == "5h07m");
  CHECK(format_bytes(999) == "999 B");
  CHECK(format_bytes(1000) == "1.0 KB");
  CHECK(format_bytes(2.5e6) == "2.5 MB");
  CHECK(format_bytes(7.3e12) == "7.3 TB");
  CHECK(format_bytes(3e15) == "3000.0 TB");
}

TEST_CASE("list: one line per job, paused and finished jobs say so", "[client][format]") {
  Utc utc;
  json a = job(2, counts(1, 7, 2), 10);
  json b = job(1, counts(0, 3, 0, 1), 4);
  b["state"] = "cancelled";
  json c = job(3, counts(5, 0), 5);
  c["paused"] = true;
  CHECK(format_jobs(json{{"jobs", {a, b, c}}}, JobsView::List) ==
        "job 2  active  project PROJ1  pacs testpacs  7/10 verified, 2 failed  "
        "(studies.csv, 2024-01-01 00:00)\n"
        "job 1  cancelled  project PROJ1  pacs testpacs  3/4 verified, 1 cancelled  "
        "(studies.csv, 2024-01-01 00:00)\n"
        "job 3  paused  project PROJ1  pacs testpacs  0/5 verified  "
        "(studies.csv, 2024-01-01 00:00)\n");
  CHECK(format_jobs(json{{"jobs", json::array()}}, JobsView::List) == "no jobs\n");
}

TEST_CASE("status: states, instances, waiting notes and latest failures", "[client][format]") {
  Utc utc;
  json j = job(4, counts(2, 5, 2), 9);
  j["instances"] = {{"expected", 1200}, {"received", 900}, {"pushed", 600}, {"verified", 500}};
  j["bytes"] = 3.4e8;
  j["notes"] = {"PACS testpacs closed until 20:00"};
  j["latest_failures"] = {
      {{"row", 3}, {"line", 4}, {"accession", "ACC3"}, {"last_error", "no such study"}},
      {{"row", 5},
       {"line", 6},
       {"accession", ""},
       {"patient_id", "PID5"},
       {"study_date", "20240105"},
       {"last_error", "PACS refused the C-MOVE"}}};
  CHECK(format_jobs(json{{"jobs", {j}}}, JobsView::Status) ==
        "job 4  active  project PROJ1  pacs testpacs  5/9 verified, 2 failed  "
        "(studies.csv, 2024-01-01 00:00)\n"
        "  states:  failed 2  queued 2  verified 5\n"
        "  instances: 900/1200 received, 500 verified in XNAT, 340.0 MB moved\n"
        "  waiting: PACS testpacs closed until 20:00\n"
        "  latest failures:\n"
        "    row 3 (line 4, ACC3): no such study\n"
        "    row 5 (line 6, PID5 20240105): PACS refused the C-MOVE\n");

  json empty = job(5, counts(0, 0), 0);
  CHECK(format_job_status(empty) ==
        "job 5  active  project PROJ1  pacs testpacs  0/0 verified  "
        "(studies.csv, 2024-01-01 00:00)\n"
        "  states:  (no items)\n");
  CHECK(format_jobs(json{{"jobs", json::array()}}, JobsView::Status) ==
        "no active jobs (see `pacs2xnat list`)\n");
}

TEST_CASE("submit, report, controls and echo answers", "[client][format]") {
  CHECK(format_submitted(json{{"job", 7}, {"items", 120}, {"warnings", {"line 9: odd"}}},
                         "list.csv", "PROJ1") ==
        "job 7 queued: 120 studies from list.csv into project PROJ1 (follow it with "
        "`pacs2xnat watch 7`)\nwarning: line 9: odd\n");
  CHECK(format_report(json{{"job", 7}, {"csv", "row,line\n1,2\n"}}) == "row,line\n1,2\n");
  CHECK(format_report(json::object()).empty());
  CHECK(format_control("cancel", 7, json{{"cancelled", 3}}) == "job 7: 3 studies cancelled\n");
  CHECK(format_control("retry", 7, json{{"requeued", 2}}) == "job 7: 2 failed studies re-queued\n");
  CHECK(format_control("pause", 7, json{{"paused", true}}) == "job 7 paused\n");
  CHECK(format_control("resume", 7, json{{"paused", false}}) == "job 7 resumed\n");
  CHECK(format_echo("main",
                    json{{"ae_title", "PACS"}, {"host", "10.0.0.5"}, {"port", 104}, {"ms", 12}}) ==
        "C-ECHO main (PACS@10.0.0.5:104): ok in 12 ms\n");
}

TEST_CASE("watch: a plain line whenever the counts change", "[client][watch]") {
  WatchView view(WatchView::Mode::Lines);
  json j = job(3, counts(4, 0), 4);
  CHECK(view.update(j, 0) == "job 3 0/4 verified, 0 B moved\n");
  CHECK(view.update(j, 1) == "");
  CHECK_FALSE(view.finished());
  j["counts"] = counts(1, 2, 1);
  j["bytes"] = 2e6;
  CHECK(view.update(j, 5) == "job 3 2/4 verified, 1 failed, 2.0 MB moved\n");
  j["counts"] = counts(0, 3, 1);
  j["state"] = "done";
  CHECK(view.update(j, 9) == "job 3 3/4 verified, 1 failed, 2.0 MB moved\n");
  CHECK(view.finished());
  CHECK(view.exit_code() == kRefused);
}

TEST_CASE("watch: on a terminal, a bar with the rate and the ETA", "[client][watch]") {
  WatchView view(WatchView::Mode::Terminal);
  json j = job(3, counts(10, 0), 10);
  j["bytes"] = 1e6;
  CHECK(view.update(j, 0.5) ==
        "\r\033[Kjob 3 [" + std::string(30, '.') + "] 0/10 verified, 1.0 MB moved");
  j["counts"] = counts(5, 5);
  j["bytes"] = 21e6;
  j["paused"] = true;
  // 20 MB in 10 s; 5 of 10 done in 10 s -> 10 s left.
  CHECK(view.update(j, 10) == "\r\033[Kjob 3 [" + std::string(15, '#') + std::string(15, '.') +
                                  "] 5/10 verified, 21.0 MB moved, 2.0 MB/s, ETA 10s (paused)");
  j["counts"] = counts(0, 10);
  j["state"] = "done";
  j["paused"] = false;
  const std::string last = view.update(j, 20);
  CHECK(last.rfind("\r\033[Kjob 3 [" + std::string(30, '#') + "] 10/10 verified", 0) == 0);
  CHECK(last.back() == '\n');
  CHECK(view.finished());
  CHECK(view.exit_code() == kOk);
}

TEST_CASE("watch --json: every answer as one JSON line", "[client][watch]") {
  WatchView view(WatchView::Mode::Json);
  json j = job(3, counts(1, 0), 1);
  CHECK(json::parse(view.update(j, 0)) == j);
  CHECK(view.update(j, 1) == j.dump() + "\n");
  j["state"] = "cancelled";
  j["counts"] = counts(0, 0, 0, 1);
  view.update(j, 2);
  CHECK(view.finished());
  CHECK(view.exit_code() == kRefused);
}

TEST_CASE("answers become exit codes", "[client][exit]") {
  std::ostringstream err;
  json result;
  CHECK(read_answer(json{{"ok", true}, {"result", {{"jobs", json::array()}}}}, result, err) == kOk);
  CHECK(result == json{{"jobs", json::array()}});
  CHECK(err.str().empty());

  CHECK(
      read_answer(json{{"ok", false}, {"error", {{"code", "not_found"}, {"message", "no job 42"}}}},
                  result, err) == kRefused);
  CHECK(err.str() == "pacs2xnat: no job 42\n");
  err.str("");
  CHECK(read_answer(json{{"ok", false}}, result, err) == kRefused);
  CHECK(err.str() == "pacs2xnat: request refused\n");
}

// Store basics: open/migrate, file mode, jobs and items, compare-and-set transitions, events
// and their atomicity, recovery after restart, job controls, series, summary.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "store/store.hpp"
#include "test_util.hpp"

using namespace p2x::store;
using p2x::store::test::drive_to;
using p2x::store::test::make_job;
using p2x::store::test::RawDb;
using p2x::store::test::TempDir;
using S = ItemState;

TEST_CASE("open creates and migrates a new store with mode 0600", "[store]") {
  TempDir dir;
  const auto path = dir.file("jobs.db");
  {
    Store store(path);
    CHECK(store.schema_version() >= 1);
    CHECK(store.recovered() == 0);
    CHECK(store.jobs().empty());
    store.create_job(make_job(1));
    struct stat wal {};
    REQUIRE(::stat((path + "-wal").c_str(), &wal) == 0);  // SQLite copies the file's mode
    CHECK((wal.st_mode & 0777) == 0600);
  }
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  RawDb raw(path);
  CHECK(raw.query_text("PRAGMA journal_mode") == "wal");
  CHECK(raw.query_int("SELECT count(*) FROM schema_version") >= 1);
  CHECK(raw.query_int("SELECT count(*) FROM sqlite_master WHERE name IN "
                      "('jobs', 'items', 'series', 'events', 'schema_version')") == 5);
}

TEST_CASE("migrations apply to an empty file and a reopen changes nothing", "[store]") {
  TempDir dir;
  const auto path = dir.file("jobs.db");
  { RawDb raw(path); }  // creates an empty (0-byte) database file
  int version = 0;
  std::int64_t job_id = 0;
  {
    Store store(path);
    version = store.schema_version();
    REQUIRE(version >= 1);
    job_id = store.create_job(make_job(3));
  }
  RawDb raw(path);
  const auto rows = raw.query_int("SELECT count(*) FROM schema_version");
  {
    Store again(path);
    CHECK(again.schema_version() == version);
    CHECK(again.items(job_id).size() == 3);
  }
  CHECK(raw.query_int("SELECT count(*) FROM schema_version") == rows);
  CHECK(raw.query_int("SELECT max(version) FROM schema_version") == version);
}

TEST_CASE("a store with a newer schema is refused", "[store]") {
  TempDir dir;
  const auto path = dir.file("jobs.db");
  { Store store(path); }
  {
    RawDb raw(path);
    raw.exec("INSERT INTO schema_version (version, applied_at) VALUES (999, 0)");
  }
  try {
    Store store(path);
    FAIL("opened a newer schema");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("newer") != std::string::npos);
    CHECK(std::string(e.what()).find("999") != std::string::npos);
  }
}

TEST_CASE("open fails clearly when the directory does not exist", "[store]") {
  TempDir dir;
  try {
    Store store(dir.file("missing/jobs.db"));
    FAIL("opened");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("does not exist") != std::string::npos);
  }
}

TEST_CASE("a job's destination is decided once and kept", "[store]") {
  Store store(":memory:");
  const auto id = store.create_job(make_job(1));
  using p2x::domain::Destination;
  CHECK_FALSE(store.job(id)->destination);
  CHECK(store.set_destination(id, Destination::Prearchive) == Destination::Prearchive);
  // The first decision stands.
  CHECK(store.set_destination(id, Destination::Archive) == Destination::Prearchive);
  CHECK(store.job(id)->destination == Destination::Prearchive);
  CHECK_FALSE(store.set_destination(id + 100, Destination::Archive));
}

// The typed kind and destination keep their text in the columns (domain::to_string), and a
// text no daemon writes (a database edited by hand) is an error naming the row, not a guess.
TEST_CASE("row kind and destination are stored as their text", "[store]") {
  using p2x::domain::Destination;
  using p2x::domain::RowKind;
  TempDir dir;
  const auto path = dir.file("jobs.db");
  Store store(path);
  NewJob nj = make_job(2);
  nj.items[1].kind = RowKind::StudyUid;
  const auto id = store.create_job(nj);
  store.set_destination(id, Destination::Prearchive);
  RawDb raw(path);
  CHECK(raw.query_text("SELECT kind FROM items WHERE row = 1") == "accession");
  CHECK(raw.query_text("SELECT kind FROM items WHERE row = 2") == "study_uid");
  CHECK(raw.query_text("SELECT destination FROM jobs") == "prearchive");

  raw.exec("UPDATE items SET kind = 'mrn' WHERE row = 2");
  CHECK_THROWS_WITH(store.items(id),
                    Catch::Contains("unknown kind 'mrn'") && Catch::Contains("item "));
  raw.exec("UPDATE jobs SET destination = 'elsewhere'");
  CHECK_THROWS_WITH(store.job(id), Catch::Contains("job " + std::to_string(id) +
                                                   " has unknown destination 'elsewhere'"));
}

TEST_CASE("jobs and items are stored as submitted", "[store]") {
  Store store(":memory:");
  NewJob nj = make_job(4, "PACS9", "PROJ9");
  nj.options_json = R"({"strict":true})";
  nj.items[2].kind = p2x::domain::RowKind::PatientDate;
  nj.items[2].patient_id = "P123";
  nj.items[2].study_date = "20240131";
  nj.items[2].modality = "MR";
  const auto id1 = store.create_job(nj);
  const auto id2 = store.create_job(make_job(1));
  CHECK(id2 > id1);

  auto job = store.job(id1);
  REQUIRE(job);
  CHECK(job->project == "PROJ9");
  CHECK(job->pacs == "PACS9");
  CHECK(job->csv_name == "list.csv");
  CHECK(job->csv_sha256 == std::string(64, 'a'));
  CHECK(job->submitted_by == 1000);
  CHECK(job->created_at > 0);
  CHECK(job->state == JobState::Active);
  CHECK_FALSE(job->paused);
  CHECK(job->options_json == R"({"strict":true})");
  CHECK_FALSE(store.job(9999));

  auto jobs = store.jobs();
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0].id == id2);  // newest first

  auto items = store.items(id1);
  REQUIRE(items.size() == 4);
  for (int i = 0; i < 4; ++i) {
    CHECK(items[static_cast<std::size_t>(i)].row == i + 1);
    CHECK(items[static_cast<std::size_t>(i)].state == S::Queued);
    CHECK(items[static_cast<std::size_t>(i)].job_id == id1);
  }
  CHECK(items[2].kind == p2x::domain::RowKind::PatientDate);
  CHECK(items[2].patient_id == "P123");
  CHECK(items[2].study_date == "20240131");
  CHECK(items[2].modality == "MR");
  CHECK(items[0].accession == "ACC1");
  CHECK(items[0].subject == "SUBJ1");
  CHECK(items[0].line == 2);
  CHECK(items[0].retryable);
  CHECK(store.item(items[1].id)->accession == "ACC2");
  CHECK_FALSE(store.item(123456));
  // One "created" event for the job, none per item.
  CHECK(store.events(items[0].id).empty());
}

TEST_CASE("transition is a compare-and-set", "[store]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(2));
  const auto id = store.items(job_id)[0].id;
  REQUIRE(store.transition(id, S::Queued, S::Querying, "go"));
  // Someone else already moved it: a second identical request changes nothing.
  CHECK_FALSE(store.transition(id, S::Queued, S::Querying, "again"));
  CHECK_FALSE(store.transition(id, S::Retrieving, S::Retrieved, "wrong from"));
  CHECK_FALSE(store.transition(424242, S::Queued, S::Querying, "no such item"));
  CHECK(store.item(id)->state == S::Querying);
  auto ev = store.events(id);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].from == "queued");
  CHECK(ev[0].to == "querying");
  CHECK(ev[0].detail == "go");
  CHECK(ev[0].at > 0);
  CHECK(ev[0].item_id == id);
}

TEST_CASE("transition writes the patch with the state change", "[store]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(1));
  const auto id = store.items(job_id)[0].id;
  ItemPatch p;
  p.study_uid = "1.2.3";
  p.pacs_patient_id = "PID7";
  p.expected = 120;
  p.attempts = 1;
  REQUIRE(store.transition(id, S::Queued, S::Querying, "find"));
  REQUIRE(store.transition(id, S::Querying, S::Retrieving, "found", p));
  auto it = *store.item(id);
  CHECK(it.state == S::Retrieving);
  CHECK(it.study_uid == "1.2.3");
  CHECK(it.pacs_patient_id == "PID7");
  CHECK(it.expected == 120);
  CHECK(it.attempts == 1);
  CHECK(it.subject == "SUBJ1");  // untouched fields stay

  ItemPatch progress;
  progress.received = 60;
  progress.bytes = 1 << 20;
  progress.wait_reason = "";
  store.update(id, progress);
  it = *store.item(id);
  CHECK(it.state == S::Retrieving);
  CHECK(it.received == 60);
  CHECK(it.bytes == (1 << 20));
  CHECK(it.study_uid == "1.2.3");
  CHECK(store.events(id).size() == 2);  // update() writes no event
  CHECK_THROWS_AS(store.update(99999, progress), StoreError);

  ItemPatch retry;
  retry.next_attempt_at = 12345;
  retry.last_error = "association rejected";
  retry.wait_reason = "PACS busy";
  REQUIRE(store.transition(id, S::Retrieving, S::Queued, "retry later", retry));
  it = *store.item(id);
  CHECK(it.next_attempt_at == 12345);
  CHECK(it.last_error == "association rejected");
  CHECK(it.wait_reason == "PACS busy");
}

TEST_CASE("a failing event write rolls back the state change", "[store]") {
  TempDir dir;
  const auto path = dir.file("jobs.db");
  Store store(path);
  const auto job_id = store.create_job(make_job(1));
  const auto id = store.items(job_id)[0].id;
  {
    RawDb raw(path);
    raw.exec(
        "CREATE TRIGGER test_boom BEFORE INSERT ON events WHEN NEW.detail = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'boom refused'); END");
  }
  ItemPatch p;
  p.study_uid = "9.9.9";
  try {
    store.transition(id, S::Queued, S::Querying, "boom", p);
    FAIL("no exception");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("boom refused") != std::string::npos);
    CHECK(e.sqlite_code() != 0);
  }
  auto it = *store.item(id);
  CHECK(it.state == S::Queued);
  CHECK(it.study_uid.empty());
  CHECK(store.events(id).empty());
  // The store is still usable and the same transition works with another detail.
  CHECK(store.transition(id, S::Queued, S::Querying, "fine", p));
  CHECK(store.item(id)->study_uid == "9.9.9");
  CHECK(store.events(id).size() == 1);
  RawDb raw(path);
  CHECK(raw.query_int("SELECT count(*) FROM events WHERE item_id IS NOT NULL") == 1);
}

TEST_CASE("requeue_unfinished sends retrieved - validated and pushed items back to the queue",
          "[store]") {
  TempDir dir;
  Store store(dir.file("jobs.db"));
  const std::vector<std::pair<S, S>> cases = {
      {S::Queued, S::Queued},       {S::Retrieved, S::Queued},  {S::Validated, S::Queued},
      {S::Pushed, S::Queued},       {S::Verified, S::Verified}, {S::Failed, S::Failed},
      {S::Cancelled, S::Cancelled},
  };
  const auto job_id = store.create_job(make_job(static_cast<int>(cases.size())));
  auto items = store.items(job_id);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    drive_to(store, items[i].id, cases[i].first);
    Series sr;
    sr.item_id = items[i].id;
    sr.series_uid = "1.2.3." + std::to_string(i);
    sr.expected = 5;
    store.set_series(items[i].id, {sr});
    store.set_series_received(items[i].id, sr.series_uid, 4);
    ItemPatch p;
    p.expected = 5;
    p.received = 4;
    p.bytes = 1000;
    p.pushed = 3;
    p.next_attempt_at = 4102444800;  // 2100: must not keep a requeued item waiting
    store.update(items[i].id, p);
  }
  CHECK(store.requeue_unfinished("spool lost") == 3);
  items = store.items(job_id);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("was " << to_string(cases[i].first));
    const auto& it = items[i];
    CHECK(it.state == cases[i].second);
    const bool moved = cases[i].first != cases[i].second;
    const bool reset = moved || cases[i].first == S::Queued;
    CHECK(it.received == (reset ? 0 : 4));
    CHECK(it.bytes == (reset ? 0 : 1000));
    CHECK(it.pushed == (reset ? 0 : 3));
    CHECK(it.expected == 5);
    CHECK(store.series(it.id).at(0).received == (reset ? 0 : 4));
    auto ev = store.events(it.id);
    if (moved) {
      REQUIRE_FALSE(ev.empty());
      CHECK(ev.back().from == to_string(cases[i].first));
      CHECK(ev.back().to == "queued");
      CHECK(ev.back().detail == "spool lost");
      CHECK(it.next_attempt_at == 0);
      CHECK(it.attempts == 0);  // not counted
    } else if (!ev.empty()) {
      CHECK(ev.back().detail != "spool lost");
    }
  }
  // The per-state counters follow (status reads them).
  auto s = store.summary(job_id);
  CHECK(s.counts[S::Queued] == 4);
  CHECK(s.counts.count(S::Retrieved) == 0);
  CHECK(s.counts.count(S::Pushed) == 0);
  CHECK(s.received == 3 * 4);  // verified, failed and cancelled keep theirs
  CHECK(store.requeue_unfinished("again") == 0);
}

TEST_CASE("reopening recovers every in-flight item to its last durable state", "[store]") {
  TempDir dir;
  const auto path = dir.file("jobs.db");
  std::int64_t job_id = 0;
  const std::vector<std::pair<S, S>> cases = {
      {S::Queued, S::Queued},       {S::Querying, S::Queued},      {S::Retrieving, S::Queued},
      {S::Retrieved, S::Retrieved}, {S::Validating, S::Retrieved}, {S::Validated, S::Validated},
      {S::Pushing, S::Validated},   {S::Pushed, S::Pushed},        {S::Verifying, S::Pushed},
      {S::Verified, S::Verified},   {S::Failed, S::Failed},        {S::Cancelled, S::Cancelled},
  };
  {
    Store store(path);
    job_id = store.create_job(make_job(static_cast<int>(cases.size())));
    auto items = store.items(job_id);
    for (std::size_t i = 0; i < cases.size(); ++i) drive_to(store, items[i].id, cases[i].first);
  }
  {
    Store store(path);
    CHECK(store.recovered() == 5);
    auto items = store.items(job_id);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      INFO("left in " << to_string(cases[i].first));
      CHECK(items[i].state == cases[i].second);
      auto ev = store.events(items[i].id);
      if (is_in_flight(cases[i].first)) {
        REQUIRE_FALSE(ev.empty());
        CHECK(ev.back().from == to_string(cases[i].first));
        CHECK(ev.back().to == to_string(cases[i].second));
        CHECK(ev.back().detail == "recovered after restart");
      } else if (!ev.empty()) {
        CHECK(ev.back().detail != "recovered after restart");
      }
    }
    auto s = store.summary(job_id);
    CHECK(s.total == static_cast<std::int64_t>(cases.size()));
    CHECK(s.counts[S::Queued] == 3);
    CHECK(s.counts[S::Retrieved] == 2);
    CHECK(s.counts[S::Validated] == 2);
    CHECK(s.counts[S::Pushed] == 2);
    CHECK(s.counts.count(S::Querying) == 0);
    CHECK(s.counts.count(S::Verifying) == 0);
  }
  Store again(path);
  CHECK(again.recovered() == 0);
}

TEST_CASE("summary counts states - sums counters and lists latest failures", "[store]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(10));
  auto items = store.items(job_id);
  for (int i = 0; i < 7; ++i) {
    ItemPatch p;
    p.last_error = "error " + std::to_string(i);
    p.retryable = (i % 2) == 0;
    p.expected = 10;
    p.received = 4;
    p.bytes = 1000;
    REQUIRE(
        store.transition(items[static_cast<std::size_t>(i)].id, S::Queued, S::Failed, "failed", p));
  }
  ItemPatch v;
  v.expected = 5;
  v.pushed = 5;
  v.verified = 5;
  drive_to(store, items[7].id, S::Verifying);
  REQUIRE(store.transition(items[7].id, S::Verifying, S::Verified, "ok", v));
  drive_to(store, items[8].id, S::Retrieving);

  auto s = store.summary(job_id);
  CHECK(s.job.id == job_id);
  CHECK(s.total == 10);
  CHECK(s.counts[S::Failed] == 7);
  CHECK(s.counts[S::Verified] == 1);
  CHECK(s.counts[S::Retrieving] == 1);
  CHECK(s.counts[S::Queued] == 1);
  CHECK(s.expected == 75);
  CHECK(s.received == 28);
  CHECK(s.pushed == 5);
  CHECK(s.verified == 5);
  CHECK(s.bytes == 7000);
  REQUIRE(s.latest_failures.size() == 5);
  // Same second for all: newest first falls back to the latest written.
  CHECK(s.latest_failures[0].last_error == "error 6");
  CHECK(s.latest_failures[4].last_error == "error 2");
  CHECK(s.latest_failures[1].retryable == false);
  CHECK_THROWS_AS(store.summary(4242), StoreError);
}

TEST_CASE("job becomes done when every item is final - active again on retry", "[store]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(2));
  auto items = store.items(job_id);
  drive_to(store, items[0].id, S::Verified);
  store.refresh_job_state(job_id);
  CHECK(store.job(job_id)->state == JobState::Active);
  REQUIRE(store.transition(items[1].id, S::Queued, S::Failed, "not found"));
  store.refresh_job_state(job_id);
  CHECK(store.job(job_id)->state == JobState::Done);

  CHECK(store.retry_job(job_id) == 1);
  CHECK(store.job(job_id)->state == JobState::Active);
  auto it = *store.item(items[1].id);
  CHECK(it.state == S::Queued);
  CHECK(it.last_error.empty());
  CHECK(it.attempts == 0);
  CHECK(it.next_attempt_at == 0);
  CHECK(store.events(items[1].id).back().to == "queued");
}

TEST_CASE("cancel_job cancels every non-final item - retry_job re-queues failed ones", "[store]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(6));
  auto items = store.items(job_id);
  drive_to(store, items[0].id, S::Verified);
  ItemPatch p;
  p.attempts = 3;
  p.next_attempt_at = 999999;
  p.last_error = "boom";
  p.retryable = false;
  REQUIRE(store.transition(items[1].id, S::Queued, S::Failed, "failed", p));
  drive_to(store, items[2].id, S::Retrieving);
  drive_to(store, items[3].id, S::Pushed);
  // items[4], items[5] stay queued.

  CHECK(store.cancel_job(job_id) == 4);
  CHECK(store.job(job_id)->state == JobState::Cancelled);
  auto after = store.items(job_id);
  CHECK(after[0].state == S::Verified);
  CHECK(after[1].state == S::Failed);
  for (int i = 2; i < 6; ++i) {
    CHECK(after[static_cast<std::size_t>(i)].state == S::Cancelled);
    auto ev = store.events(after[static_cast<std::size_t>(i)].id);
    REQUIRE_FALSE(ev.empty());
    CHECK(ev.back().to == "cancelled");
  }
  CHECK(store.events(after[2].id).back().from == "retrieving");
  // A worker that still holds the retrieving item finds it moved.
  CHECK_FALSE(store.transition(items[2].id, S::Retrieving, S::Retrieved, "late"));
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 0));
  CHECK(store.cancel_job(job_id) == 0);
  CHECK(store.cancel_job(31337) == 0);

  CHECK(store.retry_job(job_id) == 1);
  auto it = *store.item(items[1].id);
  CHECK(it.state == S::Queued);
  CHECK(it.attempts == 0);
  CHECK(it.next_attempt_at == 0);
  CHECK(it.last_error.empty());
  CHECK(it.retryable);
  CHECK(store.job(job_id)->state == JobState::Active);
  CHECK(store.retry_job(job_id) == 0);
  CHECK(store.retry_job(31337) == 0);
}

TEST_CASE("set_paused reports unknown jobs", "[store]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(1));
  CHECK(store.set_paused(job_id, true));
  CHECK(store.job(job_id)->paused);
  CHECK(store.set_paused(job_id, false));
  CHECK_FALSE(store.job(job_id)->paused);
  CHECK_FALSE(store.set_paused(777, true));
}

TEST_CASE("series are replaced wholesale and received counts updated in place", "[store]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(2));
  const auto id = store.items(job_id)[0].id;
  std::vector<Series> in = {
      {0, "1.2.3.2", "CT", "Chest", 2, 100, 0},
      {0, "1.2.3.1", "SR", "Report", 1, 1, 0},
  };
  store.set_series(id, in);
  auto out = store.series(id);
  REQUIRE(out.size() == 2);
  CHECK(out[0].series_uid == "1.2.3.1");  // by series number
  CHECK(out[0].item_id == id);
  CHECK(out[1].description == "Chest");
  CHECK(out[1].expected == 100);

  store.set_series_received(id, "1.2.3.2", 42);
  store.set_series_received(id, "9.9", 3);  // not reported by the C-FIND: recorded as unexpected
  out = store.series(id);
  REQUIRE(out.size() == 3);
  CHECK(out[2].series_uid == "1.2.3.2");
  CHECK(out[2].received == 42);
  CHECK(out[0].series_uid == "9.9");
  CHECK(out[0].expected == 0);
  CHECK(out[0].received == 3);

  store.set_series(id, {{0, "5.5", "MR", "T1", 1, 10, 0}});
  out = store.series(id);
  REQUIRE(out.size() == 1);
  CHECK(out[0].series_uid == "5.5");
  CHECK(store.series(store.items(job_id)[1].id).empty());
  CHECK_THROWS_AS(store.set_series(55555, in), StoreError);  // no such item
}

TEST_CASE(
    "record_patient reports one PatientID with two subjects and one subject with two "
    "PatientIDs",
    "[store]") {
  TempDir dir;
  Store store(dir.file("jobs.db"));
  const auto job = store.create_job(make_job(6));
  const auto other_job = store.create_job(make_job(2));
  const auto items = store.items(job);
  // Row 1: PID1 is SUBJ1. The same pair again (another study of that patient) is consistent.
  CHECK(store.record_patient(items[0].id, "PID1", "SUBJ1").empty());
  CHECK(store.record_patient(items[1].id, "PID1", "subj1").empty());  // labels: case-insensitive
  // PID1 given another subject: XNAT would split the patient.
  const auto split = store.record_patient(items[2].id, "PID1", "SUBJ3");
  CHECK(split.find("PatientID PID1 is subject SUBJ1 on row 1 but subject SUBJ3 here") !=
        std::string::npos);
  // SUBJ1 given to another PatientID: XNAT would merge two patients.
  const auto merge = store.record_patient(items[3].id, "PID4", "SUBJ1");
  CHECK(merge.find("subject SUBJ1 is given to PatientID PID1 on row 1 and to PatientID PID4") !=
        std::string::npos);
  // The recording happened anyway (the caller decides: warning or strict failure).
  CHECK(store.item(items[3].id)->pacs_patient_id == "PID4");
  // Cancelled items and other jobs do not count.
  REQUIRE(store.transition(items[4].id, S::Queued, S::Cancelled, "test"));
  CHECK(store.record_patient(items[4].id, "PID5", "SUBJ5").empty());
  CHECK(store.record_patient(items[5].id, "PID5", "SUBJ6").empty());
  CHECK(store.record_patient(store.items(other_job)[0].id, "PID1", "SUBJX").empty());
}

TEST_CASE("schema version 2 adds the label-consistency indexes", "[store]") {
  TempDir dir;
  const auto path = dir.file("jobs.db");
  {
    Store store(path);
    CHECK(store.schema_version() >= 2);
  }
  RawDb raw(path);
  CHECK(raw.query_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                      "('items_patient', 'items_subject')") == 2);
}

TEST_CASE(
    "schema version 5 migrates a v4 store: verification counters become item columns, "
    "a re-push an older daemon made is counted from its events",
    "[store]") {
  TempDir dir;
  const auto path = dir.file("jobs.db");
  std::int64_t repushed = 0, fresh = 0;
  {
    Store store(path);
    const auto job = store.create_job(make_job(2));
    repushed = store.items(job)[0].id;
    fresh = store.items(job)[1].id;
    drive_to(store, repushed, S::Verifying);
    // What a v4 daemon wrote when verification sent the study back to be pushed again.
    REQUIRE(store.transition(repushed, S::Verifying, S::Validated,
                             "verification: series 1.2 (T1): 2 of 3 files in XNAT"));
  }
  {
    RawDb raw(path);  // back to v4: the columns of v5 gone, its version row too
    raw.exec("ALTER TABLE items DROP COLUMN verify_checks");
    raw.exec("ALTER TABLE items DROP COLUMN repushes");
    raw.exec("DELETE FROM schema_version WHERE version = 5");
  }
  Store store(path);
  CHECK(store.schema_version() == 5);
  CHECK(store.item(repushed)->repushes == 1);
  CHECK(store.item(fresh)->repushes == 0);
  CHECK(store.item(repushed)->verify_checks == 0);
}

TEST_CASE(
    "a transition writes what the step learned in its transaction: counters, series, "
    "received counts, the job's destination - and back to queued resets the counters",
    "[store]") {
  TempDir dir;
  Store store(dir.file("jobs.db"));
  const auto job = store.create_job(make_job(1));
  const auto id = store.items(job)[0].id;
  drive_to(store, id, S::Querying);
  ItemPatch found;
  found.series =
      std::vector<Series>{{id, "1.1", "MR", "T1", 1, 3, 0}, {id, "1.2", "MR", "T2", 2, 4, 0}};
  REQUIRE(store.transition(id, S::Querying, S::Retrieving, "found", found));
  CHECK(store.series(id).size() == 2);
  REQUIRE(store.transition(id, S::Retrieving, S::Retrieved, "retrieved"));
  REQUIRE(store.transition(id, S::Retrieved, S::Validating, "claimed"));
  ItemPatch validated;
  validated.series_received = {{"1.1", 3}, {"1.9", 1}};
  REQUIRE(store.transition(id, S::Validating, S::Validated, "valid", validated));
  const auto series = store.series(id);
  REQUIRE(series.size() == 3);  // the series C-FIND did not report is recorded (expected 0)
  for (const auto& s : series) {
    INFO(s.series_uid);
    CHECK(s.received == (s.series_uid == "1.1" ? 3 : s.series_uid == "1.9" ? 1 : 0));
    CHECK(s.expected == (s.series_uid == "1.1" ? 3 : s.series_uid == "1.2" ? 4 : 0));
  }
  REQUIRE(store.transition(id, S::Validated, S::Pushing, "claimed"));
  ItemPatch pushed;
  pushed.job_destination = p2x::domain::Destination::Prearchive;
  REQUIRE(store.transition(id, S::Pushing, S::Pushed, "uploaded", pushed));
  CHECK(store.job(job)->destination == p2x::domain::Destination::Prearchive);
  REQUIRE(store.transition(id, S::Pushed, S::Verifying, "claimed"));
  ItemPatch checks;
  checks.verify_checks = 3;
  checks.repushes = 1;
  REQUIRE(store.transition(id, S::Verifying, S::Pushed, "waiting", checks));
  CHECK(store.item(id)->verify_checks == 3);
  CHECK(store.item(id)->repushes == 1);
  // A destination once decided stays.
  REQUIRE(store.transition(id, S::Pushed, S::Verifying, "claimed"));
  ItemPatch other;
  other.job_destination = p2x::domain::Destination::Archive;
  other.verify_checks = 4;
  REQUIRE(store.transition(id, S::Verifying, S::Validated, "verification: again", other));
  CHECK(store.job(job)->destination == p2x::domain::Destination::Prearchive);
  REQUIRE(store.transition(id, S::Validated, S::Pushing, "claimed"));
  REQUIRE(store.transition(id, S::Pushing, S::Validated, "back"));
  REQUIRE(store.transition(id, S::Validated, S::Pushing, "claimed"));
  REQUIRE(store.transition(id, S::Pushing, S::Failed, "failed"));
  REQUIRE(store.retry_job(job) == 1);
  CHECK(store.item(id)->verify_checks == 0);
  CHECK(store.item(id)->repushes == 0);
}

// The pipeline's state logic, step by step, with fake PACS and XNAT (fakes.hpp) and a real
// store: what each outcome does to an item (attempts, backoff, waits, failures, job state), that
// every stage is claimed (no item is verified twice, no job is done while its spool holds files),
// and that reload() is safe while workers run. Runs in a second or two; the real-peer tests
// (import_test, crash_test, ...) stay beside it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include "pacs/pacs.hpp"

#include "fakes.hpp"
#include "support/temp_dir.hpp"
#include "pipeline/fetch_plan.hpp"
#include "pipeline/pipeline.hpp"

using namespace p2x;
using p2x::test::FakeArchive;
using p2x::test::FakePacs;
using S = store::ItemState;
namespace fs = std::filesystem;

namespace {

// On tmpfs where there is one: the store fsyncs its transitions, and these tests make thousands.
std::string scratch_prefix() {
  return fs::is_directory("/dev/shm") ? "/dev/shm/p2x-steps" : "p2x-steps";
}

std::vector<test::GeneratedStudy> make_studies(const std::string& dir, int n, int series,
                                               int instances) {
  auto specs = test::uniform_corpus(n, series, instances);
  for (auto& s : specs) s.rows = s.cols = 16;
  return test::generate(specs, dir);
}

config::Config make_config(const std::string& spool) {
  config::Config cfg;
  config::PacsNode node;
  node.name = "FAKE";
  node.ae_title = "FAKE";
  node.host = "127.0.0.1";
  // One fetch per study: these steps count the PACS's fetches and their faults act per fetch.
  node.parallel_series = false;
  cfg.pacs.push_back(node);
  cfg.paths.spool_dir = spool;
  cfg.limits.max_attempts = 3;
  cfg.limits.backoff_initial_s = 10;
  cfg.limits.backoff_max_s = 100;
  cfg.limits.spool_min_free_mb = 0;
  return cfg;
}

// A store, fakes and a pipeline on a pinned clock; one job of `n` accession rows.
struct Rig {
  Rig(int n, int series = 2, int instances = 3)
      : studies(make_studies(tmp.path() + "/pacs", n, series, instances)),
        pacs(studies),
        xnat(studies),
        cfg(make_config(tmp.path() + "/spool")),
        store(tmp.path() + "/jobs.db") {
    // spdlog's registry is built on first use; do it here, before any worker thread, as the
    // daemon does (its lazy construction inside the uninstrumented libspdlog shows as a race
    // under ThreadSanitizer when two workers log first at once).
    spdlog::default_logger();
    fs::create_directories(cfg.paths.spool_dir);
    pipe = std::make_unique<pipeline::Pipeline>(cfg, store, pacs, xnat,
                                                [this] { return clock.load(); });
    store::NewJob job;
    job.project = "P";
    job.pacs = "FAKE";
    job.csv_name = "rows.csv";
    for (int i = 0; i < n; ++i) {
      store::NewItem it;
      it.row = i + 1;
      it.line = i + 2;
      it.kind = p2x::domain::RowKind::Accession;
      it.accession = studies[static_cast<std::size_t>(i)].spec.accession;
      it.subject = "S" + std::to_string(i + 1);
      it.session = "E" + std::to_string(i + 1);
      job.items.push_back(it);
    }
    job_id = store.create_job(job);
  }
  store::Item item(std::size_t i = 0) const { return store.items(job_id).at(i); }
  std::string spool_of(std::size_t i = 0) const {
    return cfg.paths.spool_dir + "/" + std::to_string(item(i).id);
  }
  void later(std::int64_t s) { clock += s; }
  bool retrieve() { return pipe->retrieve_once("FAKE"); }
  // A push, then a turn of the verification lane (its own workers in the daemon). Returns
  // whether the push claimed an item.
  bool push() {
    const bool pushed = pipe->push_once();
    pipe->verify_once();
    return pushed;
  }
  // Retrieve and validate every item once (each step until nothing is due).
  void retrieve_and_validate_all() {
    while (retrieve()) {
    }
    while (pipe->validate_once()) {
    }
  }
  std::vector<std::string> events_to(std::size_t i, S to) const {
    std::vector<std::string> out;
    for (const auto& e : store.events(item(i).id)) {
      if (e.to == store::to_string(to)) out.push_back(e.detail);
    }
    return out;
  }

  test::TempDir tmp{scratch_prefix()};
  std::vector<test::GeneratedStudy> studies;
  FakePacs pacs;
  FakeArchive xnat;
  config::Config cfg;
  store::Store store;
  std::atomic<std::int64_t> clock{1'000'000};
  std::unique_ptr<pipeline::Pipeline> pipe;
  std::int64_t job_id = 0;
};

std::size_t files_in(const std::string& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("steps: a study goes from queued to verified, one claimed step at a time", "[steps]") {
  Rig rig(1);
  REQUIRE(rig.retrieve());
  CHECK(rig.item().state == S::Retrieved);
  CHECK(rig.item().received == 6);
  CHECK(rig.pacs.last_selections().size() == 1);  // the whole study in one request
  CHECK(rig.pacs.last_selections()[0].series_uids.empty());
  REQUIRE(rig.pipe->validate_once());
  CHECK(rig.item().state == S::Validated);
  REQUIRE(rig.pipe->push_once());
  CHECK(rig.item().state == S::Pushed);  // a pusher does not verify: verification has its lanes
  REQUIRE(rig.pipe->verify_once());
  const auto it = rig.item();
  CHECK(it.state == S::Verified);
  CHECK(it.verified == 6);
  CHECK(it.attempts == 0);
  CHECK(rig.xnat.uploads == 1);
  CHECK(rig.xnat.queries_after_upload("E1") == 1);
  CHECK_FALSE(fs::exists(rig.spool_of()));
  CHECK(rig.store.job(rig.job_id)->state == store::JobState::Done);
  // The claimed states show in the audit trail.
  CHECK(rig.events_to(0, S::Verifying).size() == 1);
  CHECK_FALSE(rig.pipe->verify_once());  // nothing left to verify
}

TEST_CASE(
    "steps: a PACS that drops the association mid-move - retried with backoff, then only "
    "what is missing is fetched",
    "[steps]") {
  Rig rig(1);
  rig.pacs.drop_after_files = 4;
  REQUIRE(rig.retrieve());
  auto it = rig.item();
  CHECK(it.state == S::Queued);
  CHECK(it.attempts == 1);
  CHECK(it.next_attempt_at >= rig.clock + 8);  // 10 s +-20 %
  CHECK(it.next_attempt_at <= rig.clock + 12);
  CHECK_THAT(it.last_error, Catch::Contains("peer aborted"));
  CHECK_FALSE(rig.retrieve());  // not due yet
  rig.pacs.drop_after_files = -1;
  rig.later(20);
  REQUIRE(rig.retrieve());
  CHECK(rig.item().state == S::Retrieved);
  // 4 of 6 files were there (series 1 whole, series 2 one of three): only the rest is asked for.
  const auto sels = rig.pacs.last_selections();
  REQUIRE(sels.size() == 1);
  CHECK(sels[0].series_uids.size() == 1);
  CHECK(sels[0].sop_uids.size() == 2);
  REQUIRE(rig.pipe->validate_once());
  CHECK(rig.item().state == S::Validated);
}

TEST_CASE(
    "steps: a PACS that delivers fewer instances than its C-FIND said - sent back to "
    "retrieval, fails after max_attempts with backoff, events bounded",
    "[steps]") {
  Rig rig(1);
  rig.pacs.withhold = 1;
  std::vector<std::int64_t> due;
  for (int round = 0; round < 10 && !store::is_final(rig.item().state); ++round) {
    rig.retrieve();
    rig.pipe->validate_once();
    due.push_back(rig.item().next_attempt_at - rig.clock);
    rig.later(200);
  }
  const auto it = rig.item();
  CHECK(it.state == S::Failed);
  CHECK(it.attempts == 3);
  CHECK(it.retryable);
  CHECK_THAT(it.last_error, Catch::Contains("gave up after 3 attempts"));
  CHECK_THAT(rig.events_to(0, S::Queued).at(0), Catch::Contains("incomplete"));
  REQUIRE(due.size() == 3);
  CHECK(due[0] >= 8);  // backoff between tries: 10 s, then 20 s (+-20 %)
  CHECK(due[1] >= 16);
  CHECK(rig.store.events(it.id).size() <= 3 * 6);
  CHECK(rig.store.job(rig.job_id)->state == store::JobState::Done);
}

namespace {

// A copy of `source` with a new SOP Instance UID (the study's and series' UIDs kept), as a
// forged C-STORE under the PACS's own AE title would bring it.
std::string forge_instance(const std::string& source, const std::string& dir) {
  DcmFileFormat ff;
  REQUIRE(ff.loadFile(source.c_str()).good());
  char uid[100];
  dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
  REQUIRE(ff.getDataset()->putAndInsertString(DCM_SOPInstanceUID, uid).good());
  ff.getMetaInfo()->clear();
  fs::create_directories(dir);
  const std::string out = dir + "/" + uid + ".dcm";
  REQUIRE(ff.saveFile(out.c_str(), EXS_LittleEndianExplicit).good());
  return out;
}

}  // namespace

TEST_CASE(
    "steps: an instance the PACS never had, stored into the retrieval under its AE title, "
    "is kept apart - the study is validated whole, no attempt used",
    "[steps]") {
  Rig rig(1);
  const std::string forged =
      forge_instance(rig.studies[0].series[0].files[0].path, rig.tmp.path() + "/forged");
  rig.pacs.also_deliver = {forged};
  REQUIRE(rig.retrieve());
  auto it = rig.item();
  CHECK(it.state == S::Retrieved);
  CHECK(it.expected == 6);
  CHECK_FALSE(fs::exists(rig.spool_of() + "/" + fs::path(forged).filename().string()));
  const auto kept = pacs::quarantined_files(rig.spool_of());
  REQUIRE(kept.size() == 1);
  CHECK_THAT(kept[0].reason, Catch::Contains("is not on PACS FAKE (its IMAGE-level C-FIND does "
                                             "not list it)"));
  CHECK_THAT(rig.events_to(0, S::Retrieved).at(0),
             Catch::Contains("kept apart 1 instance(s) the PACS does not have"));
  REQUIRE(rig.pipe->validate_once());
  CHECK(rig.item().state == S::Validated);
  REQUIRE(rig.push());
  it = rig.item();
  CHECK(it.state == S::Verified);
  CHECK(it.verified == 6);
  CHECK(it.attempts == 0);
}

TEST_CASE(
    "steps: a series that grew on the PACS during the retrieval - the expectation follows "
    "the PACS and the study is imported whole",
    "[steps]") {
  Rig rig(1);
  rig.pacs.undercount = 1;  // C-FIND says 2 for series 1; the PACS holds and sends 3
  REQUIRE(rig.retrieve());
  auto it = rig.item();
  CHECK(it.state == S::Retrieved);
  CHECK(it.expected == 6);
  CHECK(rig.store.series(it.id).at(0).expected == 3);
  CHECK(pacs::quarantined_files(rig.spool_of()).empty());
  CHECK_THAT(rig.events_to(0, S::Retrieved).at(0),
             Catch::Contains("1 series grew on the PACS during the retrieval: 6 instances"));
  REQUIRE(rig.pipe->validate_once());
  CHECK(rig.item().state == S::Validated);
  REQUIRE(rig.push());
  it = rig.item();
  CHECK(it.state == S::Verified);
  CHECK(it.verified == 6);
  CHECK(it.attempts == 0);
}

TEST_CASE("steps: files that cannot be read fail the study after max_attempts, never a spin",
          "[steps]") {
  Rig rig(1);
  rig.pacs.garbage = true;
  int rounds = 0;
  while (!store::is_final(rig.item().state) && rounds < 10) {
    rig.retrieve();
    rig.pipe->validate_once();
    CHECK_FALSE(rig.pipe->validate_once());  // not due again at once: backoff
    rig.later(200);
    ++rounds;
  }
  CHECK(rounds == 3);
  CHECK(rig.item().state == S::Failed);
  CHECK_THAT(rig.item().last_error, Catch::Contains("gave up after 3 attempts"));
  CHECK(rig.store.events(rig.item().id).size() <= 3 * 6);
}

TEST_CASE("steps: an unexpected error in a step is retried with backoff and counted", "[steps]") {
  Rig rig(1);
  rig.retrieve_and_validate_all();
  rig.xnat.query_errors = 100;
  for (int i = 0; i < 10 && !store::is_final(rig.item().state); ++i) {
    rig.push();
    CHECK_FALSE(rig.push());
    rig.later(200);
  }
  CHECK(rig.item().state == S::Failed);
  CHECK(rig.item().attempts == 3);
  CHECK_THAT(rig.item().last_error, Catch::Contains("unexpected error: disk I/O error"));
  CHECK(rig.xnat.uploads == 0);
}

TEST_CASE("steps: a PACS down for N calls - items wait without using attempts", "[steps]") {
  Rig rig(1);
  rig.pacs.down_for = 2;
  REQUIRE(rig.retrieve());
  auto it = rig.item();
  CHECK(it.state == S::Queued);
  CHECK(it.attempts == 0);
  CHECK_THAT(it.wait_reason, Catch::Contains("PACS FAKE unreachable"));
  rig.later(1000);
  REQUIRE(rig.retrieve());
  CHECK(rig.item().attempts == 0);
  rig.later(1000);
  REQUIRE(rig.retrieve());
  CHECK(rig.item().state == S::Retrieved);
  CHECK(rig.item().attempts == 0);
}

TEST_CASE(
    "steps: C-MOVEs that fail because our Storage SCP is full - the item waits for a slot "
    "without using attempts, however often",
    "[steps]") {
  Rig rig(1);
  rig.pacs.receiver_busy_for = 2 * rig.cfg.limits.max_attempts;
  for (int i = 0; i < 2 * rig.cfg.limits.max_attempts; ++i) {
    INFO("fetch " << i);
    REQUIRE(rig.retrieve());
    const auto it = rig.item();
    CHECK(it.state == S::Queued);
    CHECK(it.attempts == 0);
    CHECK_THAT(it.wait_reason,
               Catch::Contains("waiting for a free association of our Storage SCP"));
    rig.later(1000);
  }
  REQUIRE(rig.retrieve());
  CHECK(rig.item().state == S::Retrieved);
  CHECK(rig.item().attempts == 0);
}

TEST_CASE(
    "steps: XNAT stores and then answers 500 - the re-push finds the study and does not "
    "upload again",
    "[steps]") {
  Rig rig(1);
  rig.retrieve_and_validate_all();
  rig.xnat.fail_after_store = 1;
  REQUIRE(rig.push());
  CHECK(rig.item().state == S::Validated);
  CHECK(rig.item().attempts == 1);
  CHECK(rig.xnat.uploads == 1);
  rig.later(200);
  REQUIRE(rig.push());
  CHECK(rig.item().state == S::Verified);
  CHECK(rig.xnat.uploads == 1);
  CHECK(rig.events_to(0, S::Pushed).back() == "XNAT already holds this study; not uploaded again");
}

TEST_CASE("steps: XNAT drops the body - pushed again", "[steps]") {
  Rig rig(1);
  rig.retrieve_and_validate_all();
  rig.xnat.drop_body = 1;
  REQUIRE(rig.push());
  CHECK(rig.item().state == S::Validated);
  rig.later(200);
  REQUIRE(rig.push());
  CHECK(rig.item().state == S::Verified);
  CHECK(rig.xnat.uploads == 2);
  CHECK(rig.xnat.files_held("E1") == 6);
}

TEST_CASE("steps: XNAT refuses the credentials - the whole job fails once with XNAT's reason",
          "[steps]") {
  Rig rig(3);
  rig.retrieve_and_validate_all();
  rig.xnat.refuse_credentials = 1;
  REQUIRE(rig.push());
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("item " << i);
    CHECK(rig.item(i).state == S::Failed);
    CHECK_THAT(rig.item(i).last_error, Catch::Contains("XNAT: 401"));
    CHECK(rig.item(i).retryable);
  }
  CHECK(rig.xnat.uploads == 1);
  CHECK_FALSE(rig.push());
  // `pacs2xnat retry` after fixing the credentials: the items go through.
  CHECK(rig.store.retry_job(rig.job_id) == 3);
  rig.retrieve_and_validate_all();
  while (rig.push()) {
  }
  for (std::size_t i = 0; i < 3; ++i) CHECK(rig.item(i).state == S::Verified);
}

TEST_CASE(
    "steps: XNAT holds fewer files than sent - verification waits, pushes again once, "
    "then fails with the series named and the series-import-filter hint",
    "[steps]") {
  Rig rig(1);
  rig.retrieve_and_validate_all();
  rig.xnat.keep_fewer = 1;
  for (int i = 0; i < 100 && !store::is_final(rig.item().state); ++i) {
    rig.push();
    rig.pipe->verify_once();
    rig.later(200);
  }
  const auto it = rig.item();
  CHECK(it.state == S::Failed);
  CHECK(it.attempts == 1);
  CHECK(it.retryable);
  CHECK_THAT(it.last_error, Catch::Contains("series ") &&
                                Catch::Contains(": 2 of 3 files in XNAT") &&
                                Catch::Contains("series import filter in project"));
  CHECK(rig.xnat.uploads == 2);  // the first push and one push again; never a loop
  CHECK(rig.store.events(it.id).size() <= 60);
  CHECK(fs::exists(rig.spool_of()));  // a failed study keeps its files for `retry`
}

TEST_CASE("steps: an item cancelled during its push - the outcome is a visible no-op", "[steps]") {
  Rig rig(1);
  rig.retrieve_and_validate_all();
  rig.xnat.during_upload = [&] { rig.store.cancel_job(rig.job_id); };
  REQUIRE(rig.push());
  CHECK(rig.item().state == S::Cancelled);
  CHECK(rig.events_to(0, S::Pushed).empty());
  CHECK(rig.events_to(0, S::Verified).empty());
}

TEST_CASE(
    "steps: with 4 pushers and 50 items every item is verified by exactly one request "
    "sequence, and a done job's spool is already empty (20 runs)",
    "[steps][concurrency]") {
  for (int run = 0; run < 20; ++run) {
    INFO("run " << run);
    Rig rig(50, 1, 2);
    rig.retrieve_and_validate_all();
    std::atomic<bool> done{false};
    std::atomic<int> spool_files_at_done{-1};
    std::thread watcher([&] {  // polls the job's state and its spool together
      for (;;) {
        const bool was_done = done;
        if (rig.store.job(rig.job_id)->state == store::JobState::Done) {
          std::size_t n = 0;
          for (int i = 1; i <= 50; ++i)
            n += files_in(rig.cfg.paths.spool_dir + "/" + std::to_string(i));
          spool_files_at_done = static_cast<int>(n);
          return;
        }
        if (was_done) return;
        std::this_thread::yield();
      }
    });
    std::vector<std::thread> pushers;
    for (int p = 0; p < 4; ++p) {
      pushers.emplace_back([&] {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (rig.store.job(rig.job_id)->state != store::JobState::Done &&
               std::chrono::steady_clock::now() < until) {
          rig.push();
          rig.pipe->verify_once();
        }
      });
    }
    for (auto& t : pushers) t.join();
    done = true;
    watcher.join();
    CHECK(spool_files_at_done == 0);
    CHECK(rig.xnat.uploads == 50);
    for (int i = 1; i <= 50; ++i) {
      const std::string label = "E" + std::to_string(i);
      INFO(label);
      CHECK(rig.xnat.queries_after_upload(label) == 1);
      CHECK(rig.events_to(static_cast<std::size_t>(i - 1), S::Verified).size() == 1);
    }
  }
}

TEST_CASE("steps: reload() while workers run - limits change, every item is verified",
          "[steps][concurrency]") {
  Rig rig(12, 1, 2);
  rig.pipe->start();
  std::thread reloader([&] {
    for (int i = 0; i < 200 && rig.store.job(rig.job_id)->state != store::JobState::Done; ++i) {
      config::Config next = rig.cfg;
      next.limits.max_attempts = 3 + i % 4;
      next.limits.backoff_initial_s = 10 + i % 7;
      next.limits.spool_max_mb = i % 2 ? 0 : 1000;
      rig.pipe->reload(next);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (rig.store.job(rig.job_id)->state != store::JobState::Done &&
         std::chrono::steady_clock::now() < until) {
    rig.pipe->wake();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  reloader.join();
  rig.pipe->stop();
  for (std::size_t i = 0; i < 12; ++i) CHECK(rig.item(i).state == S::Verified);
  CHECK(rig.xnat.uploads == 12);
  CHECK(rig.pipe->limits().backoff_max_s == 100);
}

TEST_CASE("fetch plan: whole study, missing series, missing instances, wanted SOP classes only",
          "[steps][plan]") {
  pipeline::Found found;
  found.study.study_uid = "1.2";
  for (const char* uid : {"1.2.1", "1.2.2", "1.2.3"}) {
    store::Series s;
    s.series_uid = uid;
    s.expected = 3;
    found.series.push_back(s);
  }
  found.expected = 9;
  std::vector<std::string> listed;
  auto list = [&](const std::string& series) {
    listed.push_back(series);
    return std::vector<std::string>{series + ".1", series + ".2", series + ".3"};
  };
  SECTION("nothing there: one request for the whole study") {
    auto plan = pipeline::plan_fetch(found, {}, list);
    REQUIRE(plan.selections.size() == 1);
    CHECK(plan.selections[0].series_uids.empty());
    CHECK(plan.requested == 9);
    CHECK(listed.empty());
  }
  SECTION("one series complete, one partial, one absent") {
    pipeline::SpoolContents have;
    have.per_series = {{"1.2.1", 3}, {"1.2.2", 1}};
    have.sops = {"1.2.1.1", "1.2.1.2", "1.2.1.3", "1.2.2.2"};
    auto plan = pipeline::plan_fetch(found, have, list);
    REQUIRE(plan.selections.size() == 2);
    CHECK(plan.selections[0].series_uids == std::vector<std::string>{"1.2.2"});
    CHECK(plan.selections[0].sop_uids == std::vector<std::string>{"1.2.2.1", "1.2.2.3"});
    CHECK(plan.selections[1].series_uids == std::vector<std::string>{"1.2.3"});
    CHECK(plan.selections[1].sop_uids.empty());
    CHECK(plan.requested == 5);
    CHECK(listed == std::vector<std::string>{"1.2.2"});
  }
  SECTION("everything there: nothing to fetch") {
    pipeline::SpoolContents have;
    have.per_series = {{"1.2.1", 3}, {"1.2.2", 3}, {"1.2.3", 3}};
    CHECK(pipeline::plan_fetch(found, have, list).selections.empty());
  }
  SECTION("a series of which only some SOP classes are wanted: those instances only") {
    found.only_sops["1.2.1"] = {"1.2.1.1", "1.2.1.3"};
    found.series[0].expected = 2;
    auto plan = pipeline::plan_fetch(found, {}, list);
    REQUIRE(plan.selections.size() == 3);
    CHECK(plan.selections[0].sop_uids == std::vector<std::string>{"1.2.1.1", "1.2.1.3"});
    CHECK(listed.empty());
  }
}

TEST_CASE("split lanes: a study's series dealt over lanes, largest first, fewest-loaded lane",
          "[steps][plan]") {
  pipeline::Found found;
  found.study.study_uid = "1.2";
  const std::vector<std::pair<const char*, int>> series{
      {"1.2.1", 10}, {"1.2.2", 40}, {"1.2.3", 20}, {"1.2.4", 30}};
  for (const auto& [uid, n] : series) {
    store::Series s;
    s.series_uid = uid;
    s.expected = n;
    found.series.push_back(s);
    found.expected += n;
  }
  pipeline::FetchPlan whole;
  whole.selections.push_back({"1.2", {}, {}});
  SECTION("one lane: the plan as it is") {
    auto g = pipeline::split_lanes(whole, found, 1);
    REQUIRE(g.size() == 1);
    REQUIRE(g[0].size() == 1);
    CHECK(g[0][0].series_uids.empty());
  }
  SECTION("two lanes: 40+10 and 30+20") {
    auto g = pipeline::split_lanes(whole, found, 2);
    REQUIRE(g.size() == 2);
    REQUIRE(g[0].size() == 2);
    REQUIRE(g[1].size() == 2);
    CHECK(g[0][0].series_uids == std::vector<std::string>{"1.2.2"});
    CHECK(g[0][1].series_uids == std::vector<std::string>{"1.2.1"});
    CHECK(g[1][0].series_uids == std::vector<std::string>{"1.2.4"});
    CHECK(g[1][1].series_uids == std::vector<std::string>{"1.2.3"});
  }
  SECTION("more lanes than series: one series each") {
    auto g = pipeline::split_lanes(whole, found, 8);
    REQUIRE(g.size() == 4);
    for (const auto& lane : g) CHECK(lane.size() == 1);
  }
  SECTION("missing instances of one series stay one selection") {
    pipeline::FetchPlan part;
    part.selections.push_back({"1.2", {"1.2.2"}, {"1.2.2.5", "1.2.2.6"}});
    auto g = pipeline::split_lanes(part, found, 4);
    REQUIRE(g.size() == 1);
    CHECK(g[0][0].sop_uids.size() == 2);
  }
}

TEST_CASE(
    "steps: reload() with a higher max_associations runs more retrievals at once (more "
    "retrieval workers, the Gate's new limit)",
    "[steps][concurrency]") {
  Rig rig(8, 1, 2);
  rig.cfg.pacs[0].max_associations = 1;
  rig.pipe = std::make_unique<pipeline::Pipeline>(rig.cfg, rig.store, rig.pacs, rig.xnat,
                                                  [&rig] { return rig.clock.load(); });
  // Each retrieval holds its association inside the PACS until released.
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0, most = 0;
  bool release = false;
  struct Release {  // whatever ends the test, the held retrievals go and the workers stop
    std::mutex& mu;
    std::condition_variable& cv;
    bool& release;
    pipeline::Pipeline& pipe;
    ~Release() {
      {
        std::lock_guard<std::mutex> lock(mu);
        release = true;
        cv.notify_all();
      }
      pipe.stop();  // before the hook's state goes
    }
  } release_at_end{mu, cv, release, *rig.pipe};
  rig.pacs.during_fetch = [&] {
    std::unique_lock<std::mutex> lock(mu);
    most = std::max(most, ++inside);
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    --inside;
  };
  const auto until = [](int s) {
    return std::chrono::steady_clock::now() + std::chrono::seconds(s);
  };
  rig.pipe->start();
  const int workers_at_start = rig.pipe->retrieval_workers();
  CHECK(workers_at_start == 2);  // twice max_associations (1)
  {
    std::unique_lock<std::mutex> lock(mu);
    REQUIRE(cv.wait_until(lock, until(20), [&] { return inside == 1; }));
  }
  CHECK(rig.pipe->gate().peak("FAKE") == 1);
  config::Config raised = rig.cfg;
  raised.pacs[0].max_associations = 4;  // more than the workers started for 1
  CHECK(rig.pipe->gate().limit("FAKE", rig.clock) == 1);
  rig.pipe->reload(raised);
  CHECK(rig.pipe->gate().limit("FAKE", rig.clock) == 4);  // what /metrics reports
  CHECK(rig.pipe->retrieval_workers() == 8);
  {
    std::unique_lock<std::mutex> lock(mu);
    const bool four = cv.wait_until(lock, until(20), [&] { return inside == 4; });
    release = true;
    cv.notify_all();
    REQUIRE(four);
  }
  const auto deadline = until(60);
  while (rig.store.job(rig.job_id)->state != store::JobState::Done &&
         std::chrono::steady_clock::now() < deadline) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(50));  // the workers pass on their own
  }
  rig.pipe->stop();
  CHECK(most == 4);
  CHECK(rig.pipe->gate().peak("FAKE") == 4);
  for (std::size_t i = 0; i < 8; ++i) CHECK(rig.item(i).state == S::Verified);
}

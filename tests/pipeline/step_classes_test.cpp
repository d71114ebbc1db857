// Each step class on its own, with the fakes (fakes.hpp), a real store and a real spool: what a
// step returns for the item it is given — and that it does not write that to the store itself
// (the store still shows the claimed state until apply() records the outcome, with what the step
// learned, in one transaction). And the lease: a claim that ends without an applied outcome goes
// back to its step's ready state with an "abandoned" event, never stays in flight.
#include <catch2/catch.hpp>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "fakes.hpp"
#include "domain/values.hpp"
#include "pipeline/claim.hpp"
#include "pipeline/gate.hpp"
#include "pipeline/live.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/project_check.hpp"
#include "pipeline/push_step.hpp"
#include "pipeline/retrieve_step.hpp"
#include "pipeline/spool.hpp"
#include "pipeline/steps.hpp"
#include "pipeline/validate_step.hpp"
#include "pipeline/verify_step.hpp"
#include "support/temp_dir.hpp"

using namespace p2x;
using p2x::test::FakeArchive;
using p2x::test::FakePacs;
using pipeline::Claim;
using pipeline::Outcome;
using S = store::ItemState;
namespace fs = std::filesystem;

namespace {

std::string scratch_prefix() {
  return fs::is_directory("/dev/shm") ? "/dev/shm/p2x-step-classes" : "p2x-step-classes";
}

config::Config make_config(const std::string& spool) {
  config::Config cfg;
  config::PacsNode node;
  node.name = "FAKE";
  node.ae_title = "FAKE";
  node.host = "127.0.0.1";
  cfg.pacs.push_back(node);
  cfg.paths.spool_dir = spool;
  cfg.limits.max_attempts = 3;
  cfg.limits.backoff_initial_s = 10;
  cfg.limits.backoff_max_s = 100;
  return cfg;
}

// The steps' dependencies, built by hand as the Pipeline builds them; one job of n rows.
struct Parts {
  explicit Parts(int n = 1)
      : studies([&] {
          auto specs = test::uniform_corpus(n, 2, 3);
          for (auto& s : specs) s.rows = s.cols = 16;
          return test::generate(specs, tmp.path() + "/pacs");
        }()),
        pacs(studies),
        xnat(studies),
        cfg(make_config(tmp.path() + "/spool")),
        store(tmp.path() + "/jobs.db"),
        spool(cfg.paths.spool_dir),
        gate(cfg),
        limits(cfg.limits) {
    spdlog::default_logger();
    fs::create_directories(cfg.paths.spool_dir);
    store::NewJob job;
    job.project = "P";
    job.pacs = "FAKE";
    for (int i = 0; i < n; ++i) {
      store::NewItem it;
      it.row = i + 1;
      it.kind = domain::RowKind::Accession;
      it.accession = studies[static_cast<std::size_t>(i)].spec.accession;
      it.subject = "S" + std::to_string(i + 1);
      it.session = "E" + std::to_string(i + 1);
      job.items.push_back(it);
    }
    job_id = store.create_job(job);
  }

  pipeline::Clock clock_fn() {
    return [this] { return clock.load(); };
  }
  // The next due item of `step`, claimed.
  std::unique_ptr<Claim> claim(const pipeline::Step& step) {
    auto item =
        store.claim(step.ready, step.in_flight, clock, step.ready == S::Queued ? "FAKE" : "");
    if (!item) return nullptr;
    auto c = std::make_unique<Claim>(store, std::move(*item), step, clock_fn(),
                                     pipeline::RetryPolicy::from(limits.get()));
    REQUIRE(c->load());
    return c;
  }
  bool apply(Claim& c, const Outcome& o) {
    return pipeline::apply(store, c, o, pipeline::RetryPolicy::from(limits.get()), clock, 0);
  }
  store::Item item(std::size_t i = 0) const { return store.items(job_id).at(i); }

  pipeline::RetrieveStep retrieve_step() {
    return pipeline::RetrieveStep(pacs, gate, spool, store, limits, clock_fn(), shutdown,
                                  {"US", 11112}, {});
  }
  // Retrieves item `i` (applying the outcome) and claims it for validation.
  Outcome retrieve_one() {
    auto c = claim(pipeline::kRetrieveStep);
    REQUIRE(c);
    REQUIRE(gate.try_acquire("FAKE", clock));
    pipeline::SlotLease slot(gate, "FAKE");
    auto step = retrieve_step();
    const Outcome o = step.run(*c, *cfg.find_pacs("FAKE"), slot);
    apply(*c, o);
    return o;
  }
  void validate_one() {
    auto c = claim(pipeline::kValidateStep);
    REQUIRE(c);
    pipeline::ValidateStep step(spool, store);
    REQUIRE(apply(*c, step.run(*c)));
  }
  void push_one(pipeline::ProjectCheck& project) {
    auto c = claim(pipeline::kPushStep);
    REQUIRE(c);
    pipeline::PushStep step(xnat, spool, project, store);
    REQUIRE(apply(*c, step.run(*c)));
  }

  test::TempDir tmp{scratch_prefix()};
  std::vector<test::GeneratedStudy> studies;
  FakePacs pacs;
  FakeArchive xnat;
  config::Config cfg;
  store::Store store;
  pipeline::Spool spool;
  pipeline::Gate gate;
  pipeline::LiveLimits limits;
  pipeline::Shutdown shutdown;
  std::atomic<std::int64_t> clock{1'000'000};
  std::int64_t job_id = 0;
};

// An XNAT whose project has no anonymisation script until told otherwise.
class UnscriptedArchive : public FakeArchive {
 public:
  using FakeArchive::FakeArchive;
  bool scripted = false;
  xnat::AnonymisationSettings anonymisation(const std::string&) override {
    const auto a = scripted ? xnat::Answer::Yes : xnat::Answer::No;
    return {a, xnat::Answer::No, {}, {}};
  }
};

}  // namespace

TEST_CASE(
    "retrieve step on its own: what C-FIND found goes with the advance to retrieving, "
    "the counts travel in the outcome",
    "[step-classes]") {
  Parts parts;
  auto c = parts.claim(pipeline::kRetrieveStep);
  REQUIRE(c);
  REQUIRE(parts.gate.try_acquire("FAKE", parts.clock));
  pipeline::SlotLease slot(parts.gate, "FAKE");
  auto step = parts.retrieve_step();
  const Outcome o = step.run(*c, *parts.cfg.find_pacs("FAKE"), slot);
  CHECK(o.kind == Outcome::Kind::Done);
  CHECK(o.next == S::Retrieved);
  CHECK(o.patch.received == 6);
  CHECK(parts.gate.in_use("FAKE") == 0);  // the slot went back before the counting
  // Not applied yet: the item is where the step's advance left it, with its series.
  auto it = parts.item();
  CHECK(it.state == S::Retrieving);
  CHECK(it.received == 0);
  CHECK(parts.store.series(it.id).size() == 2);
  CHECK(it.study_uid == parts.studies[0].study_uid);
  REQUIRE(parts.apply(*c, o));
  CHECK(parts.item().state == S::Retrieved);
  CHECK(parts.item().received == 6);
}

TEST_CASE("retrieve step on its own: a PACS that does not answer - the item waits, no attempt",
          "[step-classes]") {
  Parts parts;
  parts.pacs.down_for = 1;
  auto c = parts.claim(pipeline::kRetrieveStep);
  REQUIRE(c);
  REQUIRE(parts.gate.try_acquire("FAKE", parts.clock));
  pipeline::SlotLease slot(parts.gate, "FAKE");
  auto step = parts.retrieve_step();
  const Outcome o = step.run(*c, *parts.cfg.find_pacs("FAKE"), slot);
  CHECK(o.kind == Outcome::Kind::Wait);
  CHECK_FALSE(o.counts_attempt);
  CHECK_THAT(*o.patch.wait_reason, Catch::Contains("PACS FAKE unreachable"));
  REQUIRE(parts.apply(*c, o));
  CHECK(parts.item().state == S::Queued);
  CHECK(parts.item().attempts == 0);
}

TEST_CASE("validate step on its own: the received counts per series travel in the outcome",
          "[step-classes]") {
  Parts parts;
  parts.retrieve_one();
  auto c = parts.claim(pipeline::kValidateStep);
  REQUIRE(c);
  pipeline::ValidateStep step(parts.spool, parts.store);
  const Outcome o = step.run(*c);
  CHECK(o.kind == Outcome::Kind::Done);
  CHECK(o.next == S::Validated);
  REQUIRE(o.patch.series_received.size() == 2);
  CHECK(o.patch.series_received[0].second == 3);
  const auto id = parts.item().id;
  for (const auto& s : parts.store.series(id)) CHECK(s.received == 0);  // not written by the step
  CHECK(parts.spool.validated(id).has_value());  // the push's list, in the spool
  REQUIRE(parts.apply(*c, o));
  for (const auto& s : parts.store.series(id)) CHECK(s.received == 3);
  CHECK(parts.item().state == S::Validated);
}

TEST_CASE("validate step on its own: a study with files missing goes back to the queue",
          "[step-classes]") {
  Parts parts;
  parts.pacs.withhold = 1;
  parts.retrieve_one();
  auto c = parts.claim(pipeline::kValidateStep);
  REQUIRE(c);
  pipeline::ValidateStep step(parts.spool, parts.store);
  const Outcome o = step.run(*c);
  CHECK(o.kind == Outcome::Kind::Retry);
  CHECK(o.back_to == S::Queued);
  CHECK_THAT(o.detail, Catch::StartsWith("incomplete: "));
  CHECK_FALSE(parts.spool.validated(parts.item().id).has_value());
}

TEST_CASE(
    "push step on its own: the job's destination, decided by its first push, travels in "
    "the outcome",
    "[step-classes]") {
  Parts parts;
  parts.retrieve_one();
  parts.validate_one();
  pipeline::ProjectCheck project(parts.xnat, parts.limits, parts.clock_fn(), std::nullopt);
  auto c = parts.claim(pipeline::kPushStep);
  REQUIRE(c);
  pipeline::PushStep step(parts.xnat, parts.spool, project, parts.store);
  const Outcome o = step.run(*c);
  CHECK(o.kind == Outcome::Kind::Done);
  CHECK(o.next == S::Pushed);
  CHECK(o.patch.job_destination == domain::Destination::Archive);
  CHECK(parts.xnat.uploads == 1);
  CHECK_FALSE(parts.store.job(parts.job_id)->destination);  // not written by the step
  REQUIRE(parts.apply(*c, o));
  CHECK(parts.store.job(parts.job_id)->destination == domain::Destination::Archive);
  CHECK(parts.item().state == S::Pushed);
}

TEST_CASE("push step on its own: no validated list - validated again, no attempt",
          "[step-classes]") {
  Parts parts;
  parts.retrieve_one();
  parts.validate_one();
  parts.spool.forget_validated(parts.item().id);
  pipeline::ProjectCheck project(parts.xnat, parts.limits, parts.clock_fn(), std::nullopt);
  auto c = parts.claim(pipeline::kPushStep);
  REQUIRE(c);
  pipeline::PushStep step(parts.xnat, parts.spool, project, parts.store);
  const Outcome o = step.run(*c);
  CHECK(o.kind == Outcome::Kind::Retry);
  CHECK(o.back_to == S::Retrieved);
  CHECK_FALSE(o.counts_attempt);
  CHECK(parts.xnat.uploads == 0);
}

TEST_CASE(
    "project check on its own: a project without anonymisation holds the pushes until it "
    "has one, asking again after the recheck interval",
    "[step-classes]") {
  Parts parts;
  UnscriptedArchive archive(parts.studies);
  pipeline::ProjectCheck project(archive, parts.limits, parts.clock_fn(), std::nullopt);
  parts.retrieve_one();
  parts.validate_one();
  auto c = parts.claim(pipeline::kPushStep);
  REQUIRE(c);
  domain::Destination destination = domain::Destination::Prearchive;
  auto held = project.ready(*c, &destination);
  REQUIRE(held);
  CHECK(held->kind == Outcome::Kind::Wait);
  CHECK(held->delay_s == 60);  // min(backoff_max_s = 100, one minute)
  CHECK_THAT(held->detail, Catch::Contains("no anonymisation script"));
  CHECK_THAT(project.waiting_reason(parts.job_id), Catch::Contains("no anonymisation script"));
  archive.scripted = true;
  parts.clock += 30;  // not asked again before the interval
  held = project.ready(*c, &destination);
  REQUIRE(held);
  CHECK(held->delay_s == 30);
  parts.clock += 30;
  CHECK_FALSE(project.ready(*c, &destination));
  CHECK(destination == domain::Destination::Archive);
  CHECK(project.waiting_reason(parts.job_id).empty());
}

TEST_CASE(
    "verify step on its own: its counters are item columns written by its outcomes - "
    "checks, one push again, then a failure naming the series",
    "[step-classes]") {
  Parts parts;
  parts.xnat.keep_fewer = 1;
  parts.retrieve_one();
  parts.validate_one();
  pipeline::ProjectCheck project(parts.xnat, parts.limits, parts.clock_fn(), std::nullopt);
  parts.push_one(project);
  pipeline::VerifyStep step(parts.xnat, parts.spool, parts.store, std::nullopt);
  auto verify = [&] {
    auto c = parts.claim(pipeline::kVerifyStep);
    REQUIRE(c);
    const Outcome o = step.run(*c);
    REQUIRE(parts.apply(*c, o));
    parts.clock += 200;
    return o;
  };
  for (int check = 1; check <= 3; ++check) {
    const Outcome o = verify();
    CHECK(o.kind == Outcome::Kind::Wait);
    CHECK(parts.item().verify_checks == check);
    CHECK(parts.item().state == S::Pushed);
  }
  Outcome o = verify();  // the 4th: push again
  CHECK(o.kind == Outcome::Kind::Retry);
  CHECK(parts.item().state == S::Validated);
  CHECK(parts.item().repushes == 1);
  CHECK(parts.item().verify_checks == 0);
  CHECK(parts.item().attempts == 1);
  parts.push_one(project);
  for (int check = 1; check <= 3; ++check) verify();
  o = verify();
  CHECK(o.kind == Outcome::Kind::Failed);
  const auto it = parts.item();
  CHECK(it.state == S::Failed);
  CHECK_THAT(it.last_error, Catch::Contains("series import filter in project P"));
  CHECK(parts.xnat.uploads == 2);
}

TEST_CASE("verify step on its own: XNAT holds everything - the spool copy goes, verified",
          "[step-classes]") {
  Parts parts;
  parts.retrieve_one();
  parts.validate_one();
  pipeline::ProjectCheck project(parts.xnat, parts.limits, parts.clock_fn(), std::nullopt);
  parts.push_one(project);
  pipeline::VerifyStep step(parts.xnat, parts.spool, parts.store, std::nullopt);
  auto c = parts.claim(pipeline::kVerifyStep);
  REQUIRE(c);
  const Outcome o = step.run(*c);
  CHECK(o.kind == Outcome::Kind::Done);
  CHECK(o.next == S::Verified);
  CHECK(o.patch.verified == 6);
  CHECK_FALSE(fs::exists(parts.spool.item_dir(parts.item().id)));
  REQUIRE(parts.apply(*c, o));
  CHECK(parts.item().state == S::Verified);
}

TEST_CASE(
    "lease: a claim that ends without an outcome goes back to its ready state with an "
    "'abandoned' event and an attempt counted",
    "[step-classes][lease]") {
  Parts parts;
  parts.retrieve_one();
  {
    auto c = parts.claim(pipeline::kValidateStep);
    REQUIRE(c);
    CHECK(parts.item().state == S::Validating);
    c->abandon("test: the worker returned early");
  }  // no outcome applied
  const auto it = parts.item();
  CHECK(it.state == S::Retrieved);
  CHECK(it.attempts == 1);
  CHECK(it.next_attempt_at > parts.clock);  // after the backoff
  const auto events = parts.store.events(it.id);
  CHECK(events.back().from == "validating");
  CHECK(events.back().to == "retrieved");
  CHECK(events.back().detail == "abandoned: test: the worker returned early");
}

TEST_CASE(
    "lease: an applied outcome ends it (no second record), a claim whose item was "
    "cancelled meanwhile releases nothing",
    "[step-classes][lease]") {
  Parts parts(2);
  parts.retrieve_one();
  {
    auto c = parts.claim(pipeline::kValidateStep);
    REQUIRE(c);
    pipeline::ValidateStep step(parts.spool, parts.store);
    REQUIRE(parts.apply(*c, step.run(*c)));
    CHECK(c->settled());
  }
  CHECK(parts.item().state == S::Validated);
  CHECK(parts.store.events(parts.item().id).back().to == "validated");
  {
    auto c = parts.claim(pipeline::kRetrieveStep);
    REQUIRE(c);
    parts.store.cancel_job(parts.job_id);
  }
  CHECK(parts.item(1).state == S::Cancelled);
  CHECK(parts.store.events(parts.item(1).id).back().to == "cancelled");
}

TEST_CASE(
    "lease: a step that throws - the item is back in its ready state with an 'abandoned' "
    "event, not in flight",
    "[step-classes][lease]") {
  Parts parts;
  parts.xnat.query_errors = 1;  // the push's question to XNAT throws (not an XNAT error)
  pipeline::Pipeline pipe(parts.cfg, parts.store, parts.pacs, parts.xnat, parts.clock_fn());
  REQUIRE(pipe.retrieve_once("FAKE"));
  REQUIRE(pipe.validate_once());
  REQUIRE(pipe.push_once());
  const auto it = parts.item();
  CHECK(it.state == S::Validated);
  CHECK(it.attempts == 1);
  const auto events = parts.store.events(it.id);
  CHECK(events.back().from == "pushing");
  CHECK_THAT(events.back().detail, Catch::StartsWith("abandoned: unexpected error: "));
  CHECK(parts.xnat.uploads == 0);
}

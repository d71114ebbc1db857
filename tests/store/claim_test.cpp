// claim(): fairness across jobs, paused jobs, next_attempt_at, PACS filter, concurrency.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "store/store.hpp"
#include "test_util.hpp"

using namespace p2x::store;
using p2x::store::test::make_job;
using p2x::store::test::TempDir;
using S = ItemState;

namespace {
// Claims queued -> querying and requires that something was claimed.
Item must_claim(Store& store, std::int64_t now = 0, std::string_view pacs = {}) {
  auto it = store.claim(S::Queued, S::Querying, now, pacs);
  REQUIRE(it);
  return *it;
}
}  // namespace

TEST_CASE("claim moves the item - writes an event and returns it", "[store][claim]") {
  Store store(":memory:");
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 100));
  const auto job_id = store.create_job(make_job(3));
  auto it = store.claim(S::Queued, S::Querying, 100);
  REQUIRE(it);
  CHECK(it->job_id == job_id);
  CHECK(it->row == 1);  // CSV row order within a job
  CHECK(it->state == S::Querying);
  CHECK(store.item(it->id)->state == S::Querying);
  auto ev = store.events(it->id);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].from == "queued");
  CHECK(ev[0].to == "querying");
  CHECK(must_claim(store, 100).row == 2);
  CHECK(must_claim(store, 100).row == 3);
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 100));
  // Other stages claim from their own state.
  REQUIRE(store.transition(it->id, S::Querying, S::Retrieving, "found"));
  REQUIRE(store.transition(it->id, S::Retrieving, S::Retrieved, "done"));
  auto v = store.claim(S::Retrieved, S::Validating, 100);
  REQUIRE(v);
  CHECK(v->id == it->id);
}

TEST_CASE("a small job submitted later is served promptly", "[store][claim]") {
  Store store(":memory:");
  const auto big = store.create_job(make_job(1000));
  for (int i = 0; i < 20; ++i) REQUIRE(must_claim(store).job_id == big);
  const auto small = store.create_job(make_job(5));
  int small_claimed = 0;
  std::vector<std::int64_t> order;
  for (int i = 0; i < 10; ++i) {
    auto it = store.claim(S::Queued, S::Querying, 0);
    REQUIRE(it);
    order.push_back(it->job_id);
    if (it->job_id == small) ++small_claimed;
  }
  CHECK(small_claimed == 5);
  CHECK(order[0] == small);  // least recently served (never) goes first
  // Then the jobs alternate.
  for (std::size_t i = 1; i < order.size(); ++i) CHECK(order[i] != order[i - 1]);
  // Afterwards only the big job is left.
  for (int i = 0; i < 5; ++i) CHECK(must_claim(store).job_id == big);
}

TEST_CASE("three jobs are served round-robin", "[store][claim]") {
  Store store(":memory:");
  std::vector<std::int64_t> ids = {store.create_job(make_job(50)), store.create_job(make_job(50)),
                                   store.create_job(make_job(50))};
  std::map<std::int64_t, int> served;
  for (int i = 0; i < 30; ++i) ++served[must_claim(store).job_id];
  for (auto id : ids) CHECK(served[id] == 10);
}

TEST_CASE("paused - cancelled and done jobs are not claimed", "[store][claim]") {
  Store store(":memory:");
  const auto a = store.create_job(make_job(3));
  const auto b = store.create_job(make_job(3));
  REQUIRE(store.set_paused(a, true));
  for (int i = 0; i < 3; ++i) CHECK(must_claim(store).job_id == b);
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 0));
  REQUIRE(store.set_paused(a, false));
  auto it = store.claim(S::Queued, S::Querying, 0);
  REQUIRE(it);
  CHECK(it->job_id == a);
  store.cancel_job(a);
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 0));
}

TEST_CASE("claim respects next_attempt_at", "[store][claim]") {
  Store store(":memory:");
  const auto job_id = store.create_job(make_job(2));
  auto first = store.claim(S::Queued, S::Querying, 1000);
  REQUIRE(first);
  ItemPatch later;
  later.next_attempt_at = 1600;
  later.wait_reason = "PACS closed until 16:00";
  REQUIRE(store.transition(first->id, S::Querying, S::Queued, "wait", later));
  auto second = store.claim(S::Queued, S::Querying, 1000);
  REQUIRE(second);
  CHECK(second->id != first->id);
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 1599));
  auto again = store.claim(S::Queued, S::Querying, 1600);
  REQUIRE(again);
  CHECK(again->id == first->id);
  CHECK(again->wait_reason == "PACS closed until 16:00");
  CHECK(again->job_id == job_id);
}

TEST_CASE("claim can be limited to one PACS", "[store][claim]") {
  Store store(":memory:");
  const auto a = store.create_job(make_job(2, "PACS_A"));
  const auto b = store.create_job(make_job(2, "PACS_B"));
  for (int i = 0; i < 2; ++i) CHECK(must_claim(store, 0, "PACS_B").job_id == b);
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 0, "PACS_B"));
  CHECK_FALSE(store.claim(S::Queued, S::Querying, 0, "PACS_C"));
  CHECK(must_claim(store, 0, "PACS_A").job_id == a);
  CHECK(must_claim(store).job_id == a);  // no filter
}

TEST_CASE("concurrent claims from four threads never hand out an item twice",
          "[store][claim][threads]") {
  TempDir dir;
  Store store(dir.file("jobs.db"));
  constexpr int kJobs = 3, kPerJob = 100;  // each transition costs an fsync
  for (int j = 0; j < kJobs; ++j) store.create_job(make_job(kPerJob));

  std::mutex mu;
  std::vector<std::int64_t> claimed;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      try {
        std::vector<std::int64_t> mine;
        while (auto it = store.claim(S::Queued, S::Querying, 0)) {
          mine.push_back(it->id);
          // Move it along as a worker would; a competing claim must not see it.
          if (!store.transition(it->id, S::Querying, S::Retrieving, "found")) ++errors;
          ItemPatch p;
          p.received = 1;
          store.update(it->id, p);
        }
        std::lock_guard lock(mu);
        claimed.insert(claimed.end(), mine.begin(), mine.end());
      } catch (...) {
        ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  CHECK(claimed.size() == static_cast<std::size_t>(kJobs * kPerJob));
  std::set<std::int64_t> unique(claimed.begin(), claimed.end());
  CHECK(unique.size() == claimed.size());
  std::int64_t retrieving = 0;
  for (const auto& j : store.jobs()) retrieving += store.summary(j.id).counts[S::Retrieving];
  CHECK(retrieving == kJobs * kPerJob);
}

// The item state machine: names, finality, and the full table of legal/illegal transitions.
#include <catch2/catch.hpp>

#include <set>
#include <utility>

#include "store/store.hpp"
#include "test_util.hpp"

using namespace p2x::store;
using S = ItemState;

namespace {
// Written out independently of the implementation.
const std::set<std::pair<S, S>>& legal_pairs() {
  static const std::set<std::pair<S, S>> pairs = [] {
    std::set<std::pair<S, S>> p = {
        {S::Queued, S::Querying},      {S::Querying, S::Retrieving}, {S::Querying, S::Queued},
        {S::Retrieving, S::Retrieved}, {S::Retrieving, S::Queued},   {S::Retrieved, S::Validating},
        {S::Validating, S::Validated}, {S::Validating, S::Queued},   {S::Validated, S::Pushing},
        {S::Pushing, S::Pushed},       {S::Pushing, S::Validated},   {S::Pushed, S::Verifying},
        {S::Verifying, S::Verified},   {S::Verifying, S::Pushed},    {S::Verifying, S::Validated},
        {S::Validating, S::Retrieved}, {S::Failed, S::Queued},       {S::Pushing, S::Queued},
        {S::Pushing, S::Retrieved},
    };
    for (S s : {S::Queued, S::Querying, S::Retrieving, S::Retrieved, S::Validating, S::Validated,
                S::Pushing, S::Pushed, S::Verifying}) {
      p.insert({s, S::Failed});
      p.insert({s, S::Cancelled});
    }
    return p;
  }();
  return pairs;
}
}  // namespace

TEST_CASE("state names round-trip", "[store][states]") {
  REQUIRE(all_states().size() == 12);
  for (S s : all_states()) {
    auto parsed = parse_state(to_string(s));
    REQUIRE(parsed);
    CHECK(*parsed == s);
  }
  CHECK(to_string(S::Retrieving) == "retrieving");
  CHECK_FALSE(parse_state("paused"));
  CHECK_FALSE(parse_state(""));
  CHECK(to_string(JobState::Cancelled) == "cancelled");
}

TEST_CASE("final and in-flight states", "[store][states]") {
  for (S s : all_states()) {
    const bool final_expected = s == S::Verified || s == S::Failed || s == S::Cancelled;
    const bool flight_expected = s == S::Querying || s == S::Retrieving || s == S::Validating ||
                                 s == S::Pushing || s == S::Verifying;
    CHECK(is_final(s) == final_expected);
    CHECK(is_in_flight(s) == flight_expected);
  }
}

TEST_CASE("is_legal matches the state machine for every pair", "[store][states]") {
  int legal = 0;
  for (S from : all_states()) {
    for (S to : all_states()) {
      INFO(to_string(from) << " -> " << to_string(to));
      const bool expected = legal_pairs().count({from, to}) > 0;
      CHECK(is_legal(from, to) == expected);
      legal += expected ? 1 : 0;
    }
  }
  CHECK(legal == 37);
  // A few that must stay illegal.
  CHECK_FALSE(is_legal(S::Pushed, S::Verified));  // verification is claimed: pushed -> verifying
  CHECK_FALSE(is_legal(S::Pushed, S::Pushed));
  CHECK_FALSE(is_legal(S::Queued, S::Retrieving));
  CHECK_FALSE(is_legal(S::Verified, S::Queued));
  CHECK_FALSE(is_legal(S::Cancelled, S::Queued));
  CHECK_FALSE(is_legal(S::Failed, S::Failed));
  CHECK_FALSE(is_legal(S::Validated, S::Retrieved));
}

TEST_CASE("every legal transition works through the store", "[store][states]") {
  Store store(":memory:");
  const auto& pairs = legal_pairs();
  const auto job_id = store.create_job(p2x::store::test::make_job(static_cast<int>(pairs.size())));
  auto items = store.items(job_id);
  REQUIRE(items.size() == pairs.size());
  std::size_t i = 0;
  for (const auto& [from, to] : pairs) {
    INFO(to_string(from) << " -> " << to_string(to));
    const auto id = items[i++].id;
    p2x::store::test::drive_to(store, id, from);
    REQUIRE(store.item(id)->state == from);
    REQUIRE(store.transition(id, from, to, "step under test"));
    CHECK(store.item(id)->state == to);
    auto ev = store.events(id);
    REQUIRE_FALSE(ev.empty());
    CHECK(ev.back().from == to_string(from));
    CHECK(ev.back().to == to_string(to));
    CHECK(ev.back().detail == "step under test");
    CHECK(ev.back().job_id == job_id);
  }
}

TEST_CASE("illegal transitions throw and change nothing", "[store][states]") {
  Store store(":memory:");
  const auto job_id = store.create_job(p2x::store::test::make_job(1));
  const auto id = store.items(job_id).at(0).id;
  for (S from : all_states()) {
    for (S to : all_states()) {
      if (legal_pairs().count({from, to})) continue;
      INFO(to_string(from) << " -> " << to_string(to));
      try {
        store.transition(id, from, to, "nope");
        FAIL("no exception");
      } catch (const IllegalTransition& e) {
        const std::string msg = e.what();
        CHECK(msg.find(std::string(to_string(from))) != std::string::npos);
        CHECK(msg.find(std::string(to_string(to))) != std::string::npos);
      }
      CHECK_THROWS_AS(store.claim(from, to, 0), IllegalTransition);
    }
  }
  CHECK(store.item(id)->state == S::Queued);
  CHECK(store.events(id).empty());
}

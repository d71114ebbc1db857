// Unit tests of the scheduling rules: availability windows, backoff, circuit breaker, filters.
#include <cstdlib>
#include <ctime>

#include <catch2/catch.hpp>

#include "pipeline/gate.hpp"
#include "pipeline/outcome.hpp"
#include "pipeline/options.hpp"
#include "pipeline/steps.hpp"

using namespace p2x::pipeline;
using p2x::config::Config;
using p2x::config::PacsNode;
using p2x::config::Window;

namespace {

// A local time on a known weekday: 2026-11-23 is a Monday.
std::time_t local(int day_of_month, int hour, int minute) {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 10;
  tm.tm_mday = day_of_month;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

PacsNode weekday_node() {
  PacsNode n;
  n.name = "sectra";
  n.max_associations = 4;
  n.windows = {Window{{1, 2, 3, 4, 5}, 7 * 60, 19 * 60, 1},
               Window{{1, 2, 3, 4, 5}, 19 * 60, 24 * 60, 4}, Window{{0, 6}, 0, 24 * 60, 4}};
  return n;
}

}  // namespace

TEST_CASE("availability windows give the limit in force and when it changes", "[gate]") {
  PacsNode n = weekday_node();
  auto day = window_state(n, local(23, 10, 30));  // Monday 10:30
  CHECK(day.limit == 1);
  CHECK(day.until == local(23, 19, 0));
  auto evening = window_state(n, local(23, 20, 0));
  CHECK(evening.limit == 4);
  CHECK(evening.until == local(24, 0, 0));
  auto early = window_state(n, local(24, 3, 0));  // Tuesday 03:00: no window covers it
  CHECK(early.limit == 0);
  CHECK(early.until == local(24, 7, 0));
  auto weekend = window_state(n, local(28, 12, 0));  // Saturday
  CHECK(weekend.limit == 4);
  PacsNode plain;
  plain.max_associations = 3;
  CHECK(window_state(plain, local(23, 3, 0)).limit == 3);
  CHECK(window_state(plain, local(23, 3, 0)).until == 0);
}

TEST_CASE("the gate never hands out more slots than the limit", "[gate]") {
  Config cfg;
  PacsNode n;
  n.name = "p";
  n.max_associations = 2;
  cfg.pacs = {n};
  Gate g(cfg);
  std::time_t now = std::time(nullptr);
  CHECK(g.try_acquire("p", now));
  CHECK(g.try_acquire("p", now));
  CHECK_FALSE(g.try_acquire("p", now));
  g.release("p");
  CHECK(g.try_acquire("p", now));
  CHECK(g.peak("p") == 2);
  CHECK_FALSE(g.try_acquire("unknown", now));
}

TEST_CASE("repeated connection failures open the breaker until a probe answers", "[gate]") {
  Config cfg;
  cfg.limits.circuit_failures = 3;
  cfg.limits.circuit_probe_s = 10;
  PacsNode n;
  n.name = "p";
  cfg.pacs = {n};
  Gate g(cfg);
  std::time_t t = 1000000;
  CHECK_FALSE(g.on_connect_failure("p", "refused", t));
  CHECK_FALSE(g.on_connect_failure("p", "refused", t));
  CHECK(g.on_connect_failure("p", "refused", t));
  CHECK_FALSE(g.try_acquire("p", t));
  CHECK(g.wait_reason("p", t).find("circuit breaker open") != std::string::npos);
  CHECK(g.probes_due(t + 5).empty());
  auto due = g.probes_due(t + 10);
  REQUIRE(due.size() == 1);
  g.probe_result("p", false, t + 10);
  CHECK_FALSE(g.try_acquire("p", t + 11));
  g.probe_result("p", true, t + 20);
  CHECK(g.try_acquire("p", t + 21));
  CHECK(g.wait_reason("p", t + 21).empty());
}

TEST_CASE("backoff grows exponentially - is capped - and jittered", "[gate]") {
  CHECK(backoff_seconds(1, 10, 900, 500) == 10);
  CHECK(backoff_seconds(3, 10, 900, 500) == 40);
  CHECK(backoff_seconds(20, 10, 900, 500) == 900);
  int lo = backoff_seconds(2, 10, 900, 0), hi = backoff_seconds(2, 10, 900, 999);
  CHECK(lo == 16);
  CHECK(hi == 23);
}

TEST_CASE("job options and series description globs", "[options]") {
  auto o = parse_job_options(R"({"modality":"MR","series_description":"t1*","strict":true})");
  CHECK(o.modality == "MR");
  CHECK(o.strict);
  CHECK_FALSE(o.append);
  CHECK(glob_match("t1*", "T1 AX"));
  CHECK(glob_match("*cor*", "T2 COR fs"));
  CHECK(glob_match("T?", "T2"));
  CHECK_FALSE(glob_match("T?", "T22"));
  CHECK_FALSE(glob_match("t1*", "DWI"));
  CHECK_THROWS_AS(parse_job_options("not json"), PermanentError);  // the item fails, clearly
}

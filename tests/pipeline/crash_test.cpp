// The core promise: SIGKILL the daemon at random moments across all stages, restart it each
// time; in the end every study is verified, XNAT received each session exactly once with the
// right counts, and no spool files are left.
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include <catch2/catch.hpp>

#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;

TEST_CASE("20-study job survives 10+ SIGKILLs at random moments", "[e2e][crash]") {
  unsigned seed = std::random_device{}();
  if (const char* s = std::getenv("P2X_CRASH_SEED")) seed = static_cast<unsigned>(std::stoul(s));
  INFO("seed " << seed << " (rerun with P2X_CRASH_SEED=" << seed << ")");
  std::mt19937 rng(seed);

  WorldOptions o;
  o.studies = uniform_corpus(20, 3, 10, "MR", "CRASH");
  o.max_associations = 1;
  World w(o);
  // Slow XNAT down so that pushes and verifications are in flight when the kills land.
  w.xnat().admin("POST", "/_admin/delay?ms=150&count=100000");
  std::vector<int> all;
  for (int i = 0; i < 20; ++i) all.push_back(i);
  int job = w.submit(w.write_csv("crash.csv", w.accession_csv(all)));

  int kills = 0;
  std::vector<std::string> seen_states;
  while (kills < 12) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 1200)(rng)));
    json st = w.status(job);
    for (const auto& [k, v] : st["counts"].items()) {
      if (v.get<int>() > 0) seen_states.push_back(k);
    }
    w.daemon().kill_hard();
    ++kills;
    w.daemon().start();
    if (w.status(job)["state"] != "active") break;
  }
  w.wait_done(job, 180);
  INFO("killed " << kills << " times; states seen: " << json(seen_states).dump());
  CHECK(kills >= 10);
  w.check_verified_once(job, all);
  for (const auto& it : w.items(job)) CHECK(it["verified"] == 30);
  // Verified items' spool directories are removed at verification, and again by the periodic
  // sweep (every ~10 s), which also catches instances a PACS re-delivers late from a C-MOVE
  // interrupted by a kill.
  auto left = w.spool_files();
  for (int i = 0; i < 30 && !left.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    left = w.spool_files();
  }
  INFO("left in spool: " << json(left).dump());
  CHECK(left.empty());
}

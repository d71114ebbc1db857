// pacs[].parallel_series (on by default) against real PACSes: one study's series retrieved over the
// spare association slots, never more than max_associations at once (the CountingProxy between the
// daemon and the PACS counts concurrent connections), and every study still ends verified.
#include <catch2/catch.hpp>

#include <chrono>

#include "counting_proxy.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;

TEST_CASE("parallel series (the default): one study over 3 associations from Orthanc, C-MOVE",
          "[e2e][parallel]") {
  WorldOptions o;
  o.pacs = PacsKind::Orthanc;
  o.max_associations = 3;
  o.via_proxy = true;  // parallel_series left out: on by default
  o.studies = uniform_corpus(1, 5, 6, "MR", "PAR1ACC");
  World w(o);
  // 1 ms each way: every C-MOVE lasts long enough for the lanes to overlap.
  w.proxy()->set_delay(std::chrono::microseconds(1000), std::chrono::microseconds(1000));
  w.proxy()->reset_counts();
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  w.wait_done(job);
  w.check_verified_once(job, {0});
  CHECK(w.proxy()->max_concurrent() <= 3);
  CHECK(w.proxy()->max_concurrent() >= 2);  // the series did go in parallel
  CHECK(w.proxy()->total_connections() >= 3);
}

TEST_CASE("parallel series: three studies from dcmqrscp with C-GET never exceed 2 associations",
          "[e2e][parallel]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.retrieve = "get";
  o.max_associations = 2;
  o.via_proxy = true;
  o.pacs_entry = json{{"parallel_series", true}};
  o.studies = uniform_corpus(3, 3, 4, "CT", "PAR2ACC");
  World w(o);
  w.proxy()->set_delay(std::chrono::microseconds(500), std::chrono::microseconds(500));
  w.proxy()->reset_counts();
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0, 1, 2})));
  w.wait_done(job);
  w.check_verified_once(job, {0, 1, 2});
  CHECK(w.proxy()->max_concurrent() <= 2);
  CHECK(w.proxy()->max_concurrent() >= 1);
}

TEST_CASE("parallel series off: one study uses one association", "[e2e][parallel]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.max_associations = 3;
  o.via_proxy = true;
  o.pacs_entry = json{{"parallel_series", false}};
  o.studies = uniform_corpus(1, 4, 3, "MR", "PAR3ACC");
  World w(o);
  w.proxy()->reset_counts();
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  w.wait_done(job);
  w.check_verified_once(job, {0});
  CHECK(w.proxy()->max_concurrent() == 1);
}

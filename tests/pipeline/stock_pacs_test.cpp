// End-to-end imports from PACSes on stock DCMTK (no TCP_NODELAY: Nagle on, as Debian ships
// Orthanc and dcmqrscp), whose C-STOREs to us stall unless we acknowledge promptly: C-MOVE
// into the daemon's Storage SCP and C-GET on its own association, each to verified.
// (The speed guard is tests/pacs/prompt_ack_test.cpp; figures come from bench/.)
#include <catch2/catch.hpp>

#include "world.hpp"

using namespace p2x::test;

namespace {

// 2 studies x 2 series x 60 small instances: enough C-STOREs that a stall per instance
// (~40 ms) would show in the daemon's log timings, few enough to stay a quick test.
std::vector<StudySpec> corpus(const std::string& prefix) {
  auto specs = uniform_corpus(2, 2, 60, "MR", prefix);
  for (auto& s : specs) s.rows = s.cols = 64;
  return specs;
}

void import_all(WorldOptions o) {
  o.stock_pacs = true;
  World w(o);
  REQUIRE(w.pacs().stock());
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0, 1})));
  w.wait_done(job, 180);
  w.check_verified_once(job, {0, 1});
  CHECK(w.spool_files().empty());
}

}  // namespace

TEST_CASE("import from a stock (Nagle-on) Orthanc via C-MOVE", "[e2e][nagle]") {
  WorldOptions o;
  o.pacs = PacsKind::Orthanc;
  o.retrieve = "move";
  o.studies = corpus("NGLO");
  import_all(o);
}

TEST_CASE("import from a stock (Nagle-on) dcmqrscp via C-GET", "[e2e][nagle]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.retrieve = "get";
  o.studies = corpus("NGLQ");
  import_all(o);
}

TEST_CASE("import from a stock (Nagle-on) dcmqrscp via C-MOVE", "[e2e][nagle]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.retrieve = "move";
  o.studies = corpus("NGLM");
  import_all(o);
}

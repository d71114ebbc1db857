// End to end through the daemon with the SOP classes real studies carry (testdata.hpp
// sop_class_corpus: a CT with dose SR, dose screen, PDF, KO, PR, a report and a secondary capture
// inside the CT series; an RT planning CT with RTSTRUCT, RTPLAN and RTDOSE; an Enhanced MR with a
// private Siemens CSA object), from Orthanc and dcmqrscp, by C-MOVE and by C-GET (and from
// stock, Nagle-on PACSes): every study ends verified with exact per-series counts as the daemon
// records them. And PACSes that match fewer keys than Orthanc (dcmqrscp ignores
// ModalitiesInStudy): the row's modality picks the study of the day, a real tie fails naming the
// candidates, a series-description filter the PACS cannot serve fails saying so.
#include <catch2/catch.hpp>

#include <map>

#include "store/store.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;

namespace {

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Per series (UID -> instances) of what the daemon recorded for each item of the job: the
// series the PACS's C-FIND reported and the files validated in the spool.
struct SeriesCounts {
  std::map<std::string, std::int64_t> expected, received;
};

std::map<std::string, SeriesCounts> daemon_series(World& w, int job) {
  p2x::store::Store store(w.daemon().state_dir() + "/pacs2xnat.db");
  std::map<std::string, SeriesCounts> out;  // by study UID
  for (const auto& it : store.items(job)) {
    auto& counts = out[it.study_uid];
    for (const auto& s : store.series(it.id)) {
      counts.expected[s.series_uid] = s.expected;
      counts.received[s.series_uid] = s.received;
    }
  }
  return out;
}

// Every study of the job verified once, each of its series with exactly its instances.
void check_exact_series(World& w, int job, const std::vector<int>& idx) {
  w.check_verified_once(job, idx);
  const auto recorded = daemon_series(w, job);
  for (int i : idx) {
    const auto& study = w.studies().at(static_cast<std::size_t>(i));
    INFO("study " << study.spec.accession);
    REQUIRE(recorded.count(study.study_uid) == 1);
    const auto& counts = recorded.at(study.study_uid);
    std::map<std::string, std::int64_t> want;
    for (const auto& se : study.series) want[se.uid] = static_cast<std::int64_t>(se.files.size());
    CHECK(counts.expected == want);
    CHECK(counts.received == want);
  }
}

void import_sop_corpus(PacsKind kind, const std::string& method, bool stock,
                       const std::string& prefix) {
  WorldOptions o;
  o.pacs = kind;
  o.retrieve = method;
  o.stock_pacs = stock;
  o.studies = sop_class_corpus(prefix);
  World w(o);
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0, 1, 2})));
  w.wait_done(job, 180);
  check_exact_series(w, job, {0, 1, 2});
  CHECK(w.spool_files().empty());
}

}  // namespace

TEST_CASE("every SOP class from Orthanc by C-MOVE: verified, exact per-series counts",
          "[e2e][sop-classes]") {
  import_sop_corpus(PacsKind::Orthanc, "move", false, "SCOM");
}

TEST_CASE("every SOP class from Orthanc by C-GET: verified, exact per-series counts",
          "[e2e][sop-classes]") {
  import_sop_corpus(PacsKind::Orthanc, "get", false, "SCOG");
}

TEST_CASE("every SOP class from dcmqrscp by C-MOVE: verified, exact per-series counts",
          "[e2e][sop-classes]") {
  import_sop_corpus(PacsKind::Dcmqrscp, "move", false, "SCQM");
}

TEST_CASE("every SOP class from dcmqrscp by C-GET: verified, exact per-series counts",
          "[e2e][sop-classes]") {
  import_sop_corpus(PacsKind::Dcmqrscp, "get", false, "SCQG");
}

TEST_CASE("every SOP class from stock (Nagle-on) Orthanc by C-GET and dcmqrscp by C-MOVE",
          "[e2e][sop-classes][nagle]") {
  import_sop_corpus(PacsKind::Orthanc, "get", true, "SCSG");
  import_sop_corpus(PacsKind::Dcmqrscp, "move", true, "SCSM");
}

namespace {

// Patient HPAT04 had an MR and a CT study on 1 April 2024, HPAT05 two CTs on 2 April (one with
// a dose report); the site's procedure asks for patient ID + date + modality.
std::vector<StudySpec> same_day_studies() {
  auto mr = uniform_corpus(1, 2, 2, "MR", "DAYMR")[0];
  auto ct = uniform_corpus(1, 1, 3, "CT", "DAYCT")[0];
  auto ct1 = uniform_corpus(1, 1, 2, "CT", "TIEA")[0];
  auto ct2 = uniform_corpus(1, 1, 2, "CT", "TIEB")[0];
  ct2.extras = {Extra::DoseSR};
  for (auto* s : {&mr, &ct}) {
    s->patient_id = "HPAT04";
    s->study_date = "20240401";
  }
  for (auto* s : {&ct1, &ct2}) {
    s->patient_id = "HPAT05";
    s->study_date = "20240402";
  }
  std::vector<StudySpec> v = {mr, ct, ct1, ct2};
  for (auto& s : v) s.rows = s.cols = 32;
  return v;
}

void pick_by_modality(PacsKind kind) {
  WorldOptions o;
  o.pacs = kind;
  o.studies = same_day_studies();
  World w(o);
  const auto& ct = w.studies()[1];
  const int job = w.submit(w.write_csv("day.csv",
                                       "Patient ID,Study Date,Modality,Subject,Session\n"
                                       "HPAT04,01/04/2024,CT,SUBJ_HPAT04,SESS_HPAT04_CT\n"
                                       "HPAT05,02/04/2024,CT,SUBJ_HPAT05,SESS_HPAT05_CT\n"));
  w.wait_done(job, 120);
  const json items = w.items(job);
  REQUIRE(items.size() == 2);
  INFO(items.dump(2));
  // The CT of HPAT04's day, although the PACS may return both studies.
  CHECK(items[0]["state"] == "verified");
  CHECK(items[0]["study_uid"] == ct.study_uid);
  CHECK(items[0]["expected"] == 3);
  CHECK(items[0]["verified"] == 3);
  // Two CTs on HPAT05's day: a real tie, each candidate named with its modalities.
  CHECK(items[1]["state"] == "failed");
  const std::string why = items[1]["last_error"];
  CHECK(has(why, "patient HPAT05 on 20240402 matches 2 studies"));
  CHECK(has(why, w.studies()[2].study_uid + " (20240402, CT)"));
  CHECK(has(why, w.studies()[3].study_uid + " (20240402, CT\\SR)"));
  CHECK(has(why, "use Study Instance UID rows"));
  CHECK(items[1]["retryable"] == false);
}

}  // namespace

TEST_CASE(
    "patient + date + modality against dcmqrscp, which ignores ModalitiesInStudy: the CT "
    "of the day is found, a real tie fails naming both",
    "[e2e][modality]") {
  pick_by_modality(PacsKind::Dcmqrscp);
}

TEST_CASE("patient + date + modality against Orthanc: the same", "[e2e][modality]") {
  pick_by_modality(PacsKind::Orthanc);
}

TEST_CASE(
    "a series-description filter: applied to Orthanc's descriptions - with dcmqrscp, "
    "which returns none, the row fails saying so",
    "[e2e][modality]") {
  for (auto kind : {PacsKind::Orthanc, PacsKind::Dcmqrscp}) {
    INFO(to_string(kind));
    WorldOptions o;
    o.pacs = kind;
    o.studies = uniform_corpus(1, 3, 2, "MR", kind == PacsKind::Orthanc ? "DESCO" : "DESCQ");
    World w(o);
    const int job =
        w.submit(w.write_csv("d.csv", w.accession_csv({0})), {"--series-description", "T2*"});
    w.wait_done(job, 120);
    const json it = w.items(job)[0];
    INFO(it.dump(2));
    if (kind == PacsKind::Orthanc) {
      CHECK(it["state"] == "verified");
      CHECK(it["expected"] == 2);  // T2 COR only
      CHECK(it["verified"] == 2);
    } else {
      CHECK(it["state"] == "failed");
      CHECK(has(it["last_error"].get<std::string>(),
                "returns no SeriesDescription in C-FIND, so the job's series-description filter "
                "'T2*' cannot be applied"));
    }
  }
}

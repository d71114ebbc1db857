// What the find step learns and passes on, with the fake PACS (fakes.hpp) playing PACSes that
// report less than Orthanc: the SOP classes a C-GET must negotiate (study level, else per series,
// else unknown), carried by every selection into the C-GET (also split per series and over
// parallel lanes), a refused class failing the row by name; and the row's modality choosing
// between a patient's studies of one day when the PACS ignores ModalitiesInStudy, a real tie
// failing with each candidate and its modalities. Fast; the real-peer tests are
// tests/pacs/sop_classes_test.cpp and tests/pipeline/sop_classes_test.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include "fakes.hpp"
#include "pipeline/fetch_plan.hpp"
#include "pipeline/options.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/steps.hpp"
#include "support/temp_dir.hpp"

using namespace p2x;
using p2x::test::FakeArchive;
using p2x::test::FakePacs;
using S = store::ItemState;
namespace fs = std::filesystem;

namespace {

std::set<std::string> as_set(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

std::set<std::string> classes_of(const test::GeneratedSeries& se) {
  std::set<std::string> out;
  for (const auto& f : se.files) out.insert(f.sop_class);
  return out;
}

std::set<std::string> classes_of(const test::GeneratedStudy& s) {
  std::set<std::string> out;
  for (const auto& se : s.series) {
    auto c = classes_of(se);
    out.insert(c.begin(), c.end());
  }
  return out;
}

store::Item accession_row(const test::GeneratedStudy& s, const std::string& modality = "") {
  store::Item it;
  it.id = 1;
  it.kind = p2x::domain::RowKind::Accession;
  it.accession = s.spec.accession;
  it.modality = modality;
  return it;
}

store::Item patient_row(const std::string& patient, const std::string& date,
                        const std::string& modality) {
  store::Item it;
  it.id = 1;
  it.kind = p2x::domain::RowKind::PatientDate;
  it.patient_id = patient;
  it.study_date = date;
  it.modality = modality;
  return it;
}

struct Corpus {
  test::TempDir tmp{"p2x-find-classes"};
  std::vector<test::GeneratedStudy> studies;
  explicit Corpus(std::vector<test::StudySpec> specs)
      : studies(test::generate(specs, tmp.file("data"))) {}
};

pipeline::Found find(FakePacs& pacs, const store::Item& it, bool classes = true,
                     const std::vector<std::string>& skip = {},
                     const pipeline::JobOptions& opt = {}) {
  auto r = pacs.open({}, pacs::RetrieveMethod::Get);
  return pipeline::find_study(*r, it, opt, "FAKE", skip, classes);
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("find: the study's SOP classes from SOP Classes in Study, else per series, else unknown",
          "[find][sop]") {
  Corpus c(test::sop_class_corpus("FC"));
  for (const auto& study : c.studies) {
    INFO(study.spec.accession);
    FakePacs pacs(c.studies);
    auto f = find(pacs, accession_row(study));
    CHECK(as_set(f.sop_classes) == classes_of(study));
    CHECK(f.series_sop_classes.empty());  // the study level said it all

    pacs.study_sop_classes = false;  // e.g. a PACS without SOPClassesInStudy: IMAGE level
    f = find(pacs, accession_row(study));
    CHECK(as_set(f.sop_classes) == classes_of(study));
    REQUIRE(f.series_sop_classes.size() == study.series.size());
    for (const auto& se : study.series)
      CHECK(as_set(f.series_sop_classes.at(se.uid)) == classes_of(se));

    pacs.instance_sop_classes = false;  // dcmqrscp: neither
    f = find(pacs, accession_row(study));
    CHECK(f.sop_classes.empty());
    CHECK(f.series_sop_classes.empty());

    CHECK(find(pacs, accession_row(study), false).sop_classes.empty());  // C-MOVE: not asked
  }
}

TEST_CASE("find: classes of filtered-out series and skipped classes are not asked for",
          "[find][sop]") {
  Corpus c({test::ct_with_dose_objects("FD1", "FDP1", "20240301")});
  const auto& study = c.studies[0];
  FakePacs pacs(c.studies);
  // Only CT series: the CT images and the secondary capture inside the CT series.
  auto f = find(pacs, accession_row(study, "CT"));
  CHECK(as_set(f.sop_classes) ==
        std::set<std::string>{UID_CTImageStorage, UID_SecondaryCaptureImageStorage});
  CHECK(f.series.size() == 1);
  // A skipped class (the PACS node's skip_sop_classes) is neither expected nor negotiated.
  f = find(pacs, accession_row(study), true, {UID_GrayscaleSoftcopyPresentationStateStorage});
  auto want = classes_of(study);
  want.erase(UID_GrayscaleSoftcopyPresentationStateStorage);
  CHECK(as_set(f.sop_classes) == want);
}

TEST_CASE(
    "plan: selections carry their classes - more classes than one association splits the "
    "study by series, also over parallel lanes",
    "[find][sop]") {
  Corpus c({test::rt_planning_study("PL1", "PLP1", "20240301")});
  const auto& study = c.studies[0];
  FakePacs pacs(c.studies);
  pacs.study_sop_classes = false;
  auto f = find(pacs, accession_row(study));
  const auto none = [](const std::string&) { return std::vector<std::string>{}; };
  auto plan = pipeline::plan_fetch(f, {}, none);
  REQUIRE(plan.selections.size() == 1);  // the whole study, with all its classes
  CHECK(as_set(plan.selections[0].sop_classes) == classes_of(study));
  // Over lanes: one selection per series, each with its own classes.
  auto lanes = pipeline::split_lanes(plan, f, 4);
  REQUIRE(lanes.size() == 4);
  for (const auto& lane : lanes) {
    REQUIRE(lane.size() == 1);
    REQUIRE(lane[0].series_uids.size() == 1);
    CHECK(lane[0].sop_classes == f.series_sop_classes.at(lane[0].series_uids[0]));
  }
  // A study of more classes than one C-GET association negotiates: per series from the start.
  for (int i = 0; f.sop_classes.size() <= pacs::kMaxGetSopClasses; ++i) {
    f.sop_classes.push_back("1.2.826.0.1.3680043.10.9997." + std::to_string(i));
  }
  plan = pipeline::plan_fetch(f, {}, none);
  REQUIRE(plan.selections.size() == study.series.size());
  for (const auto& sel : plan.selections) {
    REQUIRE(sel.series_uids.size() == 1);
    CHECK(sel.sop_classes == f.series_sop_classes.at(sel.series_uids[0]));
  }
}

namespace {

config::Config get_config(const std::string& spool) {
  config::Config cfg;
  config::PacsNode node;
  node.name = "FAKE";
  node.ae_title = "FAKE";
  node.host = "127.0.0.1";
  node.retrieve = config::RetrieveMethod::Get;
  node.max_associations = 4;
  cfg.pacs.push_back(node);
  cfg.paths.spool_dir = spool;
  cfg.limits.max_attempts = 3;
  cfg.limits.spool_min_free_mb = 0;
  return cfg;
}

// A pipeline retrieving by C-GET from the fake PACS; one job of the given rows.
struct GetRig {
  explicit GetRig(std::vector<test::StudySpec> specs, std::vector<store::NewItem> rows)
      : corpus(std::move(specs)),
        pacs(corpus.studies),
        xnat(corpus.studies),
        cfg(get_config(corpus.tmp.file("spool"))),
        store(corpus.tmp.file("jobs.db")) {
    spdlog::default_logger();
    fs::create_directories(cfg.paths.spool_dir);
    pipe = std::make_unique<pipeline::Pipeline>(cfg, store, pacs, xnat,
                                                [this] { return clock.load(); });
    store::NewJob job;
    job.project = "P";
    job.pacs = "FAKE";
    job.csv_name = "rows.csv";
    job.items = std::move(rows);
    job_id = store.create_job(job);
  }
  store::Item item(std::size_t i = 0) const { return store.items(job_id).at(i); }

  Corpus corpus;
  FakePacs pacs;
  FakeArchive xnat;
  config::Config cfg;
  store::Store store;
  std::atomic<std::int64_t> clock{1'000'000};
  std::unique_ptr<pipeline::Pipeline> pipe;
  std::int64_t job_id = 0;
};

store::NewItem new_row(const std::string& accession) {
  store::NewItem it;
  it.row = 1;
  it.line = 2;
  it.kind = p2x::domain::RowKind::Accession;
  it.accession = accession;
  it.subject = "S1";
  it.session = "E1";
  return it;
}

}  // namespace

TEST_CASE(
    "retrieval by C-GET: the study's classes reach the PACS, per series over parallel "
    "lanes too - a refused class fails the row naming it",
    "[find][sop]") {
  for (bool parallel : {false, true}) {
    INFO("parallel_series " << parallel);
    GetRig rig({test::rt_planning_study("RG1", "RGP1", "20240301")}, {new_row("RG1")});
    rig.cfg.pacs[0].parallel_series = parallel;
    rig.pipe = std::make_unique<pipeline::Pipeline>(rig.cfg, rig.store, rig.pacs, rig.xnat,
                                                    [&rig] { return rig.clock.load(); });
    REQUIRE(rig.pipe->retrieve_once("FAKE"));
    const auto& study = rig.corpus.studies[0];
    CHECK(rig.item().state == S::Retrieved);
    CHECK(rig.item().received == study.instance_count());
    // The fake delivers by C-GET only what a selection's classes cover.
    for (const auto& sel : rig.pacs.last_selections()) CHECK_FALSE(sel.sop_classes.empty());
    REQUIRE(rig.pipe->validate_once());
    REQUIRE(rig.pipe->push_once());
    REQUIRE(rig.pipe->verify_once());  // verification has lanes of its own
    CHECK(rig.item().state == S::Verified);
  }
  GetRig rig({test::rt_planning_study("RG2", "RGP2", "20240301")}, {new_row("RG2")});
  rig.pacs.refused_classes = {UID_RTPlanStorage};
  REQUIRE(rig.pipe->retrieve_once("FAKE"));
  const auto it = rig.item();
  CHECK(it.state == S::Failed);
  INFO(it.last_error);
  CHECK(has(it.last_error, UID_RTPlanStorage));
  CHECK(has(it.last_error, "cannot retrieve by C-GET"));
}

TEST_CASE("a PACS that ignores ModalitiesInStudy: the row's modality picks the study of the day",
          "[find][modality]") {
  auto mr = test::uniform_corpus(1, 2, 2, "MR", "HMR")[0];
  auto ct = test::uniform_corpus(1, 1, 3, "CT", "HCT")[0];
  for (auto* s : {&mr, &ct}) {
    s->patient_id = "HPAT04";
    s->study_date = "20240401";
  }
  Corpus c({mr, ct});
  FakePacs pacs(c.studies);
  pacs.study_modalities = false;
  const auto f = find(pacs, patient_row("HPAT04", "20240401", "CT"), false);
  CHECK(f.study.study_uid == c.studies[1].study_uid);
  CHECK(f.series.size() == 1);
  CHECK(pacs.series_finds >= 2);  // each candidate's series asked for its modalities
  const auto m = find(pacs, patient_row("HPAT04", "20240401", "MR"), false);
  CHECK(m.study.study_uid == c.studies[0].study_uid);
  // No modality: both remain, named with the modalities learned.
  try {
    find(pacs, patient_row("HPAT04", "20240401", ""), false);
    FAIL("no error");
  } catch (const pipeline::PermanentError& e) {
    INFO(e.what());
    CHECK(has(e.what(), "matches 2 studies"));
    CHECK(has(e.what(), "add a Modality column"));
  }
  // A modality neither study holds.
  try {
    find(pacs, patient_row("HPAT04", "20240401", "US"), false);
    FAIL("no error");
  } catch (const pipeline::PermanentError& e) {
    INFO(e.what());
    CHECK(has(e.what(), "none of the 2 studies on PACS FAKE holds modality US"));
    CHECK(has(e.what(), c.studies[0].study_uid + " (20240401, MR)"));
    CHECK(has(e.what(), c.studies[1].study_uid + " (20240401, CT)"));
  }
}

TEST_CASE("a real tie of the row's modality fails naming each candidate and its modalities",
          "[find][modality]") {
  auto specs = test::uniform_corpus(2, 1, 2, "CT", "TIE");
  for (auto& s : specs) {
    s.patient_id = "HPAT05";
    s.study_date = "20240402";
  }
  specs[1].extras = {test::Extra::DoseSR};
  Corpus c(specs);
  for (bool modalities : {true, false}) {
    FakePacs pacs(c.studies);
    pacs.study_modalities = modalities;
    try {
      find(pacs, patient_row("HPAT05", "20240402", "CT"), false);
      FAIL("no error");
    } catch (const pipeline::PermanentError& e) {
      INFO(e.what());
      CHECK(has(e.what(), "matches 2 studies"));
      CHECK(has(e.what(), c.studies[0].study_uid + " (20240402, CT)"));
      CHECK(has(e.what(), c.studies[1].study_uid + " (20240402, CT\\SR)"));
      CHECK(has(e.what(), "all hold modality CT: use Study Instance UID rows"));
    }
  }
}

TEST_CASE(
    "the series-description filter is applied here - a PACS returning no descriptions "
    "fails the row saying so",
    "[find][modality]") {
  Corpus c(test::uniform_corpus(1, 3, 1, "MR", "SD"));
  FakePacs pacs(c.studies);
  pipeline::JobOptions opt;
  opt.series_description = "t2*";
  const auto f = find(pacs, accession_row(c.studies[0]), false, {}, opt);
  REQUIRE(f.series.size() == 1);
  CHECK(f.series[0].description == "T2 COR");
  CHECK(f.skipped_series == 2);
  pacs.series_descriptions = false;
  try {
    find(pacs, accession_row(c.studies[0]), false, {}, opt);
    FAIL("no error");
  } catch (const pipeline::PermanentError& e) {
    INFO(e.what());
    CHECK(has(e.what(),
              "returns no SeriesDescription in C-FIND, so the job's series-description "
              "filter 't2*' cannot be applied"));
  }
}

TEST_CASE(
    "retrieval by C-GET from a PACS that reports no SOP classes: instances outside the "
    "built-in list are retried, then the row fails saying why",
    "[find][sop]") {
  GetRig rig({test::rt_planning_study("RU1", "RUP1", "20240301")}, {new_row("RU1")});
  rig.pacs.study_sop_classes = false;
  rig.pacs.instance_sop_classes = false;           // dcmqrscp
  rig.pacs.refused_classes = {UID_RTPlanStorage};  // not in its built-in list, say
  const auto& study = rig.corpus.studies[0];
  for (int attempt = 1; attempt <= rig.cfg.limits.max_attempts; ++attempt) {
    INFO("attempt " << attempt);
    REQUIRE(rig.pipe->retrieve_once("FAKE"));
    for (const auto& sel : rig.pacs.last_selections()) CHECK(sel.sop_classes.empty());
    const auto it = rig.item();
    CHECK(it.received == study.instance_count() - 1);
    INFO(it.last_error);
    CHECK(has(it.last_error,
              "PACS FAKE reports no SOP classes in C-FIND, so the C-GET proposed "
              "a built-in list"));
    CHECK(has(it.last_error, "retrieve from this PACS by C-MOVE"));
    if (attempt < rig.cfg.limits.max_attempts) {
      CHECK(it.state == S::Queued);
      rig.clock += 100'000;  // past the backoff
    } else {
      CHECK(it.state == S::Failed);
    }
  }
}

TEST_CASE("a PACS that ignores the study date too: the row's date narrows the patient's studies",
          "[find][modality]") {
  auto specs = test::uniform_corpus(2, 1, 1, "CT", "DT");
  for (auto& s : specs) s.patient_id = "HPAT06";
  specs[0].study_date = "20240403";
  specs[1].study_date = "20240404";
  Corpus c(specs);
  FakePacs pacs(c.studies);
  pacs.match_study_date = false;  // answers every study of the patient
  const auto f = find(pacs, patient_row("HPAT06", "20240404", "CT"), false);
  CHECK(f.study.study_uid == c.studies[1].study_uid);
}

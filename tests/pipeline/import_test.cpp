// End-to-end imports: real PACS fixture -> pacs2xnatd -> XNAT stand-in.
#include <filesystem>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>

#include "counting_proxy.hpp"
#include "wait.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;

namespace {

std::vector<StudySpec> small_corpus() {
  auto specs = uniform_corpus(3, 2, 3, "MR", "ACC");
  specs[0].multiframe = true;
  specs[1].compressed = true;
  specs[2].private_tags = true;
  StudySpec no_acc;
  no_acc.accession = "";
  no_acc.patient_id = "PNOACC";
  no_acc.patient_name = "NoAccession^Pat";
  no_acc.study_date = "20230405";
  no_acc.series = 1;
  no_acc.instances = 2;
  specs.push_back(no_acc);
  return specs;
}

// Checks that every study of the CSV is verified, in XNAT exactly once, and the spool is empty.
void check_all_verified(World& w, int job, const std::vector<int>& idx) {
  w.check_verified_once(job, idx);
  CHECK(w.spool_files().empty());
}

}  // namespace

TEST_CASE("import by accession and by patient+date from Orthanc via C-MOVE", "[e2e]") {
  WorldOptions o;
  o.studies = small_corpus();
  World w(o);
  const auto& s3 = w.studies()[3];
  std::string csv = w.accession_csv({0, 1, 2});
  csv += "," + s3.spec.patient_id + "," + s3.spec.study_date;
  // The header has no patient/date columns: write a full CSV instead.
  std::string text = "Accession Number,Patient ID,Study Date,Subject,Session\n";
  for (int i : {0, 1, 2}) {
    const auto& s = w.studies()[static_cast<std::size_t>(i)];
    text += s.spec.accession + ",,," + subject_label(s) + "," + session_label(s) + "\n";
  }
  text += "," + s3.spec.patient_id + "," + s3.spec.study_date.substr(0, 4) + "-" +
          s3.spec.study_date.substr(4, 2) + "-" + s3.spec.study_date.substr(6, 2) + "," +
          subject_label(s3) + "," + session_label(s3) + "\n";
  int job = w.submit(w.write_csv("studies.csv", text));
  json st = w.wait_done(job);
  check_all_verified(w, job, {0, 1, 2, 3});
  // The report has one line per row.
  auto rep = w.daemon().cli({"report", std::to_string(job)});
  REQUIRE(rep.exit_code == 0);
  CHECK(std::count(rep.out.begin(), rep.out.end(), '\n') == 5);
  CHECK(rep.out.find(",verified,") != std::string::npos);
}

TEST_CASE("import from dcmqrscp via C-GET", "[e2e]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.retrieve = "get";
  o.studies = uniform_corpus(2, 2, 4, "CT", "CTACC");
  World w(o);
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0, 1})));
  w.wait_done(job);
  check_all_verified(w, job, {0, 1});
}

TEST_CASE("import from dcmqrscp via C-MOVE with max_associations=1 never exceeded", "[e2e]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.max_associations = 1;
  o.via_proxy = true;
  o.studies = uniform_corpus(4, 2, 3, "MR", "M1ACC");
  World w(o);
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0, 1, 2, 3})));
  w.wait_done(job);
  check_all_verified(w, job, {0, 1, 2, 3});
  CHECK(w.proxy()->total_connections() >= 4);
  CHECK(w.proxy()->max_concurrent() == 1);
}

TEST_CASE("an unknown accession fails with its reason - the others complete", "[e2e]") {
  WorldOptions o;
  o.studies = uniform_corpus(1, 1, 2, "MR", "KNOWN");
  World w(o);
  std::string text = w.accession_csv({0}) + "NOSUCHACC,SUBJX,SESSX\n";
  int job = w.submit(w.write_csv("s.csv", text));
  json st = w.wait_done(job);
  CHECK(st["counts"]["verified"] == 1);
  CHECK(st["counts"]["failed"] == 1);
  bool seen = false;
  for (const auto& it : w.items(job)) {
    if (it["accession"] == "NOSUCHACC") {
      seen = true;
      CHECK(it["state"] == "failed");
      CHECK(it["last_error"] == "accession NOSUCHACC not found on PACS testpacs");
      CHECK(it["retryable"] == false);
    }
  }
  CHECK(seen);
}

TEST_CASE("PACS down before the job: items wait - then complete once it starts", "[e2e]") {
  WorldOptions o;
  o.studies = uniform_corpus(2, 1, 2, "MR", "LATE");
  o.start_pacs = false;
  World w(o);
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0, 1})));
  json st;
  // Both items back in the queue (neither in flight) and the status saying why they wait.
  CHECK(wait_until(
      [&] {
        st = w.status(job);
        return st.contains("notes") &&
               st["notes"].dump().find("unreachable") != std::string::npos &&
               st["counts"]["queued"] == 2;
      },
      std::chrono::seconds(30)));
  CHECK(st["state"] == "active");
  CHECK(st["counts"]["failed"] == 0);
  CHECK(st["counts"]["queued"] == 2);
  REQUIRE(st.contains("notes"));
  CHECK(st["notes"].dump().find("unreachable") != std::string::npos);
  auto human = w.daemon().cli({"status", std::to_string(job)});
  CHECK(human.out.find("waiting: PACS testpacs unreachable") != std::string::npos);
  w.pacs().start();
  std::vector<std::string> files;
  for (const auto& s : w.studies())
    for (const auto& f : s.files()) files.push_back(f);
  w.pacs().load(files);
  w.wait_done(job, 90);
  check_all_verified(w, job, {0, 1});
}

TEST_CASE("dry-run prints what would be retrieved and queues nothing", "[e2e]") {
  WorldOptions o;
  o.studies = uniform_corpus(2, 2, 3, "MR", "DRY");
  World w(o);
  std::string text = w.accession_csv({0, 1}) + "NOPE1,SX,SY\n";
  auto r = w.daemon().cli({"submit", w.write_csv("s.csv", text), "--project", "PROJ", "--pacs",
                           "testpacs", "--dry-run"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);  // one row is not retrievable
  CHECK(r.out.find(w.studies()[0].study_uid) != std::string::npos);
  CHECK(r.out.find("2 series, 6 instances") != std::string::npos);
  CHECK(r.out.find("NOT RETRIEVABLE: accession NOPE1 not found") != std::string::npos);
  CHECK(r.out.find("2 of 3 rows found, 12 instances") != std::string::npos);
  auto list = w.daemon().cli({"list", "--json"});
  CHECK(json::parse(list.out)["jobs"].empty());
}

TEST_CASE("pacs echo through the daemon", "[e2e]") {
  WorldOptions o;
  World w(o);
  auto r = w.daemon().cli({"pacs", "echo", "testpacs"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("C-ECHO testpacs") != std::string::npos);
  w.pacs().stop();
  auto down = w.daemon().cli({"pacs", "echo", "testpacs"});
  CHECK(down.exit_code == 1);
  CHECK(down.err.find("failed") != std::string::npos);
}

// Retrieval behaviour end to end: PACS failures, incomplete studies, filters, windows, controls.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>

#include "ipc/client.hpp"
#include "wait.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

int count_spool_files(World& w) {
  int n = 0;
  for (const auto& f : w.spool_files()) {
    if (fs::path(f).extension() == ".dcm") ++n;
  }
  return n;
}

std::string sop_uid_of(const std::string& path) {
  DcmFileFormat ff;
  if (ff.loadFile(path.c_str()).bad()) return {};
  OFString v;
  ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, v);
  return v.c_str();
}

void rewrite_config(World& w, const std::function<void(json&)>& edit) {
  json cfg;
  std::ifstream(w.daemon().config_path()) >> cfg;
  edit(cfg);
  write_file(w.daemon().config_path(), cfg.dump(2));
}

}  // namespace

TEST_CASE("PACS killed in the middle of a C-MOVE: the item is retried and ends complete",
          "[e2e][retrieve]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.studies = uniform_corpus(1, 2, 150, "MR", "KILLED");
  o.config = {{"limits", {{"max_attempts", 6}}}};
  World w(o);
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  // Wait until the transfer is under way, then kill the PACS (and its per-association child).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (count_spool_files(w) < 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int at_kill = count_spool_files(w);
  w.pacs().kill_hard();
  INFO("files in the spool when the PACS was killed: " << at_kill);
  CHECK(at_kill > 0);
  CHECK(at_kill < 300);
  // The PACS stays down until the daemon has seen the retrieval fail (and ended it).
  CHECK(wait_until(
      [&] {
        const std::string state = w.items(job)[0]["state"];
        return state != "querying" && state != "retrieving";
      },
      std::chrono::seconds(60)));
  w.pacs().start();
  json st = w.wait_done(job, 180);
  CHECK(st["counts"]["verified"] == 1);
  json it = w.items(job)[0];
  CHECK(it["received"] == 300);
  CHECK(it["verified"] == 300);
  const auto& s = w.studies()[0];
  CHECK(w.xnat().uploads_per_session()["PROJ/" + subject_label(s) + "/" + session_label(s)] == 1);
  json state = w.xnat().admin("GET", "/_admin/state");
  CHECK(state["projects"]["PROJ"]["subjects"][subject_label(s)]["experiments"][session_label(s)]
             ["files"] == 300);
}

TEST_CASE("an instance missing on the PACS is reported incomplete with the series named",
          "[e2e][retrieve]") {
  WorldOptions o;
  o.pacs = PacsKind::Dcmqrscp;
  o.studies = uniform_corpus(1, 2, 4, "MR", "HOLE");
  o.config = {{"limits", {{"max_attempts", 2}}}};
  World w(o);
  // Remove one stored file of series 2 behind the PACS's back: its index still lists it.
  const auto& victim_series = w.studies()[0].series[1];
  const std::string victim = victim_series.files[2].sop_uid;
  bool removed = false;
  for (const auto& e : fs::recursive_directory_iterator(w.pacs().work_dir() + "/storage")) {
    if (e.is_regular_file() && sop_uid_of(e.path().string()) == victim) {
      fs::remove(e.path());
      removed = true;
      break;
    }
  }
  REQUIRE(removed);
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  json st = w.wait_done(job, 120);
  CHECK(st["counts"]["failed"] == 1);
  json it = w.items(job)[0];
  std::string reason = it["last_error"];
  INFO(reason);
  CHECK(reason.find("incomplete") != std::string::npos);
  CHECK(reason.find("series " + victim_series.uid) != std::string::npos);
  CHECK(reason.find("3 of 4 instances") != std::string::npos);
  CHECK(it["received"] == 7);
  CHECK(w.xnat().uploads_per_session().empty());  // an incomplete study is never pushed
}

TEST_CASE("objects of skipped SOP classes are neither expected nor retrieved but counted",
          "[e2e][retrieve]") {
  WorldOptions o;
  auto specs = uniform_corpus(1, 2, 3, "MR", "GSPS");
  specs[0].presentation_state = true;
  o.studies = specs;
  World w(o);
  rewrite_config(w, [](json& c) {
    c["pacs"][0]["skip_sop_classes"] = {"1.2.840.10008.5.1.4.1.1.11.1"};
    c["limits"]["study_max_mb"] = 2;  // 6 instances are estimated at 3 MB: flagged, not refused
  });
  w.daemon().stop();
  w.daemon().start();
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  json st = w.wait_done(job);
  CHECK(st["counts"]["verified"] == 1);
  json it = w.items(job)[0];
  CHECK(it["expected"] == 6);
  CHECK(it["verified"] == 6);
  json ev = p2x::ipc::call(w.daemon().socket(), "events", json{{"item", it["id"]}}, 30);
  REQUIRE(ev["ok"] == true);
  CHECK(ev["result"]["events"].dump().find("1 object(s) skipped by the PACS's skip_sop_classes") !=
        std::string::npos);
  CHECK(ev["result"]["events"].dump().find("estimated ~3 MB, exceeds limits.study_max_mb (2 MB)") !=
        std::string::npos);
  const auto& s = w.studies()[0];
  json exp =
      w.xnat().admin("GET", "/_admin/state")["projects"]["PROJ"]["subjects"][subject_label(s)]
                                            ["experiments"][session_label(s)];
  CHECK(exp["files"] == 6);
  CHECK(exp["scans"].size() == 2);
}

TEST_CASE("one PatientID given two subject labels is a warning - or an error in strict mode",
          "[e2e][labels]") {
  WorldOptions o;
  auto specs = uniform_corpus(2, 1, 2, "MR", "LBL");
  specs[1].patient_id = specs[0].patient_id;
  specs[1].patient_name = specs[0].patient_name;
  o.studies = specs;
  World w(o);
  std::string text = "Accession Number,Subject,Session\n" + specs[0].accession +
                     ",SUBJ_A,SESS_A\n" + specs[1].accession + ",SUBJ_B,SESS_B\n";
  int job = w.submit(w.write_csv("s.csv", text));
  json st = w.wait_done(job);
  CHECK(st["counts"]["verified"] == 2);
  CHECK(w.daemon().log().find("label inconsistency: PatientID " + specs[0].patient_id) !=
        std::string::npos);

  std::string text2 = "Accession Number,Subject,Session\n" + specs[0].accession +
                      ",SUBJ_C,SESS_C\n" + specs[1].accession + ",SUBJ_D,SESS_D\n";
  int strict = w.submit(w.write_csv("s2.csv", text2), {"--strict"});
  json st2 = w.wait_done(strict);
  CHECK(st2["counts"]["failed"] == 1);
  CHECK(st2["counts"]["verified"] == 1);
  bool found = false;
  for (const auto& it : w.items(strict)) {
    if (it["state"] == "failed") {
      found = true;
      CHECK(it["last_error"].get<std::string>().find("would split this patient") !=
            std::string::npos);
    }
  }
  CHECK(found);
}

TEST_CASE("outside the availability window items wait and status says why", "[e2e][windows]") {
  WorldOptions o;
  o.studies = uniform_corpus(1, 1, 2, "MR", "WIN");
  o.config = {
      {"pacs", {{{"name", "testpacs"}, {"ae_title", "X"}, {"host", "127.0.0.1"}, {"port", 9}}}}};
  World w(o);
  rewrite_config(w, [&](json& c) {
    c["pacs"][0] = {
        {"name", "testpacs"},
        {"ae_title", w.pacs().ae_title()},
        {"host", "127.0.0.1"},
        {"port", w.pacs().port()},
        {"windows",
         {{{"days", "all"}, {"start", "00:00"}, {"end", "24:00"}, {"max_associations", 0}}}}};
  });
  w.daemon().stop();
  w.daemon().start();
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  json st;
  CHECK(wait_until(
      [&] {
        st = w.status(job);
        return st["notes"].dump().find("outside its availability window") != std::string::npos;
      },
      std::chrono::seconds(30)));
  CHECK(st["counts"]["queued"] == 1);
  // Open the window: the config is reloaded on restart and the item completes.
  rewrite_config(w, [](json& c) { c["pacs"][0].erase("windows"); });
  w.daemon().stop();
  w.daemon().start();
  CHECK(w.wait_done(job)["counts"]["verified"] == 1);
}

TEST_CASE("the spool disk guard holds retrieval back until SIGHUP lowers the floor",
          "[e2e][disk]") {
  WorldOptions o;
  o.studies = uniform_corpus(1, 1, 2, "MR", "DISK");
  o.config = {{"limits", {{"spool_min_free_mb", 900000000}}}};
  World w(o);
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  json st;
  CHECK(wait_until(
      [&] {
        st = w.status(job);
        return st["notes"].dump().find("below limits.spool_min_free_mb") != std::string::npos;
      },
      std::chrono::seconds(30)));
  CHECK(st["counts"]["queued"] == 1);
  rewrite_config(w, [](json& c) { c["limits"]["spool_min_free_mb"] = 10; });
  kill(w.daemon().pid(), SIGHUP);
  CHECK(w.wait_done(job)["counts"]["verified"] == 1);
}

TEST_CASE("pause stops new work within a second - resume and cancel", "[e2e][control]") {
  WorldOptions o;
  o.studies = uniform_corpus(6, 1, 20, "MR", "CTL");
  o.max_associations = 1;
  World w(o);
  w.xnat().admin("POST", "/_admin/delay?ms=300&count=100000");
  int job = w.submit(w.write_csv("s.csv", w.accession_csv({0, 1, 2, 3, 4, 5})));
  REQUIRE(w.daemon().cli({"pause", std::to_string(job)}).exit_code == 0);
  // A retrieval under way when the pause came stops (its item waits again).
  json a;
  CHECK(wait_until(
      [&] {
        a = w.status(job);
        return a["counts"].value("querying", 0) + a["counts"].value("retrieving", 0) == 0;
      },
      std::chrono::seconds(10)));
  // Kept: the behaviour under test is that nothing happens during this time.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  json b = w.status(job);
  // Nothing new is retrieved while paused.
  CHECK(b["counts"]["queued"] == a["counts"]["queued"]);
  CHECK(b["counts"]["queued"].get<int>() >= 4);
  CHECK(b["paused"] == true);
  REQUIRE(w.daemon().cli({"resume", std::to_string(job)}).exit_code == 0);
  // Resumed: work goes on (an item leaves the queue), then the rest is cancelled.
  const int queued_paused = b["counts"]["queued"];
  CHECK(wait_until([&] { return w.status(job)["counts"].value("queued", 0) < queued_paused; },
                   std::chrono::seconds(30)));
  REQUIRE(w.daemon().cli({"cancel", std::to_string(job)}).exit_code == 0);
  json c = w.status(job);
  CHECK(c["state"] == "cancelled");
  int cancelled = c["counts"]["cancelled"];
  CHECK(cancelled >= 1);
  CHECK(cancelled + c["counts"]["verified"].get<int>() == 6);
  // Cancelled items leave no spool behind.
  CHECK(wait_until([&] { return w.spool_files().empty(); }, std::chrono::seconds(30)));
}

TEST_CASE("two studies of one patient on one date are ambiguous unless the modality decides",
          "[e2e][retrieve]") {
  WorldOptions o;
  auto specs = uniform_corpus(2, 1, 2, "MR", "AMB");
  specs[1].patient_id = specs[0].patient_id;
  specs[1].patient_name = specs[0].patient_name;
  specs[1].study_date = specs[0].study_date;
  specs[1].modality = "CT";
  o.studies = specs;
  World w(o);
  const std::string pid = specs[0].patient_id, date = specs[0].study_date;
  std::string text = "Patient ID,Study Date,Modality,Subject,Session\n" + pid + "," + date +
                     ",,SUBJ_AMB,SESS_AMB_ANY\n" + pid + "," + date + ",CT,SUBJ_AMB,SESS_AMB_CT\n";
  int job = w.submit(w.write_csv("s.csv", text));
  json st = w.wait_done(job);
  CHECK(st["counts"]["failed"] == 1);
  CHECK(st["counts"]["verified"] == 1);
  for (const auto& it : w.items(job)) {
    if (it["session"] == "SESS_AMB_ANY") {
      CHECK(it["state"] == "failed");
      std::string e = it["last_error"];
      INFO(e);
      CHECK(e.find("patient " + pid + " on " + date + " matches 2 studies") != std::string::npos);
      CHECK(e.find("add a Modality column") != std::string::npos);
    } else {
      CHECK(it["state"] == "verified");
      CHECK(it["study_uid"] == w.studies()[1].study_uid);
    }
  }
}

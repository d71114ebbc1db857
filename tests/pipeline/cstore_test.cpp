// The C-STORE push method wired through the daemon: against plain DCMTK storescp (what is sent,
// and that the item waits for REST verification afterwards), and against the stand-in's XNAT-like
// DICOM receiver (storescp in front, sessions built after an idle interval): verified, and a
// study the receiver split into two sessions.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <catch2/catch.hpp>

#include "pacs_fixture.hpp"
#include "process.hpp"
#include "wait.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A one-study world whose daemon pushes by C-STORE to the stand-in's XNAT-like DICOM receiver
// (AE XNAT on `port`, sessions built after 2 s idle).
WorldOptions receiver_world(std::uint16_t port, const std::string& tag) {
  WorldOptions o;
  o.studies = uniform_corpus(1, 2, 3, "MR", tag);
  o.xnat_args = {"--dicom-port", std::to_string(port), "--dicom-idle", "2"};
  o.config = {{"xnat",
               {{"push", "cstore"},
                {"dicom_ae", "XNAT"},
                {"dicom_host", "127.0.0.1"},
                {"dicom_port", port}}}};
  return o;
}

void wait_for_receiver(std::uint16_t port) {
  for (int i = 0; i < 100 && !echo(port, "XNAT", 1); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

}  // namespace

TEST_CASE("xnat.push cstore sends each study in one association with the routing comment",
          "[e2e][cstore]") {
  std::string dir = make_temp_dir("p2x-cstore");
  std::uint16_t port = free_port();
  SpawnOptions so;
  so.log_path = dir + "/storescp.log";
  fs::create_directories(dir + "/received");
  pid_t scp = spawn(
      {"/usr/bin/storescp", "-aet", "XNAT", "-od", dir + "/received", std::to_string(port)}, so);
  for (int i = 0; i < 100 && !echo(port, "XNAT", 1); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    WorldOptions o;
    o.studies = uniform_corpus(1, 2, 3, "MR", "CSTORE");
    o.config = {{"xnat",
                 {{"push", "cstore"},
                  {"dicom_ae", "XNAT"},
                  {"dicom_host", "127.0.0.1"},
                  {"dicom_port", port}}}};
    World w(o);
    int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
    json it;
    for (int i = 0; i < 300; ++i) {
      it = w.items(job)[0];
      if (it["state"] == "pushed" || it["state"] == "failed") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO(it.dump());
    REQUIRE(it["state"] == "pushed");
    const auto& s = w.studies()[0];
    const std::string routing =
        "Project: PROJ Subject: " + subject_label(s) + " Session: " + session_label(s);
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir + "/received")) {
      DcmFileFormat ff;
      REQUIRE(ff.loadFile(e.path().c_str()).good());
      OFString comment;
      ff.getDataset()->findAndGetOFString(DCM_PatientComments, comment);
      CHECK(std::string(comment.c_str()) == routing);
      ++files;
    }
    CHECK(files == 6);
    // Nothing was uploaded through REST; the item waits until XNAT shows the session.
    CHECK(w.xnat().uploads_per_session().empty());
    CHECK(wait_until(
        [&] {
          return w.items(job)[0]["wait_reason"].get<std::string>().find(
                     "waiting for XNAT to show the upload") != std::string::npos;
        },
        std::chrono::seconds(30)));
  }
  stop_pid(scp, 3000);
  remove_tree(dir);
}

TEST_CASE("a C-STORE-pushed study is verified against the stand-in's XNAT-like DICOM receiver",
          "[e2e][cstore]") {
  const std::uint16_t port = free_port();
  World w(receiver_world(port, "RECV"));
  wait_for_receiver(port);
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  const json st = w.wait_done(job, 180);
  CHECK(st["counts"]["verified"] == 1);
  const json it = w.items(job)[0];
  CHECK(it["verified"] == 6);
  const auto& s = w.studies()[0];
  // Routed by the comment and built once the study was idle: one archived session, no upload.
  const json state = w.xnat().admin("GET", "/_admin/state");
  CHECK(state["projects"]["PROJ"]["subjects"][subject_label(s)]["experiments"][session_label(s)]
             ["files"] == 6);
  CHECK(w.xnat().uploads_per_session().empty());
}

TEST_CASE(
    "a session XNAT's receiver already built from an earlier burst: the rest goes by the "
    "REST import with overwrite_files, and the row is verified",
    "[e2e][cstore]") {
  const std::uint16_t port = free_port();
  World w(receiver_world(port, "SPLIT"));
  wait_for_receiver(port);
  const auto& s = w.studies()[0];
  // The first burst of an interrupted push: the first series only, routed like the daemon does.
  const std::string routing =
      "Project: PROJ Subject: " + subject_label(s) + " Session: " + session_label(s);
  std::vector<std::string> argv{"/usr/bin/storescu", "-aet", "P2XTEST", "-aec", "XNAT"};
  fs::create_directories(w.dir() + "/burst");
  for (const auto& f : s.series.at(0).files) {
    DcmFileFormat ff;
    REQUIRE(ff.loadFile(f.path.c_str()).good());
    ff.getDataset()->putAndInsertString(DCM_PatientComments, routing.c_str());
    const std::string out = w.dir() + "/burst/" + f.sop_uid + ".dcm";
    REQUIRE(ff.saveFile(out.c_str()).good());
    argv.push_back(out);
  }
  argv.insert(argv.begin() + 5, {"127.0.0.1", std::to_string(port)});
  SpawnOptions so;
  so.log_path = w.dir() + "/storescu.log";
  REQUIRE(run(argv, so, 30000) == 0);
  // XNAT builds that burst as the session once it has been idle; the daemon's push comes later.
  bool built = false;
  for (int i = 0; i < 100 && !built; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    built = !w.xnat().admin("GET", "/_admin/state")["projects"]["PROJ"]["subjects"].empty();
  }
  REQUIRE(built);
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})), {"--append"});
  const json st = w.wait_done(job, 180);
  INFO(w.items(job).dump(2));
  CHECK(st["counts"]["verified"] == 1);
  // A later C-STORE burst would conflict on every instance XNAT holds (MergeSessionsA): the
  // daemon sent the series XNAT lacked through the REST import instead, once.
  int bursts = 0, imports = 0;
  const json ups = w.xnat().admin("GET", "/_admin/uploads");
  for (const auto& u : ups["uploads"]) {
    bursts += u["status"] == "dicom" ? 1 : 0;
    imports += u["status"] == "dicom" ? 0 : 1;
  }
  CHECK(bursts == 1);
  CHECK(imports == 1);
  CHECK(w.spool_files().empty());
}

TEST_CASE("a SOP class XNAT's DICOM receiver does not take fails the row, naming the class",
          "[e2e][cstore]") {
  const std::uint16_t port = free_port();
  WorldOptions o = receiver_world(port, "REFUSED");
  o.studies = {ct_with_dose_objects("REFUSED1", "PREFUSED", "20240301")};
  World w(o);
  wait_for_receiver(port);
  // XNAT's receiver negotiates only the SOP classes CStoreService lists; here not PDFs.
  w.xnat().admin("POST", "/_admin/receiver_refuse_sop?uid=1.2.840.10008.5.1.4.1.1.104.1");
  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  const json st = w.wait_done(job, 180);
  CHECK(st["counts"]["failed"] == 1);
  const std::string why = w.items(job)[0]["last_error"];
  INFO(why);
  CHECK_THAT(why, Catch::Contains("XNAT's DICOM receiver refused 1 of") &&
                      Catch::Contains("receiver did not accept EncapsulatedPDFStorage"));
}

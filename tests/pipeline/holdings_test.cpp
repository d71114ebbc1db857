// What XNAT already holds, and what reaches it (issues 20 and 21), end to end against the
// stand-in, which follows XNAT's merge rules (MergeSessionsA: an instance a session holds is
// refused unless overwrite_files=true): `--append` onto a session holding part of the study; a
// spool file changed after validation; a crash leftover in the study's folder.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The stand-in's import log entries for one session label.
json uploads_of(World& w, const std::string& session) {
  json out = json::array();
  const json all = w.xnat().admin("GET", "/_admin/uploads");
  for (const auto& u : all["uploads"])
    if (u["session"] == session) out.push_back(u);
  return out;
}

// Files per scan of the archived session, by SeriesInstanceUID (DICOM and secondary alike).
std::map<std::string, int> archived_files(World& w, const GeneratedStudy& s) {
  const json scans =
      w.xnat().admin("GET", "/_admin/state")["projects"]["PROJ"]["subjects"][subject_label(s)]
                                            ["experiments"][session_label(s)]["scans"];
  std::map<std::string, int> out;
  for (const auto& [id, scan] : scans.items()) out[scan["UID"]] += scan["files"].get<int>();
  return out;
}

// Holds every push (the label lookup before it answers 503) until released.
void hold_pushes(World& w) {
  w.xnat().admin("POST",
                 "/_admin/fail?count=1000000&status=503&path=/data/projects/PROJ/experiments");
}

void wait_state(World& w, int job, const std::string& state) {
  for (int i = 0; i < 600; ++i) {
    bool all = true;
    for (const auto& it : w.items(job)) all = all && it["state"] == state;
    if (all) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("items not " << state << " in time: " << w.items(job).dump());
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE(
    "submit --append onto a session that holds series 1 of 3: only series 2 and 3 are sent, "
    "XNAT accepts them",
    "[e2e][xnat][holdings]") {
  WorldOptions o;
  o.studies = uniform_corpus(1, 3, 3, "MR", "APPEND");
  World w(o);
  const auto& s = w.studies()[0];
  const std::string csv = w.write_csv("a.csv", w.accession_csv({0}));
  // An earlier job imported the first series only.
  const int first = w.submit(csv, {"--series-description", "T1 AX"});
  REQUIRE(w.wait_done(first)["counts"]["verified"] == 1);
  REQUIRE(archived_files(w, s).size() == 1);

  const int job = w.submit(csv, {"--append"});
  const json st = w.wait_done(job, 120);
  INFO(w.items(job).dump(2));
  CHECK(st["counts"]["verified"] == 1);
  const auto held = archived_files(w, s);
  REQUIRE(held.size() == 3);
  for (const auto& series : s.series) CHECK(held.at(series.uid) == 3);
  const json ups = uploads_of(w, session_label(s));
  REQUIRE(ups.size() == 2);  // the first job's, and one push of what XNAT lacked
  CHECK(ups[1]["status"] == 200);
  CHECK(ups[1]["files"] == 6);
  CHECK(w.items(job)[0]["verified"] == 9);
  CHECK(w.spool_files().empty());
}

TEST_CASE(
    "a study file changed after validation never reaches XNAT: it is fetched from the PACS "
    "again and XNAT holds the PACS's bytes",
    "[e2e][xnat][holdings]") {
  WorldOptions o;
  o.studies = uniform_corpus(1, 2, 3, "MR", "CHANGED");
  World w(o);
  const auto& s = w.studies()[0];
  const int job = w.submit(w.write_csv("a.csv", w.accession_csv({0})));
  hold_pushes(w);  // after submit: its pre-flight lists the project's sessions
  wait_state(w, job, "validated");
  // A few bytes written into one validated file (as `dd conv=notrunc` would).
  const auto id = w.item_ids(job).at(0);
  const std::string victim = w.spool_item_dir(id) + "/" + s.series[1].files[2].sop_uid + ".dcm";
  const std::string original = read_all(victim);
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-16, std::ios::end);
    f.write("CHANGED-CHANGED!", 16);
  }
  w.xnat().admin("POST", "/_admin/clear_knobs");
  const json st = w.wait_done(job, 120);
  INFO(w.items(job).dump(2));
  CHECK(st["counts"]["verified"] == 1);
  w.check_verified_once(job, {0});
  // XNAT's copy of that instance is the PACS's.
  const std::string log = w.daemon().log();
  CHECK(has(log, "changed since it was checked"));
  CHECK(has(log, "fetched from the PACS again"));
  bool found = false;
  for (const auto& f : fs::recursive_directory_iterator(w.xnat().dir())) {
    if (!f.is_regular_file() || read_all(f.path().string()) != original) continue;
    found = true;
  }
  CHECK(found);
}

TEST_CASE("leftovers of a killed retrieval (.part) are removed at start-up and never zipped",
          "[e2e][xnat][holdings]") {
  WorldOptions o;
  o.studies = uniform_corpus(1, 1, 4, "MR", "LEFTOVER");
  World w(o);
  const int job = w.submit(w.write_csv("a.csv", w.accession_csv({0})));
  hold_pushes(w);
  wait_state(w, job, "validated");
  const auto id = w.item_ids(job).at(0);
  w.daemon().kill_hard();
  // What the Storage SCP leaves when killed while writing an instance.
  const std::string part = w.spool_item_dir(id) + "/.p2x-4242-7-1.2.3.4.part";
  std::ofstream(part, std::ios::binary) << std::string(1000, 'x');
  w.xnat().admin("POST", "/_admin/clear_knobs");
  w.daemon().start();
  const json st = w.wait_done(job, 120);
  INFO(w.items(job).dump(2));
  CHECK(st["counts"]["verified"] == 1);
  w.check_verified_once(job, {0});
  CHECK_FALSE(fs::exists(part));
  CHECK(has(w.daemon().log(), "unfinished file(s) of item"));
  const json ups = uploads_of(w, session_label(w.studies()[0]));
  REQUIRE(ups.size() == 1);
  CHECK(ups[0]["files"] == 4);
}

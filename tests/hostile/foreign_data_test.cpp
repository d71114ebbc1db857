// Hostile peers at the Storage SCP while a study is being retrieved (issue 12, item 3): a
// foreign calling AE (EVIL) storing an instance of that study, the PACS's own AE title adding a
// series the C-FIND did not report or an instance (a new SOP Instance UID in a reported series)
// the PACS does not have, and a second copy of an instance already received with different
// content. Real daemon, real Orthanc behind a proxy that holds back the C-MOVE's
// responses, so the retrieval's route stays open while the attacks run (deterministic: every
// instance of the study has arrived and the final C-MOVE response has not).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "counting_proxy.hpp"
#include "ipc/client.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string new_uid() {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
  return buf;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A copy of `source` with some elements changed ("" keeps the value), as a new Part 10 file.
struct Forged {
  std::string path, sop_uid, series_uid;
};
Forged forge(const std::string& source, const std::string& out, std::string series_uid,
             std::string sop_uid, const std::string& comment) {
  DcmFileFormat ff;
  REQUIRE(ff.loadFile(source.c_str()).good());
  DcmDataset* ds = ff.getDataset();
  OFString v;
  if (series_uid.empty() && ds->findAndGetOFString(DCM_SeriesInstanceUID, v).good())
    series_uid = v.c_str();
  if (sop_uid.empty() && ds->findAndGetOFString(DCM_SOPInstanceUID, v).good()) sop_uid = v.c_str();
  REQUIRE(ds->putAndInsertString(DCM_SeriesInstanceUID, series_uid.c_str()).good());
  REQUIRE(ds->putAndInsertString(DCM_SOPInstanceUID, sop_uid.c_str()).good());
  if (!comment.empty()) REQUIRE(ds->putAndInsertString(DCM_ImageComments, comment.c_str()).good());
  ff.getMetaInfo()->clear();  // written anew for the new SOP Instance UID
  REQUIRE(ff.saveFile(out.c_str(), EXS_LittleEndianExplicit).good());
  return {out, sop_uid, series_uid};
}

int storage_port(World& w) {
  std::ifstream in(w.daemon().config_path());
  return json::parse(in).at("storage_port").get<int>();
}

// storescu of one file into the daemon's SCP with `calling_ae`; its exit code and output.
CommandResult store(World& w, const std::string& calling_ae, const std::string& file) {
  return run_program({"/usr/bin/storescu", "-v", "-aet", calling_ae, "-aec", "P2XTEST", "127.0.0.1",
                      std::to_string(storage_port(w)), file});
}

std::size_t count_dcm(const std::string& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".dcm") ++n;
  return n;
}

bool wait_until(const std::function<bool()>& ready, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!ready()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Files under `root` (recursively) whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::string& root, const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  const fs::recursive_directory_iterator end;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != end; it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec)) continue;
    if (read_bytes(it->path().string()).find(needle) != std::string::npos)
      out.push_back(it->path().string());
  }
  return out;
}

// Files under `root` (recursively) called `name`.
std::vector<std::string> files_named(const std::string& root, const std::string& name) {
  std::vector<std::string> out;
  std::error_code ec;
  const fs::recursive_directory_iterator end;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != end; it.increment(ec)) {
    if (ec) break;
    if (it->path().filename() == name) out.push_back(it->path().string());
  }
  return out;
}

// The daemon still serves: a control request and a C-ECHO, each within a second.
void check_still_serving(World& w) {
  auto t0 = Clock::now();
  json pong = p2x::ipc::call(w.daemon().socket(), "ping", json::object(), 5);
  CHECK(pong["ok"] == true);
  CHECK(Clock::now() - t0 < std::chrono::seconds(1));
  t0 = Clock::now();
  auto echo = run_program({"/usr/bin/echoscu", "-aet", w.pacs().ae_title(), "-aec", "P2XTEST",
                           "127.0.0.1", std::to_string(storage_port(w))});
  CHECK(echo.exit_code == 0);
  CHECK(Clock::now() - t0 < std::chrono::seconds(1));
}

}  // namespace

TEST_CASE("foreign instances stored into a retrieval never reach XNAT", "[hostile]") {
  WorldOptions o;
  o.via_proxy = true;
  // WORKSTATION may associate (a C-ECHO, say), never store into a retrieval.
  o.config = {{"storage_allowed_calling_aes", {"WORKSTATION"}}};
  // One association for the study: the proxy holds the answers of that one C-MOVE, so the
  // route stays open after the last instance (with parallel series the other lane's route closes).
  o.pacs_entry = {{"parallel_series", false}};
  StudySpec spec = uniform_corpus(1, 2, 40, "MR", "FOREIGN")[0];
  spec.rows = spec.cols = 64;
  o.studies = {spec};
  World w(o);
  const GeneratedStudy& study = w.studies()[0];
  const int expected = study.instance_count();
  const std::string original = study.series[0].files[0].path;
  const std::string attack_dir = w.dir() + "/attack";
  fs::create_directories(attack_dir);
  // Each forged file carries a marker of its own, to look for wherever data may have gone.
  const Forged evil = forge(original, attack_dir + "/evil.dcm", new_uid(), new_uid(), "p2x-evil");
  const Forged new_series =
      forge(original, attack_dir + "/new-series.dcm", new_uid(), new_uid(), "p2x-new-series");
  const Forged duplicate =
      forge(original, attack_dir + "/duplicate.dcm", "", "", "p2x-foreign-duplicate");
  // A new SOP Instance UID in a series the PACS reported (issue 21: it used to fail the study).
  const Forged new_instance =
      forge(original, attack_dir + "/new-instance.dcm", "", new_uid(), "p2x-new-instance");
  REQUIRE(duplicate.sop_uid == study.series[0].files[0].sop_uid);

  const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
  const std::int64_t item = w.item_ids(job).at(0);
  const std::string spool = w.spool_item_dir(item);
  // The retrieval's directory appears just before its C-MOVE: from then on the PACS's answers
  // wait in the proxy, so the route stays open after the last instance.
  REQUIRE(wait_until([&] { return fs::exists(spool); }, 60000));
  w.proxy()->hold_responses(true);
  const auto all_arrived = [&] { return count_dcm(spool) == static_cast<std::size_t>(expected); };
  REQUIRE(wait_until(all_arrived, 30000));
  const std::string original_bytes = read_bytes(spool + "/" + duplicate.sop_uid + ".dcm");

  const auto rejected = store(w, "EVIL", evil.path);
  const auto refused = store(w, "WORKSTATION", evil.path);
  const auto added = store(w, w.pacs().ae_title(), new_series.path);
  const auto copied = store(w, w.pacs().ae_title(), duplicate.path);
  const auto extra = store(w, w.pacs().ae_title(), new_instance.path);
  INFO("new instance: " << extra.err);
  INFO("EVIL: " << rejected.err << "\nWORKSTATION: " << refused.err << "\nnew series: " << added.err
                << "\nduplicate: " << copied.err);
  // EVIL, in no list, is rejected at A-ASSOCIATE time; WORKSTATION, allowed to associate, is
  // refused by the route as not authorised (not as "no retrieval waiting" 0xA700: the route
  // was open), and the daemon says why.
  CHECK(rejected.exit_code != 0);
  CHECK(w.daemon().log().find("association from 'EVIL' at 127.0.0.1 rejected: calling AE title "
                              "not recognized") != std::string::npos);
  CHECK(refused.err.find("Status: 0x124") != std::string::npos);
  CHECK(w.daemon().log().find("calling AE WORKSTATION may not store into this retrieval") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(spool + "/" + evil.sop_uid + ".dcm"));
  CHECK(files_containing(w.daemon().state_dir(), "p2x-evil").empty());
  // The PACS's AE title is let in; the duplicate never replaces the first copy.
  CHECK(added.err.find("Success") != std::string::npos);
  CHECK(copied.err.find("Success") != std::string::npos);
  CHECK(read_bytes(spool + "/" + duplicate.sop_uid + ".dcm") == original_bytes);
  CHECK(extra.err.find("Success") != std::string::npos);
  CHECK(count_dcm(spool) == static_cast<std::size_t>(expected) + 2);  // + series + instance
  // The differing copy waits in the quarantine beside the study's directory, in the spool.
  const auto kept = files_containing(w.daemon().state_dir(), "p2x-foreign-duplicate");
  REQUIRE(kept.size() == 1);
  CHECK(fs::path(kept[0]).parent_path() ==
        fs::path(w.daemon().state_dir()) / "spool" / ".quarantine" / std::to_string(item));
  check_still_serving(w);

  w.proxy()->hold_responses(false);
  const json st = w.wait_done(job, 120);
  const std::string log = w.daemon().log();
  INFO(st.dump(2) << "\n" << log.substr(log.size() > 8000 ? log.size() - 8000 : 0));
  const json it = w.items(job).at(0);
  CHECK(it["state"] == "verified");
  CHECK(it["received"] == expected);
  CHECK(it["verified"] == expected);
  CHECK(it["attempts"] == 0);  // the extra instance was kept apart, never a failed validation
  CHECK(w.xnat().uploads_per_session().size() == 1);

  // XNAT holds none of the foreign data, and the original of the duplicated instance.
  const std::string xnat_data = w.dir() + "/xnat/data";
  CHECK(files_containing(xnat_data, evil.series_uid).empty());
  CHECK(files_containing(xnat_data, new_series.series_uid).empty());
  CHECK(files_containing(xnat_data, "p2x-evil").empty());
  CHECK(files_containing(xnat_data, "p2x-new-series").empty());
  CHECK(files_containing(xnat_data, "p2x-new-instance").empty());
  CHECK(files_containing(xnat_data, "p2x-foreign-duplicate").empty());
  const auto copies = files_named(xnat_data, duplicate.sop_uid + ".dcm");
  REQUIRE(copies.size() == 1);
  CHECK(read_bytes(copies[0]).find("p2x-foreign-duplicate") == std::string::npos);

  // The item's events say what was quarantined and why.
  const json ev = p2x::ipc::call(w.daemon().socket(), "events", json{{"item", item}}, 30);
  const std::string events = ev["result"]["events"].dump();
  INFO(events);
  CHECK(events.find("kept apart 1 instance(s) the PACS does not have") != std::string::npos);
  CHECK(events.find("quarantined 3 instance(s)") != std::string::npos);
  CHECK(events.find("series " + new_series.series_uid + " was not reported by the PACS") !=
        std::string::npos);
  CHECK(events.find("second copy of " + duplicate.sop_uid + " differs from the first") !=
        std::string::npos);
  // Nothing of the attack was written outside the spool (which is gone after verification).
  for (const char* marker :
       {"p2x-evil", "p2x-new-series", "p2x-foreign-duplicate", "p2x-new-instance"}) {
    INFO(marker);
    CHECK(files_containing(w.daemon().state_dir(), marker).empty());
  }
  CHECK(w.spool_files().empty());
  check_still_serving(w);
}

// A PACS queried under one AE title that stores under another (a cluster's node, a router):
// its C-STOREs are refused until pacs[].storing_ae_titles names that title. Orthanc here
// answers to any called AE title and always stores as itself.
TEST_CASE("a PACS storing under another AE title than it is queried by needs storing_ae_titles",
          "[hostile]") {
  StudySpec spec = uniform_corpus(1, 1, 5, "MR", "STORINGAE")[0];
  spec.rows = spec.cols = 32;
  SECTION("without it: refused, never in the spool") {
    WorldOptions o;
    o.studies = {spec};
    o.pacs_entry = {{"ae_title", "P2XALIAS"}};
    World w(o);
    const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
    const std::string refusal = "association from '" + w.pacs().ae_title() +
                                "' at 127.0.0.1 rejected: calling AE title not recognized";
    REQUIRE(wait_until([&] { return w.daemon().log().find(refusal) != std::string::npos; }, 60000));
    const json it = w.items(job).at(0);
    CHECK(it["state"] != "verified");
    CHECK(it["received"] == 0);
    CHECK(w.xnat().uploads_per_session().empty());
  }
  SECTION("with it: verified") {
    WorldOptions o;
    o.studies = {spec};
    o.pacs_entry = {{"ae_title", "P2XALIAS"}, {"storing_ae_titles", {"P2XORTHANC"}}};
    World w(o);
    REQUIRE(w.pacs().ae_title() == "P2XORTHANC");
    const int job = w.submit(w.write_csv("s.csv", w.accession_csv({0})));
    const json st = w.wait_done(job, 120);
    INFO(st.dump(2));
    const json it = w.items(job).at(0);
    CHECK(it["state"] == "verified");
    CHECK(it["verified"] == w.studies()[0].instance_count());
  }
}

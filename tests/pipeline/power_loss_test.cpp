// Spool files are not fsynced (pipeline/spool.hpp). A restart in a new boot without a clean
// stop (what a power loss looks like) must discard the spool of every unfinished study and
// retrieve it again, so damaged files never reach XNAT; a kill -9 in the same boot, or a clean
// stop before the reboot, keeps the spool. The boot is simulated with paths.boot_id_file.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <catch2/catch.hpp>
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include "ipc/client.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kRequeued = "restarted without a clean stop";

struct Boot {
  std::string dir = make_temp_dir("p2x-boot");
  std::string file = dir + "/boot_id";
  explicit Boot(const std::string& id) { set(id); }
  ~Boot() { remove_tree(dir); }
  void set(const std::string& id) const { write_file(file, id + "\n"); }
};

WorldOptions options(const Boot& boot) {
  WorldOptions o;
  o.studies = uniform_corpus(3, 2, 5, "MR", "PWR");
  o.config = json{{"paths", {{"boot_id_file", boot.file}}}};
  return o;
}

// Pushes fail (503 on the session lookup that precedes every upload), so studies stay in the
// spool, validated, until the knob is cleared.
void hold_pushes(World& w) {
  w.xnat().admin("POST",
                 "/_admin/fail?count=1000000&status=503&path=/data/projects/PROJ/experiments");
}

void wait_all_validated(World& w, int job) {
  for (int i = 0; i < 600; ++i) {
    bool all = true;
    for (const auto& it : w.items(job)) {
      const std::string st = it["state"];
      if (st != "validated" && st != "pushing") all = false;
    }
    if (all) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("items not validated in time: " << w.items(job).dump());
}

std::string events_of(World& w, const json& item) {
  json ev = p2x::ipc::call(w.daemon().socket(), "events", json{{"item", item["id"]}}, 30);
  return ev["result"]["events"].dump();
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// SOPInstanceUID -> pixel data bytes of each file ("unreadable" for a file DCMTK cannot load).
std::map<std::string, std::string> pixels(const std::vector<std::string>& files) {
  std::map<std::string, std::string> out;
  for (const auto& f : files) {
    DcmFileFormat ff;
    OFString sop;
    const Uint8* data = nullptr;
    unsigned long n = 0;
    DcmDataset* ds = ff.getDataset();
    if (ff.loadFile(f.c_str()).bad() || ds->findAndGetOFString(DCM_SOPInstanceUID, sop).bad() ||
        ds->findAndGetUint8Array(DCM_PixelData, data, &n).bad()) {
      out[f] = "unreadable";
      continue;
    }
    out[sop.c_str()] = std::string(reinterpret_cast<const char*>(data), n);
  }
  return out;
}

std::vector<std::string> archived(const World& w) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(w.dir() + "/xnat/data/archive")) {
    if (e.is_regular_file() && e.path().extension() == ".dcm") files.push_back(e.path().string());
  }
  return files;
}

// Submits the three studies; returns once they wait, validated, in the spool.
int submit_and_hold(World& w) {
  int job = w.submit(w.write_csv("p.csv", w.accession_csv({0, 1, 2})));
  hold_pushes(w);  // after submit: its pre-flight lists the project's sessions
  wait_all_validated(w, job);
  return job;
}

// Starts the stopped daemon in boot "boot-B", lets the pushes through, waits for the job and
// checks that each study is verified, uploaded once, requeued for spool loss `requeues` times
// and retrieved `retrievals` times.
void finish_in_new_boot(World& w, const Boot& boot, int job, int requeues, int retrievals) {
  boot.set("boot-B");
  w.xnat().admin("POST", "/_admin/clear_knobs");
  w.daemon().start();
  w.wait_done(job, 120);
  w.check_verified_once(job, {0, 1, 2});
  for (const auto& it : w.items(job)) {
    const std::string ev = events_of(w, it);
    INFO(ev);
    CHECK(count_of(ev, kRequeued) == requeues);
    CHECK(count_of(ev, "\"to\":\"retrieved\"") == retrievals);
  }
}

}  // namespace

TEST_CASE("after a power loss the spool of unfinished studies is discarded and fetched again",
          "[e2e][spool]") {
  Boot boot("boot-A");
  World w(options(boot));
  const int job = submit_and_hold(w);
  w.daemon().kill_hard();

  // What a power loss can leave behind: short files and files of the right size full of zeros
  // (validation would not notice those).
  std::vector<std::string> left;  // the study files (not the validated lists beside them)
  for (const auto& f : w.spool_files())
    if (fs::path(f).extension() == ".dcm") left.push_back(f);
  REQUIRE(left.size() == 30);
  for (std::size_t i = 0; i < left.size(); i += 3) {
    const auto size = fs::file_size(left[i]);
    if (i % 2 == 0) {
      fs::resize_file(left[i], size / 2);
    } else {
      write_file(left[i], std::string(size, '\0'));
    }
  }
  finish_in_new_boot(w, boot, job, 1, 2);  // fetched again
  // XNAT holds the PACS's pixels: no damaged file went out.
  std::vector<std::string> source;
  for (const auto& s : w.studies()) {
    auto f = s.files();
    source.insert(source.end(), f.begin(), f.end());
  }
  const auto got = pixels(archived(w)), want = pixels(source);
  CHECK(got.size() == 30);
  CHECK((got == want));
  CHECK(w.daemon().log().find("item(s) back to queued") != std::string::npos);
}

TEST_CASE("a kill -9 in the same boot or a clean stop before a reboot keeps the spool",
          "[e2e][spool]") {
  Boot boot("boot-A");
  World w(options(boot));
  const int job = submit_and_hold(w);
  w.daemon().kill_hard();  // same boot: the page cache kept every file
  w.daemon().start();
  wait_all_validated(w, job);
  w.daemon().stop();  // clean: syncfs, then the synced mark
  CHECK(w.daemon().last_exit() == 0);
  finish_in_new_boot(w, boot, job, 0, 1);  // never fetched twice
}

TEST_CASE("a boot id file that cannot be read stops the start-up with its name", "[e2e][spool]") {
  std::string dir = make_temp_dir("p2x-boot-missing");
  {
    Daemon d(dir, json{{"paths", {{"boot_id_file", dir + "/no-such-boot-id"}}}});
    CHECK_THROWS_WITH(d.start(),
                      Catch::Contains("cannot read the boot id from " + dir + "/no-such-boot-id"));
  }
  remove_tree(dir);
}

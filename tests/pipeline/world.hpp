// A whole import world for end-to-end tests: generated studies loaded into a real test PACS
// (Orthanc or dcmqrscp), the XNAT stand-in, and the real pacs2xnatd + pacs2xnat binaries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "pacs_fixture.hpp"
#include "standin.hpp"
#include "testdata.hpp"

namespace p2x::test {

struct WorldOptions {
  PacsKind pacs = PacsKind::Orthanc;
  std::string retrieve = "move";  // or "get"
  int max_associations = 2;
  std::vector<StudySpec> studies;  // loaded into the PACS
  bool start_pacs = true;
  bool stock_pacs = false;  // PACS without TCP_NODELAY (Nagle on, as shipped)
  bool via_proxy = false;   // put a CountingProxy between daemon and PACS
  nlohmann::json config = nlohmann::json::object();      // merged over the daemon's config
  nlohmann::json pacs_entry = nlohmann::json::object();  // merged over its pacs[0]
  std::vector<std::string> projects{"PROJ"};
  std::vector<std::string> xnat_args;  // extra arguments of the XNAT stand-in
};

class World {
 public:
  explicit World(WorldOptions options);
  ~World();

  const std::string& dir() const { return dir_; }
  PacsFixture& pacs() { return *pacs_; }
  XnatStandin& xnat() { return *xnat_; }
  Daemon& daemon() { return *daemon_; }
  class CountingProxy* proxy() {
    return proxy_.get();
  }
  const std::vector<GeneratedStudy>& studies() const { return studies_; }

  // Writes a CSV into the world dir and returns its path.
  std::string write_csv(const std::string& name, const std::string& text) const;
  // CSV with one accession row per study: "Accession Number,Subject,Session".
  std::string accession_csv(const std::vector<int>& study_indexes) const;
  // Submits and returns the job id (REQUIREs success).
  int submit(const std::string& csv, const std::vector<std::string>& extra = {});
  nlohmann::json status(int job) const;
  nlohmann::json items(int job) const;
  // Polls until the job is no longer active (or the timeout); returns the last status.
  nlohmann::json wait_done(int job, int timeout_s = 120) const;
  std::vector<std::string> spool_files() const;  // files left in the spool, but its boot marks
  // The spool directory of one item (<spool>/<item id>, as pipeline::Spool::item_dir makes
  // it) and the files under the directories of `item_ids` (none for a directory that is gone).
  std::string spool_item_dir(std::int64_t item_id) const;
  std::vector<std::string> spool_item_files(const std::vector<std::int64_t>& item_ids) const;
  // The ids of the items of `job`, in row order.
  std::vector<std::int64_t> item_ids(int job) const;
  // CHECKs that the studies `idx` of `job` are verified with received == verified == expected,
  // and that XNAT received each of their sessions exactly once.
  void check_verified_once(int job, const std::vector<int>& idx) const;

 private:
  std::string dir_;
  std::vector<GeneratedStudy> studies_;
  std::unique_ptr<PacsFixture> pacs_;
  std::unique_ptr<class CountingProxy> proxy_;
  std::unique_ptr<XnatStandin> xnat_;
  std::unique_ptr<Daemon> daemon_;
};

std::string session_label(const GeneratedStudy& s);
std::string subject_label(const GeneratedStudy& s);

}  // namespace p2x::test

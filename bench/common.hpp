// bench/common: shared pieces of the benchmarks: timing statistics, process memory (VmHWM),
// machine load, a test PACS + XNAT stand-in + daemon rig without Catch, the raw DCMTK baseline
// (movescu + storescp) and polling a job's items over the daemon's socket.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "standin.hpp"
#include "support/pacs_fixture.hpp"
#include "support/testdata.hpp"

namespace p2x::bench {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0);

struct Stats {
  std::size_t n = 0;
  double min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
Stats stats_of(std::vector<double> values);  // nearest-rank percentiles
// Times `calls` IPC `status JOB` requests to the daemon at `socket`, in milliseconds.
Stats time_status_calls(const std::string& socket, std::int64_t job, int calls);
double median_of(std::vector<double> values);  // mean of the middle two for even sizes

// "/proc/<pid>/status" field in kB (VmHWM, VmRSS); -1 if unreadable.
long proc_status_kb(pid_t pid, const std::string& field);
std::string load_average();                   // "/proc/loadavg"'s first three figures
void print_header(const std::string& title);  // title, date, load average, cores

// Sum of the files' sizes, and regular files under a directory (recursive).
std::uintmax_t total_bytes(const std::vector<std::string>& files);
std::size_t count_files(const std::string& dir);

// CSV "Accession Number,Subject,Session" for the studies; labels get `suffix` appended so
// one stand-in can take the same studies several times.
std::string accession_csv(const std::vector<test::GeneratedStudy>& studies,
                          const std::string& suffix = "");

// A test PACS with the studies loaded, an XNAT stand-in with project PROJ, and daemons made
// on demand (each in its own directory, so every run starts from an empty store and spool).
class Rig {
 public:
  static constexpr const char* kOurAe = "P2XBENCH";
  static constexpr const char* kRawAe = "RAWSCP";

  Rig(const std::string& dir, test::PacsKind kind, const std::vector<std::string>& files);
  // The same with the ports given and the PACS's move destinations spelled out (e.g. relays in
  // front of our_port and raw_port, as bench_latency puts there); no destinations = straight at
  // our_port and raw_port.
  Rig(const std::string& dir, test::PacsKind kind, const std::vector<std::string>& files,
      std::uint16_t our_port, std::uint16_t raw_port,
      std::vector<test::MoveDestination> dests = {});
  ~Rig();
  const std::string& dir() const { return dir_; }
  test::PacsFixture& pacs() { return *pacs_; }
  test::XnatStandin& xnat() { return *xnat_; }
  std::uint16_t our_port() const { return our_port_; }
  std::uint16_t raw_port() const { return raw_port_; }
  // Runs the PACS stock (no TCP_NODELAY: Nagle on, as shipped) or with TCP_NODELAY=1 (as
  // started), restarting it on the same storage when that changes.
  void use_stock_pacs(bool stock);

  // A daemon configured for this rig (not started). `extra` is merged over the config.
  std::unique_ptr<test::Daemon> make_daemon(const std::string& name, int max_associations,
                                            const json& extra = json::object());

 private:
  std::string dir_;
  std::uint16_t our_port_, raw_port_;
  std::unique_ptr<test::PacsFixture> pacs_;
  std::unique_ptr<test::XnatStandin> xnat_;
};

// `pacs2xnat submit CSV --project PROJ --pacs testpacs --json`; returns the job id. Throws
// with the CLI's stderr on failure.
int submit(const test::Daemon& daemon, const std::string& csv_path,
           const std::string& project = "PROJ");
json items(const test::Daemon& daemon, int job);
json status(const test::Daemon& daemon, int job);

// Polls `items` every poll_ms until every item's state is in `states`; returns the seconds
// since t0. Throws when an item fails or on timeout (with the daemon's log tail).
double wait_items(const test::Daemon& daemon, int job, const std::vector<std::string>& states,
                  Clock::time_point t0, int timeout_s, int poll_ms = 10);
extern const std::vector<std::string> kRetrievedOrLater;

// Raw DCMTK baseline: storescp (fork mode, TCP_NODELAY=1) as AE Rig::kRawAe on the rig's raw
// port writing into a fresh out_dir, and `lanes` concurrent movescu runs working through the
// studies (one C-MOVE per StudyInstanceUID). Returns seconds from the first movescu start
// until the last one ended; throws if any file is missing. When fsync_s is given, afterwards
// (outside the timing) fsyncs every received file and the directory and reports how long that
// took: what the daemon's durability (it fsyncs before recording "retrieved") costs on this disk.
double raw_move(Rig& rig, const std::vector<test::GeneratedStudy>& studies, int lanes,
                const std::string& out_dir, double* fsync_s = nullptr);

// How the raw baseline reaches the PACS: the port it calls (0: the rig's PACS), the C-MOVE
// destination AE (storescp listens on the rig's raw port) or C-GET with getscu (no storescp).
struct RawRoute {
  std::uint16_t pacs_port = 0;
  std::string move_dest = Rig::kRawAe;
  bool get = false;
};
// Study- and series-level retrieve keys for movescu/getscu `-k`.
std::vector<std::string> study_keys(const std::string& study_uid);
std::vector<std::string> series_keys(const std::string& study_uid, const std::string& series_uid);
// Raw DCMTK baseline for any list of requests (each a set of `-k` keys): `lanes` concurrent
// movescu (or getscu) runs work through them. Seconds from the first start until the last one
// ended; throws unless out_dir then holds `expected` files.
double raw_retrieve(Rig& rig, const std::vector<std::vector<std::string>>& requests,
                    std::size_t expected, int lanes, const std::string& out_dir,
                    const RawRoute& route = {});

// Raw DCMTK baseline of an accession-number CSV: storescp as in raw_move, and `lanes`
// concurrent lanes each taking the next study: `findscu` by AccessionNumber (study level, the
// answer extracted to a file) for its StudyInstanceUID, then `movescu` of that study. Seconds
// from the first start until the last lane ended; throws unless out_dir then holds every file.
double raw_find_move(Rig& rig, const std::vector<test::GeneratedStudy>& studies, int lanes,
                     const std::string& out_dir);

// Stored (uncompressed) zip of every file under dir, names relative to dir (Python zipfile).
void make_stored_zip(const std::string& dir, const std::string& zip, const std::string& log);
// curl POST of a ready zip to the stand-in's import service (PROJ, dest=/archive); seconds.
double curl_import(const std::string& url, const std::string& zip, const std::string& subject,
                   const std::string& session, const std::string& log);

// fsync of every regular file under dir, then of dir; returns seconds.
double fsync_tree(const std::string& dir);

}  // namespace p2x::bench

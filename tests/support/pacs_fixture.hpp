// Test PACS launcher: runs Orthanc or dcmqrscp as a child process on a loopback port with its
// own work directory, config and storage, knowing our AE titles as move destinations.
// Started with fork/execve in its own process group; stopped by that PID/group only.
// The server gets SIGKILL when the *thread* that called start() exits (PR_SET_PDEATHSIG), so
// start it from the test's main thread. Not thread-safe. TCP_NODELAY=1 in its environment by
// default (Nagle off, what a tuned PACS does); set_stock(true) starts it as shipped, with Nagle
// on, like a real PACS on stock DCMTK: its C-STOREs then stall on a receiver's delayed ACKs.
// Orthanc: AE P2XORTHANC, always allows echo/store/find/get/move, transcodes on retrieve.
// dcmqrscp: AE P2XQRSCP, fork mode; stores RLE but sends uncompressed only (see testdata.hpp),
// returns no SeriesDescription, ModalitiesInStudy, SOPClassUID (IMAGE level) or
// Number*RelatedInstances in C-FIND, keeps at most 500 studies / 1 GB per study (deletes the
// oldest beyond that). Its association profiles (pacs_fixture.cpp) accept and send a fixed list
// of storage classes (every class of testdata.hpp, the private Siemens CSA Non-Image included).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ports.hpp"

namespace p2x::test {

enum class PacsKind { Orthanc, Dcmqrscp };

// An AE the PACS may send to (C-MOVE destination; also allowed to C-FIND/C-GET).
// Host is always loopback (127.0.0.1 for Orthanc, `localhost` for dcmqrscp).
struct MoveDestination {
  std::string ae_title;
  std::uint16_t port;
};

// "orthanc" / "dcmqrscp"; parse accepts the same (throws std::invalid_argument otherwise).
const char* to_string(PacsKind kind);
PacsKind parse_pacs_kind(const std::string& name);

class PacsFixture {
 public:
  // work_dir is created if needed; it holds config, storage/ and server.log. port 0 = pick a
  // free port now (port() is known before start()). Nothing is started by the constructor.
  PacsFixture(PacsKind kind, const std::string& work_dir, std::vector<MoveDestination> dests,
              std::uint16_t port = 0);
  // Kills the server at once (SIGKILL to its group; the storage stays usable) unless
  // set_detached(true). Use stop() first for a graceful shutdown (Orthanc takes ~2 s).
  ~PacsFixture();
  PacsFixture(const PacsFixture&) = delete;
  PacsFixture& operator=(const PacsFixture&) = delete;

  // Writes the config, starts the server and waits (<= 30 s) until it answers C-ECHO.
  // Throws std::runtime_error with the log tail if it exits or does not answer.
  void start();
  // SIGTERM to the server's process group, wait up to 10 s, then SIGKILL. No-op if not running.
  void stop();
  // SIGKILL to the server's process group at once (also kills dcmqrscp's per-association
  // children, i.e. transfers in progress), then reaps it.
  void kill_hard();
  // stop() (if running) and start() again on the same port with the same storage.
  void restart();
  bool running() const;

  // C-STOREs the files (storescu, only the required presentation contexts, in batches).
  // Files of a SOP class DCMTK does not know as storage (private ones such as Siemens CSA
  // Non-Image), which storescu refuses: C-STOREd with DcmSCU into Orthanc; registered in
  // dcmqrscp's index with dcmqridx (its storage SCP refuses such classes). Throws
  // std::runtime_error with the tool's output tail on any failed store.
  void load(const std::vector<std::string>& files);

  std::uint16_t port() const { return port_; }
  std::string ae_title() const { return ae_title_; }
  PacsKind kind() const { return kind_; }
  std::string work_dir() const { return work_dir_; }
  std::string log_path() const;
  std::string log_tail(std::size_t max_bytes = 4000) const;
  pid_t pid() const { return pid_; }
  // Orthanc's REST port on 127.0.0.1 when enabled (0 otherwise, and for dcmqrscp).
  std::uint16_t http_port() const { return http_port_; }
  // Before start(), Orthanc only: enable its REST API on a free port (off by default).
  void set_http_enabled(bool enabled);

  // Before start() (or restart()): true runs the server without TCP_NODELAY in its
  // environment (stock DCMTK: Nagle on); false (the default) with TCP_NODELAY=1.
  void set_stock(bool stock) { stock_ = stock; }
  bool stock() const { return stock_; }
  // "orthanc" / "orthanc-stock", "dcmqrscp" / "dcmqrscp-stock" (for messages and benches).
  std::string label() const;

  // Before start(): when true the server is not killed with this process (no parent-death
  // signal) and the destructor leaves it running (used by the p2x_pacs_fixture CLI).
  void set_detached(bool detached) { detached_ = detached; }

 private:
  void write_config();
  void load_with_storescu(const std::vector<std::string>& files);
  void store_private(const std::vector<std::string>& files);
  void register_private(const std::vector<std::string>& files);
  void spawn();
  void wait_ready();
  bool reap(int timeout_ms);

  PacsKind kind_;
  std::string work_dir_;
  std::vector<MoveDestination> dests_;
  std::uint16_t port_;
  std::uint16_t http_port_ = 0;
  std::string ae_title_;
  mutable pid_t pid_ = -1;  // -1 once the child is known to be gone (running() reaps)
  bool detached_ = false;
  bool stock_ = false;
};

// Send a C-ECHO with echoscu; true when the peer answered.
bool echo(std::uint16_t port, const std::string& called_ae, int timeout_s = 2);

// Kill a process (group) started elsewhere: SIGTERM, wait up to timeout, then SIGKILL.
// Returns true if the process is gone afterwards.
bool stop_pid(pid_t pid, int timeout_ms = 10000);

}  // namespace p2x::test

// config: loads and validates the daemon's JSON configuration.
//
// Every error names the JSON path of the offending key ("pacs[1].port: expected an integer
// between 1 and 65535, got \"abc\""). Unknown keys are errors too, so a typo never silently
// falls back to a default. Defaults are documented in config/pacs2xnat.example.json.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/values.hpp"

namespace p2x::config {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Network timeouts for DICOM associations, in seconds.
struct Timeouts {
  int connect_s = 10;  // TCP connect
  int acse_s = 30;     // association negotiation / release
  int dimse_s = 60;    // one DIMSE message (find/move/get response)
  int idle_s = 120;  // a retrieval whose sub-operation count does not move for this long is aborted
};

// An availability window: on `days` (0=Sunday .. 6=Saturday), between start and end
// (minutes after local midnight, end exclusive), at most max_associations (0 = closed).
struct Window {
  std::vector<int> days;
  int start_min = 0;
  int end_min = 24 * 60;
  int max_associations = 0;
};

enum class RetrieveMethod { Move, Get };

struct PacsNode {
  std::string name;      // the name used on the command line (--pacs NAME)
  std::string ae_title;  // the PACS's called AE title
  // Calling AE titles it sends its C-STOREs from (C-MOVE): only these may store into one of
  // its retrievals. Default: {ae_title}.
  std::vector<std::string> storing_ae_titles;
  std::string host;
  std::uint16_t port = 104;
  RetrieveMethod retrieve = RetrieveMethod::Move;
  int max_associations = 2;  // concurrent find/move/get associations towards this PACS
  Timeouts timeouts;
  std::vector<Window> windows;                // empty: always open with max_associations
  std::vector<std::string> skip_sop_classes;  // SOP class UIDs neither expected nor retrieved
  // Retrieve one study's series over association slots no other study is using (within
  // max_associations): pays off at network latency (bench_latency). On by default; false
  // keeps every study on one association.
  bool parallel_series = true;
};

using PushMethod = domain::PushMethod;  // xnat.push: "rest" or "cstore"

struct Xnat {
  std::string url;               // e.g. https://xnat.example.org (no trailing /data)
  std::string credentials_file;  // "user:password" or JSON {"user":..,"password":..}; must be 0600
  PushMethod push = PushMethod::Rest;
  bool verify_tls = true;
  std::string ca_file;  // extra CA bundle; empty: system default
  // Where sessions go: nullopt ("project", the default) follows the project's prearchive_code
  // (0: the prearchive, for review; 4/5: the archive); true/false force the prearchive/archive.
  std::optional<bool> prearchive;
  int max_pushes = 2;  // concurrent uploads
  int timeout_s = 60;  // base HTTP timeout; uploads add time per MB
  // C-STORE push (push = cstore)
  std::string dicom_ae;
  std::string dicom_host;
  std::uint16_t dicom_port = 8104;
};

struct Paths {
  std::string state_dir = "/var/lib/pacs2xnat";
  std::string spool_dir;  // default: <state_dir>/spool
  std::string socket = "/run/pacs2xnat/pacs2xnatd.sock";
  // Identifies the running boot: the spool is distrusted after a reboot without a clean stop.
  std::string boot_id_file = "/proc/sys/kernel/random/boot_id";
};

struct Limits {
  int max_attempts = 5;  // per item, retrieval or push
  int backoff_initial_s = 10;
  int backoff_max_s = 900;
  int circuit_failures = 5;  // consecutive connection failures that open a PACS's breaker
  int circuit_probe_s = 30;  // C-ECHO probe interval while open
  std::int64_t max_request_bytes = 64 * 1024 * 1024;  // largest IPC request (CSV upload)
  std::int64_t spool_min_free_mb = 2048;
  std::int64_t spool_max_mb = 0;      // 0 = unlimited
  std::int64_t study_max_mb = 20000;  // studies larger than this are flagged before retrieval
  int drain_timeout_s = 60;           // SIGTERM: time for in-flight work to finish
};

// The web door (lib/web): off until `listen` is set. A non-loopback address needs TLS.
struct Web {
  std::string listen_host;  // "" = no listener
  std::uint16_t listen_port = 0;
  std::string tls_cert, tls_key;    // PEM files; both or neither
  std::vector<std::string> admins;  // XNAT user names that see and act on every job
  int session_idle_minutes = 30;    // a session unused this long is logged out
  int permissions_cache_s = 60;     // how long a user's XNAT project rights are reused
  std::string metrics_token_file;   // bearer token (0600 file) for /metrics off loopback
  int max_connections = 256;        // open HTTP connections at most
  int login_max_failures = 5;       // failed logins per client address ...
  int login_window_s = 300;         // ... within this window, then refused until it passes
  bool enabled() const { return listen_port != 0; }
  bool tls() const { return !tls_cert.empty(); }
};

struct Config {
  std::string ae_title = "PACS2XNAT";  // our AE title (move destination, calling AE)
  std::uint16_t storage_port = 11112;  // our Storage SCP port
  int storage_max_associations = 16;
  // Of those, at most this many from one IP address / one calling AE title. Default: half of
  // storage_max_associations, or more where a PACS that retrieves with C-MOVE may open more
  // (its max_associations or a window's).
  int storage_max_associations_per_address = 8;
  int storage_max_associations_per_ae = 8;
  // While no association slot is free: an association from a PACS being retrieved from waits on
  // probation, and its first C-STORE into a retrieval takes the slot of one that has stored
  // nothing for this long (one second after opening when it never stored).
  int storage_busy_idle_s = 5;
  // Calling AE titles that may associate with our Storage SCP (C-ECHO, C-STORE); others are
  // rejected at A-ASSOCIATE time: the storing_ae_titles of every configured PACS, then those the
  // key lists.
  std::vector<std::string> storage_allowed_calling_aes;
  std::vector<PacsNode> pacs;
  Xnat xnat;
  Paths paths;
  Limits limits;
  Web web;
  std::string log_level = "info";

  const PacsNode* find_pacs(std::string_view name) const;
};

// Parses JSON text. `source` names the input in error messages (usually the file path).
Config parse(std::string_view json_text, std::string_view source = "config");
// Reads and parses a file; errors name the file and the JSON path.
Config load_file(const std::string& path);

}  // namespace p2x::config

// service/daemon: the pacs2xnatd process life cycle, in a fixed order:
// config -> logging -> directories -> store (with crash recovery) -> Storage SCP -> pipeline ->
// IPC socket -> READY=1 -> wait for signals (SIGHUP reloads limits; SIGTERM/SIGINT send
// STOPPING=1) -> drain (socket, pipeline, SCP; the spool marked synced) -> exit 0.
#pragma once

#include <string>

namespace p2x::service {

struct DaemonOptions {
  std::string config_path;
  std::string state_dir;    // overrides paths.state_dir when set
  std::string socket_path;  // overrides paths.socket when set
  bool check_only = false;  // validate the config and exit
};

// Returns the process exit code.
int run_daemon(const DaemonOptions& options);

}  // namespace p2x::service

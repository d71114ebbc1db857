// Child processes for test fixtures: fork/execve with output to a log file, TCP_NODELAY=1 in the
// environment (or, on request, no TCP_NODELAY at all: stock DCMTK with Nagle on), optionally in
// their own process group and killed when the parent dies.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace p2x::test {

struct SpawnOptions {
  std::string log_path;           // stdout+stderr appended here ("" = /dev/null)
  bool own_process_group = true;  // setpgid(0, 0): kill(-pid) reaches the server's children
  bool die_with_parent = true;    // PR_SET_PDEATHSIG(SIGKILL)
  // true: TCP_NODELAY=1 in the child's environment (DCMTK then turns Nagle off); false: no
  // TCP_NODELAY variable at all, whatever ours says (a DCMTK peer as shipped, Nagle on).
  bool tcp_nodelay = true;
};

// argv[0] must be an absolute path or a name found in PATH. Throws std::runtime_error.
pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

// Runs argv to completion (or kills it after timeout_ms); returns the exit code, or -1 on a
// signal/timeout. Output goes to options.log_path.
int run(const std::vector<std::string>& argv, const SpawnOptions& options, int timeout_ms);

// Last max_bytes of a file ("" if unreadable).
std::string file_tail(const std::string& path, std::size_t max_bytes);

}  // namespace p2x::test

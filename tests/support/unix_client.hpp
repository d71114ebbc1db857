// A raw client of a Unix stream socket for tests that must send what ipc::call never would
// (partial lines, floods, silence): connect, send everything, read one answer line.
#pragma once

#include <chrono>
#include <string>

namespace p2x::test {

// A client socket connected to `path`; -1 when connect fails (or, non-blocking, would wait for
// room in the listen backlog).
int connect_unix(const std::string& path, bool non_blocking = false);

// Sends all of `bytes` (no SIGPIPE); false when the peer stops taking them.
bool send_all(int fd, const std::string& bytes);

// The first line read from fd, without its '\n'; "" on EOF or after `timeout` without one.
std::string read_line(int fd, std::chrono::milliseconds timeout);

}  // namespace p2x::test

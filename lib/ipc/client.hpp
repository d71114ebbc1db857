// ipc/client: one request/response exchange with the daemon over its Unix socket.
#pragma once

#include <stdexcept>
#include <string>

#include "ipc/protocol.hpp"

namespace p2x::ipc {

// The daemon is not running or the socket is not reachable (CLI exit code 3).
struct Unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Sends {"cmd","args"} and returns the whole response object ({"ok":..}). Throws Unreachable
// when the socket cannot be reached or the daemon hangs up, std::runtime_error on a garbled reply.
json call(const std::string& socket_path, std::string_view cmd, const json& args,
          int timeout_s = 120);

}  // namespace p2x::ipc

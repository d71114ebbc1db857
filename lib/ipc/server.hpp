// ipc/server: the daemon's Unix-socket endpoint (JSON lines, see protocol.hpp).
//
// Binds `path` with mode 0660, replacing a stale socket file left by a dead daemon but refusing
// to start when another daemon still answers on it (or when the path is not a socket).
// Each connection may send several requests; each gets exactly one response line. The peer's
// uid/gid/pid (SO_PEERCRED) reach the handler. A handler's exception becomes an error response;
// malformed or oversized requests get an error, never a crash.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/types.h>

#include "ipc/protocol.hpp"

namespace p2x::ipc {

struct Peer {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
};

using Handler = std::function<json(const json& args, const Peer& peer)>;

// Command name -> handler. Unknown commands answer unknown_command; exceptions become errors.
class Dispatcher {
 public:
  void add(const std::string& cmd, Handler handler);
  json dispatch(std::string_view line, const Peer& peer) const;

 private:
  std::map<std::string, Handler, std::less<>> handlers_;
};

class Server {
 public:
  // Throws std::runtime_error with an actionable message if the socket cannot be bound.
  Server(std::string path, const Dispatcher& dispatcher, std::size_t max_request_bytes,
         int threads = 2);
  ~Server();  // stops and removes the socket file
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void stop();
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2x::ipc

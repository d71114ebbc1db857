// ipc/server: the daemon's Unix-socket endpoint (JSON lines, see protocol.hpp).
//
// Binds `path` with mode 0660, replacing a stale socket file left by a dead daemon but refusing
// to start when another daemon still answers on it (or when the path is not a socket).
// Each connection may send several requests; each gets exactly one response line. The peer's
// uid/gid/pid (SO_PEERCRED) reach the handler. A handler's exception becomes an error response;
// malformed, oversized or too deeply nested requests get an error, never a crash.
//
// What a hostile or broken local client cannot do:
// - stall the commands that only read the store behind those that wait on the PACS or XNAT:
//   each command runs on the pool of its Lane (Local: the store only; Remote: may wait on a peer);
// - hold a connection without sending a complete request (or without reading its answer) for
//   longer than idle_timeout;
// - exhaust the daemon's file descriptors: at most max_connections are open; beyond that, and
//   when accept() fails for want of descriptors, the connection idle the longest is closed to
//   make room, else the newcomer is told the daemon is busy; accept errors back off
//   (100 ms doubling to 1 s) and are logged at most once a minute.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/types.h>
#include <variant>

#include "ipc/protocol.hpp"

namespace p2x::ipc {

struct Peer {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  // The XNAT user a request comes from through the web door (lib/web); "" on the socket.
  std::string web_user;
};

using Handler = std::function<json(const json& args, const Peer& peer)>;

// Which worker pool runs a command: Local ones answer from the daemon's own state and must
// never wait behind Remote ones, which may wait on the PACS or XNAT for minutes.
enum class Lane { Local, Remote };

// A request line that parsed: its command, arguments and lane.
struct Request {
  std::string cmd;
  json args;
  Lane lane = Lane::Remote;
};

// Command name -> handler. Unknown commands answer unknown_command; exceptions become errors.
class Dispatcher {
 public:
  // A command whose lane is not given may wait on a peer (Lane::Remote).
  void add(const std::string& cmd, Handler handler, Lane lane = Lane::Remote);
  // The request on one line, or the error answer when the line is not a usable request (not
  // JSON, numbers out of range, nested deeper than kMaxNesting, no "cmd", unknown command).
  std::variant<Request, json> parse(std::string_view line) const;
  // Runs a parsed request; every exception becomes an error answer.
  json run(const Request& request, const Peer& peer) const;
  // parse() then run().
  json dispatch(std::string_view line, const Peer& peer) const;

 private:
  struct Entry {
    Handler handler;
    Lane lane;
  };
  std::map<std::string, Entry, std::less<>> handlers_;
};

struct ServerOptions {
  std::size_t max_request_bytes = 64 * 1024 * 1024;  // limits.max_request_bytes
  int local_threads = 2;                             // pool for Lane::Local commands
  int remote_threads = 4;                            // pool for Lane::Remote commands
  std::size_t max_connections = 64;                  // open client connections at most
  // A connection that sends no complete request within this time (from its start or from its
  // previous answer), or does not take its answer within it, is closed.
  std::chrono::milliseconds idle_timeout{30000};
  // After a request over max_request_bytes, up to this much more of it is read and dropped
  // (so the client, still writing, gets the answer) before the connection is closed.
  std::size_t max_discard_bytes = std::size_t{1} << 30;
};

class Server {
 public:
  // Throws std::runtime_error with an actionable message if the socket cannot be bound.
  Server(std::string path, const Dispatcher& dispatcher, ServerOptions options);
  Server(std::string path, const Dispatcher& dispatcher, std::size_t max_request_bytes);
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

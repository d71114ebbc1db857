// web: the daemon's HTTP(S) door (Boost.Beast), off until web.listen is configured.
//
// One listener on its own I/O thread; each request is read under deadlines, with bounded
// header and body sizes, then answered by a plain function (App::handle) on a worker pool, so
// nothing waits on XNAT or the PACS on the I/O thread. Reads never run in the pool's threads and
// handlers never touch sockets. What a hostile or broken client cannot do:
// - send headers over 16 KiB (431), a body over the route's limit (413, read no further: the
//   CSV routes allow limits.max_request_bytes as base64 plus a little, the others 64 KiB);
// - trickle a request: its headers must arrive within 15 s and its body at 64 KiB/s at least
//   (plus 30 s), or the connection is closed; an answer not taken within 30 s is dropped;
// - hold more than web.max_connections connections: beyond that the connection idle the
//   longest (waiting for a request) is closed to make room, else the newcomer gets a 503.
// Every answer, the listener's own errors included, carries the security headers
// (http.hpp: add_security_headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "web/http.hpp"

namespace p2x::web {

struct ListenerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;         // 0: any free port (tests), see Listener::port()
  std::string tls_cert, tls_key;  // PEM files; empty: plain HTTP
  std::size_t max_connections = 256;
  std::size_t max_upload_bytes = 64 * 1024 * 1024;  // CSV routes (before base64)
  int worker_threads = 4;                           // handlers (they may wait on XNAT or the PACS)
};

using Handler = std::function<Response(const Request&)>;

class Listener {
 public:
  // Binds and starts serving at once. Throws std::runtime_error naming the address, or the
  // certificate/key file, when it cannot.
  Listener(ListenerOptions options, Handler handler);
  ~Listener();  // stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  std::uint16_t port() const;
  // Stops accepting, closes every connection and joins the threads (answers in progress in the
  // workers are finished first, their writes dropped).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The largest request body a route accepts: the CSV routes (POST /api/check, /api/dry-run,
// /api/submit) carry the CSV as base64 in JSON; every other request is small.
std::size_t body_limit_for(const std::string& method, const std::string& target,
                           std::size_t max_upload_bytes);

}  // namespace p2x::web

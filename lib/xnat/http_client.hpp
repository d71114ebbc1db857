// xnat/http_client: one HTTP/1.1 connection (plain TCP or TLS) over Boost.Beast, used
// synchronously by one thread at a time. Every operation (resolve, connect, TLS handshake,
// write, read) runs under its own deadline. TLS verifies the peer certificate and the host name
// (SNI is sent) unless verification is switched off. Failures throw XnatError: Transient for
// network trouble and timeouts, Tls for an untrusted certificate or a TLS protocol mismatch.
// A large body is streamed from a BodySource with its Content-Length known up front: Beast
// writes the header, then the body goes to the socket in large writes straight from the
// source's buffer. Every connection has TCP_NODELAY and re-arms TCP_QUICKACK after each read
// (lib/net/prompt_ack.hpp), so a server that writes headers and body apart with Nagle on never
// waits for our delayed ACK. Beast types stay in the .cpp file.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "xnat/requests.hpp"

namespace p2x::xnat::detail {

// A request body produced on the fly, of a size known before the headers go out. An exception
// from read() aborts the request: the connection is closed before the body is complete, so the
// server never sees a whole request.
class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual std::uint64_t size() const = 0;
  virtual void restart() = 0;  // called before each send (a request may be sent twice)
  // Up to cap bytes into buf (fewer only at the end); 0 at the end.
  virtual std::size_t read(char* buf, std::size_t cap) = 0;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", "DELETE"
  std::string target;  // path + query, prefix included
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                   // used when body_source is null
  BodySource* body_source = nullptr;  // stream the body from here (not owned)
  std::string content_type;
  std::chrono::seconds write_timeout{60};  // for the whole request, body included
  std::chrono::seconds read_timeout{60};
};

// Shared, immutable TLS configuration (an SSL_CTX) for all connections of a Client.
class TlsContext {
 public:
  TlsContext(bool verify, const std::string& ca_file);  // throws XnatError Tls on a bad CA file
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class Connection {
 public:
  // Resolves, connects and (for https) handshakes within timeout each. tls may be null for http.
  Connection(const Url& url, TlsContext* tls, std::chrono::seconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Response perform(const HttpRequest& req);
  // False after an error or when the server asked to close.
  bool reusable() const;
  // True when the last perform() failed because the peer closed the connection before any byte
  // of an answer arrived (typical of a keep-alive connection the server had already dropped).
  bool dropped_before_answer() const;

  // What the connection's socket is set to, for diagnostics and tests: TCP_NODELAY (read back
  // from the socket), and how many times TCP_QUICKACK was armed on it (at connect and after
  // each read that got data; 0 while net::prompt_ack_enabled() is false).
  struct SocketState {
    bool no_delay = false;
    std::uint64_t quick_ack_rearms = 0;
  };
  SocketState socket_state() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2x::xnat::detail

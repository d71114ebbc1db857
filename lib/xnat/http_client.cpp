// xnat/http_client: one Beast HTTP(S) connection with a deadline on every operation.
//
// Each Connection owns its own io_context and runs it on the calling thread for the duration of
// one operation: the async operation is started, the stream's timer (expires_after) bounds it,
// and io_context::run_for() is a second, outer bound (the resolver has no timer of its own).
// Every connection has TCP_NODELAY and acknowledges what it reads at once (lib/net/prompt_ack):
// an XNAT whose replies come as headers and body in two writes with Nagle on would otherwise
// wait for our delayed ACK (~40 ms) before sending each body.
#include "xnat/http_client.hpp"

#include "net/prompt_ack.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <algorithm>
#include <limits>
#include <optional>
#include <vector>

namespace p2x::xnat::detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;

struct TlsContext::Impl {
  ssl::context ctx{ssl::context::tls_client};
  bool verify = true;
};

TlsContext::TlsContext(bool verify, const std::string& ca_file) : impl_(std::make_unique<Impl>()) {
  impl_->verify = verify;
  auto& ctx = impl_->ctx;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (!verify) {
    ctx.set_verify_mode(ssl::verify_none);
    return;
  }
  error_code ec;
  if (!ca_file.empty())
    ctx.load_verify_file(ca_file, ec);
  else
    ctx.set_default_verify_paths(ec);
  if (ec)
    throw XnatError(ErrorKind::Tls, 0,
                    "cannot load the CA certificates" +
                        (ca_file.empty() ? std::string(" of the system") : " from " + ca_file) +
                        ": " + ec.message());
  ctx.set_verify_mode(ssl::verify_peer);
}

TlsContext::~TlsContext() = default;

namespace {

constexpr std::uint64_t kBodyLimit = 256ull << 20;  // listings of very large projects
constexpr std::uint32_t kHeaderLimit = 64u << 10;
// Body bytes per socket write when streaming: large enough that syscalls and io_context rounds
// cost nothing next to the copy, small enough to keep memory flat.
constexpr std::size_t kStreamChunk = 1u << 20;

// Beast calls a stream's rate policy after every read with the bytes it got
// (transfer_read_bytes): the one hook after each read of a tcp_stream, also under TLS. This
// policy limits nothing; it re-arms TCP_QUICKACK on the socket after each read that got data.
class PromptAckPolicy {
 public:
  void attach(int fd, bool enabled) {
    fd_ = fd;
    enabled_ = enabled;
    if (enabled_) rearm();
  }
  std::uint64_t rearms() const { return rearms_; }

 private:
  friend class beast::rate_policy_access;
  static constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
  std::size_t available_read_bytes() const noexcept { return kAll; }
  std::size_t available_write_bytes() const noexcept { return kAll; }
  void transfer_read_bytes(std::size_t n) {
    if (n > 0 && enabled_) rearm();
  }
  void transfer_write_bytes(std::size_t) noexcept {}
  void on_timer() noexcept {}
  void rearm() {
    p2x::net::quick_ack(fd_);
    ++rearms_;
  }

  int fd_ = -1;
  bool enabled_ = false;
  std::uint64_t rearms_ = 0;
};

using TcpStream = beast::basic_stream<tcp, net::any_io_executor, PromptAckPolicy>;

bool is_ip_literal(const std::string& host) {
  error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

bool is_drop(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == ssl::error::stream_truncated;
}

}  // namespace

struct Connection::Impl {
  Url url;
  TlsContext* tls = nullptr;
  std::chrono::seconds timeout;
  net::io_context ioc{1};
  std::optional<TcpStream> plain;
  std::optional<beast::ssl_stream<TcpStream>> secure;
  beast::flat_buffer buffer;
  std::vector<char> chunk;  // streamed body bytes in flight
  bool ok = false;
  bool host_mismatch = false;  // set by the verify callback
  bool stale = false;          // last failure: connection dropped before any answer

  std::string where() const { return url.host_header(); }

  TcpStream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  template <class F>
  decltype(auto) with_stream(F&& f) {
    if (secure) return f(*secure);
    return f(*plain);
  }

  void close() noexcept {
    ok = false;
    if (plain || secure) {
      error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest().socket().close(ignored);
    }
  }

  // Starts an operation through start(handler) and runs the io_context until it completes or
  // limit (+ slack) passes; then cancel() is called and the operation drained.
  template <class Start, class Cancel>
  error_code run(std::chrono::seconds limit, Start&& start, Cancel&& cancel) {
    error_code result;
    bool done = false;
    start([&result, &done](error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc.restart();
    ioc.run_for(limit + std::chrono::seconds(2));
    if (!done) {
      cancel();
      ioc.restart();
      ioc.run();
      result = beast::error::timeout;
    }
    return result;
  }

  template <class Start>
  error_code run_io(std::chrono::seconds limit, Start&& start) {
    lowest().expires_after(limit);
    return run(limit, std::forward<Start>(start), [this] { close(); });
  }

  [[noreturn]] void fail(const std::string& what, const error_code& ec,
                         std::chrono::seconds limit) {
    close();
    if (ec == beast::error::timeout || ec == net::error::timed_out)
      throw XnatError(ErrorKind::Transient, 0,
                      "XNAT at " + where() + ": " + what + " timed out after " +
                          std::to_string(limit.count()) + " s");
    throw XnatError(ErrorKind::Transient, 0,
                    "XNAT at " + where() + ": " + what + " failed: " + ec.message());
  }

  void open() {
    tcp::resolver resolver(ioc);
    tcp::resolver::results_type endpoints;
    error_code ec = run(
        timeout,
        [&](auto handler) {
          resolver.async_resolve(
              url.host, url.port,
              [&endpoints, handler](error_code e, tcp::resolver::results_type r) mutable {
                endpoints = std::move(r);
                handler(e);
              });
        },
        [&] { resolver.cancel(); });
    if (ec) fail("resolving the host name", ec, timeout);

    if (url.tls)
      secure.emplace(ioc, tls->impl().ctx);
    else
      plain.emplace(ioc);
    ec = run_io(timeout, [&](auto handler) { lowest().async_connect(endpoints, handler); });
    if (ec) fail("connecting", ec, timeout);
    error_code ignored;
    lowest().socket().set_option(tcp::no_delay(true), ignored);
    lowest().rate_policy().attach(lowest().socket().native_handle(),
                                  p2x::net::prompt_ack_enabled());

    if (url.tls) {
      SSL* native = secure->native_handle();
      if (!is_ip_literal(url.host)) SSL_set_tlsext_host_name(native, url.host.c_str());
      host_mismatch = false;
      if (tls->impl().verify)
        secure->set_verify_callback([this, check = ssl::host_name_verification(url.host)](
                                        bool preverified, ssl::verify_context& ctx) mutable {
          if (!preverified) return false;
          bool ok = check(preverified, ctx);
          if (!ok) host_mismatch = true;
          return ok;
        });
      ec = run_io(timeout, [&](auto handler) {
        secure->async_handshake(ssl::stream_base::client, handler);
      });
      if (ec) {
        long vr = SSL_get_verify_result(native);
        close();
        if (host_mismatch)
          throw XnatError(ErrorKind::Tls, 0,
                          "XNAT at " + where() +
                              ": the TLS certificate is not valid for host name " + url.host +
                              " (use a host name the certificate lists in xnat.url)");
        if (tls->impl().verify && vr != X509_V_OK)
          throw XnatError(ErrorKind::Tls, 0,
                          "XNAT at " + where() + ": TLS certificate not trusted: " +
                              X509_verify_cert_error_string(vr) +
                              " (set xnat.ca_file to the CA that signed it)");
        if (ec.category() == net::error::get_ssl_category())
          throw XnatError(ErrorKind::Tls, 0,
                          "XNAT at " + where() + ": TLS handshake failed: " + ec.message() +
                              " (check the certificate's host names and xnat.ca_file, or that the"
                              " server speaks https)");
        fail("TLS handshake", ec, timeout);
      }
    }
    ok = true;
  }

  template <class Message>
  void prepare(Message& m, const HttpRequest& req) {
    m.version(11);
    m.method(http::string_to_verb(req.method));
    m.target(req.target);
    m.set(http::field::host, url.host_header());
    for (const auto& [k, v] : req.headers) m.set(k, v);
    if (!req.content_type.empty()) m.set(http::field::content_type, req.content_type);
    m.keep_alive(true);
  }

  // Reads one answer into out; returns the error (if any) and whether any byte arrived.
  error_code try_read(std::chrono::seconds limit, Response& out, bool& got_some) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    parser.header_limit(kHeaderLimit);
    error_code ec = run_io(limit, [&](auto handler) {
      with_stream([&](auto& s) { http::async_read(s, buffer, parser, handler); });
    });
    got_some = parser.got_some();
    if (ec) return ec;
    auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.reason = std::string(res.reason());
    out.content_type = std::string(res[http::field::content_type]);
    out.location = std::string(res[http::field::location]);
    for (const auto& f : res.base())
      if (beast::iequals(f.name_string(), "Set-Cookie")) out.set_cookies.emplace_back(f.value());
    out.body = std::move(res.body());
    ok = res.keep_alive();
    return ec;
  }

  // Header first (Content-Length set by the caller), then the body in large writes straight
  // from the source's buffer, all within one deadline. An exception from the source closes the
  // connection (the server sees an incomplete body) and propagates.
  error_code send_streamed(http::request<http::empty_body>& m, BodySource& src,
                           std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    auto left = [&deadline] {
      auto d = std::chrono::ceil<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
      return std::max(d, std::chrono::seconds(1));
    };
    http::request_serializer<http::empty_body> sr{m};
    error_code ec = run_io(left(), [&](auto handler) {
      with_stream([&](auto& s) { http::async_write_header(s, sr, handler); });
    });
    if (ec) return ec;
    if (chunk.empty()) chunk.resize(kStreamChunk);
    std::uint64_t sent = 0;
    try {
      src.restart();
      for (std::size_t n; (n = src.read(chunk.data(), chunk.size())) > 0; sent += n) {
        if (sent + n > src.size()) throw std::logic_error("request body longer than announced");
        ec = run_io(left(), [&](auto handler) {
          with_stream([&](auto& s) { net::async_write(s, net::buffer(chunk.data(), n), handler); });
        });
        if (ec) return ec;
      }
      if (sent != src.size()) throw std::logic_error("request body shorter than announced");
    } catch (...) {
      close();
      throw;
    }
    return ec;
  }

  // Sends through send() (which returns the write's error), then reads the answer.
  template <class Send>
  Response exchange(Send&& send, const HttpRequest& req) {
    Response r;
    bool got_some = false;
    error_code ec = send();
    if (ec) {
      stale = is_drop(ec);
      // The server may have answered early (e.g. 401 or 413) and closed: try to read it.
      if (stale && !try_read(std::chrono::seconds(5), r, got_some)) {
        stale = false;
        close();
        return r;
      }
      fail("sending the request", ec, req.write_timeout);
    }
    ec = try_read(req.read_timeout, r, got_some);
    if (ec) {
      stale = is_drop(ec) && !got_some;
      fail(got_some ? "reading the answer" : "waiting for the answer", ec, req.read_timeout);
    }
    if (!ok) close();
    return r;
  }
};

Connection::Connection(const Url& url, TlsContext* tls, std::chrono::seconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->url = url;
  impl_->tls = tls;
  impl_->timeout = timeout;
  if (url.tls && !tls) throw std::logic_error("https connection without a TLS context");
  impl_->open();
}

Connection::~Connection() {
  impl_->close();
}

bool Connection::reusable() const {
  return impl_->ok;
}

bool Connection::dropped_before_answer() const {
  return impl_->stale;
}

Connection::SocketState Connection::socket_state() const {
  SocketState st;
  if (!impl_->plain && !impl_->secure) return st;
  auto& s = impl_->lowest();
  const int fd = s.socket().native_handle();
  int v = 0;
  socklen_t len = sizeof v;
  st.no_delay = fd >= 0 && ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v != 0;
  st.quick_ack_rearms = s.rate_policy().rearms();
  return st;
}

Response Connection::perform(const HttpRequest& req) {
  if (!impl_->ok)
    throw XnatError(ErrorKind::Transient, 0, "XNAT at " + impl_->where() + ": connection closed");
  impl_->ok = false;  // set again by a complete keep-alive exchange
  impl_->stale = false;
  if (req.body_source) {
    http::request<http::empty_body> m;
    impl_->prepare(m, req);
    m.content_length(req.body_source->size());
    return impl_->exchange(
        [&] { return impl_->send_streamed(m, *req.body_source, req.write_timeout); }, req);
  }
  http::request<http::string_body> m;
  impl_->prepare(m, req);
  m.body() = req.body;
  m.prepare_payload();
  return impl_->exchange(
      [&] {
        return impl_->run_io(req.write_timeout, [&](auto handler) {
          impl_->with_stream([&](auto& s) { http::async_write(s, m, handler); });
        });
      },
      req);
}

}  // namespace p2x::xnat::detail

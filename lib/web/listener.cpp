// web/listener: the Beast HTTP(S) listener (see web.hpp for its limits). Shape of Beast 1.81's
// async server example: one session object per connection on its own strand, handlers bound
// with bind_front_handler, a deadline before every operation, one fail path.
#include "web/web.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace p2x::web {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
constexpr std::size_t kSmallBody = 64 * 1024;
constexpr std::size_t kMinBytesPerSecond = 64 * 1024;
constexpr std::size_t kDrainLimit = 16 * 1024 * 1024;  // unread body read and dropped after a 413
constexpr auto kHeaderTimeout = 15s;
constexpr auto kBodyBaseTimeout = 30s;
constexpr auto kWriteTimeout = 30s;
constexpr auto kHandshakeTimeout = 10s;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool is_loopback(const net::ip::address& a) {
  if (a.is_loopback()) return true;
  return a.is_v6() && a.to_v6().is_v4_mapped() &&  // ::ffff:127.0.0.1
         net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).is_loopback();
}

// What every connection can close when the listener needs room or stops.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual std::int64_t idle_since() const = 0;  // 0 while a request is being read or answered
  virtual void close() = 0;                     // from any thread
};

// Open connections, for the connection limit and stop().
class Registry {
 public:
  std::uint64_t add(std::weak_ptr<Connection> c) {
    std::lock_guard lock(mu_);
    conns_[++next_] = std::move(c);
    return next_;
  }
  void remove(std::uint64_t id) {
    std::lock_guard lock(mu_);
    conns_.erase(id);
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return conns_.size();
  }
  // Closes the connection idle the longest; false when every one is busy.
  bool evict_idle() {
    std::shared_ptr<Connection> oldest;
    std::int64_t since = 0;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, weak] : conns_) {
        auto c = weak.lock();
        const std::int64_t t = c ? c->idle_since() : 0;
        if (c && t != 0 && (since == 0 || t < since)) {
          since = t;
          oldest = std::move(c);
        }
      }
    }
    if (!oldest) return false;
    oldest->close();
    return true;
  }
  void close_all() {
    std::vector<std::shared_ptr<Connection>> all;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, weak] : conns_) {
        if (auto c = weak.lock()) all.push_back(std::move(c));
      }
    }
    for (auto& c : all) c->close();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::weak_ptr<Connection>> conns_;
  std::uint64_t next_ = 0;
};

// What the sessions share with the listener.
struct Shared {
  ListenerOptions options;
  Handler handler;
  Registry registry;
  net::thread_pool fast{2};  // GET: pages, JSON, assets, metrics
  net::thread_pool slow;     // POST: login, check, dry run, submit, controls (XNAT, PACS)
  bool tls = false;

  Shared(ListenerOptions o, Handler h)
      : options(std::move(o)),
        handler(std::move(h)),
        slow(static_cast<std::size_t>(std::max(1, options.worker_threads))),
        tls(!options.tls_cert.empty()) {}
};

}  // namespace

std::size_t body_limit_for(const std::string& method, const std::string& target,
                           std::size_t max_upload_bytes) {
  if (method != "POST") return kSmallBody;
  const std::string path = target.substr(0, target.find('?'));
  if (path == "/api/check" || path == "/api/dry-run" || path == "/api/submit") {
    return (max_upload_bytes + 2) / 3 * 4 + kSmallBody;  // base64 plus the other arguments
  }
  return kSmallBody;
}

namespace {

// One connection: read a request, hand it to the pool, write the answer, repeat. `Derived`
// provides stream() (plain TCP or TLS) and shutdown().
template <class Derived>
class Session : public Connection {
 public:
  Session(Shared& shared, std::string peer, bool loopback)
      : shared_(shared), peer_(std::move(peer)), loopback_(loopback) {}
  ~Session() override { shared_.registry.remove(id_); }

  void registered(std::uint64_t id) { id_ = id; }
  std::int64_t idle_since() const override { return idle_since_.load(); }

  void close() override {
    idle_since_ = 0;  // closing: never chosen to make room again
    net::post(lowest().get_executor(), [self = derived().shared_from_this()] {
      error_code ignored;
      self->lowest().socket().close(ignored);
    });
  }

  // Answers 503 at once (the listener is full and no connection is idle).
  void refuse_busy() { send(text_response(503, "too many connections; try again shortly"), true); }

 protected:
  Derived& derived() { return static_cast<Derived&>(*this); }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(derived().stream()); }

  void do_read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    // The route's limit is set once the header is in (on_header); until then Beast must not
    // refuse a declared Content-Length by itself, so the client gets our 413.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    idle_since_ = steady_ns();
    lowest().expires_after(kHeaderTimeout);
    http::async_read_header(
        derived().stream(), buffer_, *parser_,
        beast::bind_front_handler(&Session::on_header, derived().shared_from_this()));
  }

 private:
  void on_header(error_code ec, std::size_t) {
    idle_since_ = 0;
    if (ec == http::error::header_limit) {
      return send(text_response(431, "request headers too large (16 KiB at most)"), true);
    }
    if (ec) return fail(ec);
    const auto& req = parser_->get();
    const std::size_t limit =
        body_limit_for(std::string(req.method_string()), std::string(req.target()),
                       shared_.options.max_upload_bytes);
    const auto length = parser_->content_length();
    if (length && *length > limit) return too_large(limit);
    parser_->body_limit(limit);
    body_limit_ = limit;
    if (parser_->is_done()) return on_read({}, 0);
    const std::size_t expected = length ? static_cast<std::size_t>(*length) : limit;
    lowest().expires_after(kBodyBaseTimeout + std::chrono::seconds(expected / kMinBytesPerSecond));
    http::async_read(derived().stream(), buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, derived().shared_from_this()));
  }

  void too_large(std::size_t limit) {
    draining_ = true;
    send(text_response(413, "request body too large (" + std::to_string(limit / 1024) +
                                " KiB at most here; the CSV limit is limits.max_request_bytes)"),
         true);
  }

  void on_read(error_code ec, std::size_t) {
    if (ec == http::error::body_limit) return too_large(body_limit_);
    if (ec) return fail(ec);
    auto req = parser_->release();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    Request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    r.body = std::move(req.body());
    r.peer = peer_;
    r.loopback = loopback_;
    r.tls = shared_.tls;
    auto& pool = r.method == "POST" ? shared_.slow : shared_.fast;
    net::post(pool, [self = derived().shared_from_this(), r = std::move(r)]() mutable {
      Response answer;
      try {
        answer = self->shared_.handler(r);
      } catch (const std::exception& e) {
        spdlog::error("web: {} failed: {}", r.method, e.what());
        answer = text_response(500, "internal error");
      }
      r = Request{};  // the body may be large: free it in the worker
      net::post(self->lowest().get_executor(), [self, answer = std::move(answer)]() mutable {
        self->send(std::move(answer), !self->keep_alive_);
      });
    });
  }

  void send(Response r, bool close) {
    add_security_headers(r, shared_.tls);
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    res->set(http::field::server, "pacs2xnat");
    res->set(http::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res->insert(k, v);
    const std::size_t size = r.body.size();
    res->body() = head_ ? std::string() : std::move(r.body);
    res->keep_alive(!close);
    res->content_length(size);
    close_after_ = close;
    lowest().expires_after(kWriteTimeout);
    http::async_write(derived().stream(), *res,
                      [self = derived().shared_from_this(), res](error_code ec, std::size_t) {
                        self->on_write(ec);
                      });
  }

  void on_write(error_code ec) {
    if (ec) return fail(ec);
    if (!close_after_) return do_read();
    if (draining_) return drain();
    derived().shutdown();
  }

  // After a 413 the client may still be sending: read and drop some of it (bounded in bytes and
  // time) so it sees the answer instead of a reset.
  void drain() {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.consume(buffer_.size());
    if (drained_ >= kDrainLimit) return fail({});
    lowest().expires_after(5s);
    lowest().async_read_some(drain_buffer_.prepare(64 * 1024),
                             [self = derived().shared_from_this()](error_code e, std::size_t n) {
                               self->drain_buffer_.consume(self->drain_buffer_.size());
                               self->drained_ += n;
                               if (e) return self->fail({});
                               self->drain();
                             });
  }

  void fail(error_code) {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }

  Shared& shared_;
  std::string peer_;
  bool loopback_ = false;
  std::uint64_t id_ = 0;
  std::atomic<std::int64_t> idle_since_{0};
  beast::flat_buffer buffer_{kHeaderLimit + 1024};
  beast::flat_buffer drain_buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true, head_ = false, close_after_ = false, draining_ = false;
  std::size_t drained_ = 0, body_limit_ = kSmallBody;
};

class PlainSession : public Session<PlainSession>,
                     public std::enable_shared_from_this<PlainSession> {
 public:
  PlainSession(tcp::socket&& socket, Shared& shared, std::string peer, bool loopback)
      : Session(shared, std::move(peer), loopback), stream_(std::move(socket)) {}
  beast::tcp_stream& stream() { return stream_; }
  void start() { do_read(); }
  void shutdown() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

 private:
  beast::tcp_stream stream_;
};

class TlsSession : public Session<TlsSession>, public std::enable_shared_from_this<TlsSession> {
 public:
  TlsSession(tcp::socket&& socket, ssl::context& ctx, Shared& shared, std::string peer,
             bool loopback)
      : Session(shared, std::move(peer), loopback), stream_(std::move(socket), ctx) {}
  beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }
  void start() {
    beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
    stream_.async_handshake(ssl::stream_base::server, [self = shared_from_this()](error_code ec) {
      if (ec) return self->close();
      self->do_read();
    });
  }
  void shutdown() {
    beast::get_lowest_layer(stream_).expires_after(5s);
    stream_.async_shutdown([self = shared_from_this()](error_code) { self->close(); });
  }

 private:
  beast::ssl_stream<beast::tcp_stream> stream_;
};

}  // namespace

struct Listener::Impl {
  Shared shared;
  std::optional<ssl::context> tls;
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  std::atomic<bool> stopped{false};

  Impl(ListenerOptions o, Handler h) : shared(std::move(o), std::move(h)) {}

  void load_tls() {
    tls.emplace(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    error_code ec;
    tls->use_certificate_chain_file(shared.options.tls_cert, ec);
    if (ec) {
      throw std::runtime_error("web.tls_cert " + shared.options.tls_cert + ": " + ec.message());
    }
    tls->use_private_key_file(shared.options.tls_key, ssl::context::pem, ec);
    if (ec) throw std::runtime_error("web.tls_key " + shared.options.tls_key + ": " + ec.message());
  }

  void bind() {
    error_code ec;
    const auto address = net::ip::make_address(
        shared.options.host == "localhost" ? "127.0.0.1" : shared.options.host, ec);
    if (ec) throw std::runtime_error("web.listen: bad address " + shared.options.host);
    const tcp::endpoint ep(address, shared.options.port);
    const std::string where = shared.options.host + ":" + std::to_string(shared.options.port);
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("web.listen: cannot listen on " + where + ": " + ec.message());
  }

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
      if (stopped) return;
      if (!ec)
        start_session(std::move(socket));
      else
        spdlog::warn("web: accept failed: {}", ec.message());
      if (ec == net::error::no_descriptors) {  // back off a little; the listener stays up
        auto timer = std::make_shared<net::steady_timer>(ioc, 100ms);
        return timer->async_wait([this, timer](error_code) { accept(); });
      }
      accept();
    });
  }

  template <class S>
  void launch(std::shared_ptr<S> s, bool full) {
    s->registered(shared.registry.add(s));
    if (full) return s->refuse_busy();
    s->start();
  }

  void start_session(tcp::socket socket) {
    error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (ec) return;
    bool full =
        shared.registry.size() >= shared.options.max_connections && !shared.registry.evict_idle();
    const std::string peer = remote.address().to_string();
    const bool loopback = is_loopback(remote.address());
    socket.set_option(tcp::no_delay(true), ec);
    if (tls) {
      auto s = std::make_shared<TlsSession>(std::move(socket), *tls, shared, peer, loopback);
      if (full) return s->close();  // no TLS handshake for a connection turned away
      launch(std::move(s), false);
    } else {
      launch(std::make_shared<PlainSession>(std::move(socket), shared, peer, loopback), full);
    }
  }
};

Listener::Listener(ListenerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {
  if (impl_->shared.tls) impl_->load_tls();
  impl_->bind();
  impl_->accept();
  impl_->thread = std::thread([this] {
    try {
      impl_->ioc.run();
    } catch (const std::exception& e) {
      spdlog::critical("web: listener stopped: {}", e.what());
    }
  });
}

Listener::~Listener() {
  stop();
}

std::uint16_t Listener::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void Listener::stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->ioc, [this] {
    error_code ignored;
    impl_->acceptor.close(ignored);
  });
  impl_->shared.registry.close_all();
  impl_->shared.fast.join();
  impl_->shared.slow.join();
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace p2x::web

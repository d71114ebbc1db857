#include "ipc/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

namespace p2x::ipc {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

// ---------------------------------------------------------------------------------------------
void Dispatcher::add(const std::string& cmd, Handler handler) {
  handlers_[cmd] = std::move(handler);
}

json Dispatcher::dispatch(std::string_view line, const Peer& peer) const {
  json request;
  try {
    request = json::parse(line);
  } catch (const json::parse_error& e) {
    return make_error(code::bad_request, std::string("request is not valid JSON: ") + e.what());
  }
  if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string()) {
    return make_error(code::bad_request, "request must be a JSON object with a string \"cmd\"");
  }
  const std::string cmd = request["cmd"].get<std::string>();
  json args = request.value("args", json::object());
  if (!args.is_object()) return make_error(code::bad_request, "\"args\" must be a JSON object");
  auto it = handlers_.find(cmd);
  if (it == handlers_.end()) {
    return make_error(code::unknown_command,
                      "unknown command \"" + cmd + "\" (is the CLI newer than the daemon?)");
  }
  try {
    return make_ok(it->second(args, peer));
  } catch (const CommandError& e) {
    return make_error(e.code(), e.what());
  } catch (const json::exception& e) {
    return make_error(code::bad_request, std::string("bad arguments for ") + cmd + ": " + e.what());
  } catch (const std::exception& e) {
    spdlog::error("command {} failed: {}", cmd, e.what());
    return make_error(code::internal, std::string(cmd) + " failed: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
namespace {

Peer peer_of(int fd) {
  Peer p;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    p.uid = cred.uid;
    p.gid = cred.gid;
    p.pid = cred.pid;
  }
  return p;
}

// One connection: read lines, run each request on the worker pool, write responses in order.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(local::socket socket, const Dispatcher& dispatcher, asio::thread_pool& workers,
          std::size_t max_bytes)
      : socket_(std::move(socket)),
        dispatcher_(dispatcher),
        workers_(workers),
        lines_(max_bytes),
        peer_(peer_of(socket_.native_handle())) {}

  void start() { read(); }

 private:
  void read() {
    socket_.async_read_some(
        asio::buffer(chunk_), [self = shared_from_this()](boost::system::error_code ec,
                                                          std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (ec) return;  // peer closed or server stopping
    lines_.feed(std::string_view(chunk_.data(), n));
    if (lines_.overflowed()) {
      respond(make_error(code::too_large, "request larger than the daemon's limit "
                                          "(limits.max_request_bytes); split the CSV"),
              true);
      return;
    }
    if (auto line = lines_.next()) {
      handle(std::move(*line));
      return;  // the next read starts after the response is written
    }
    read();
  }

  void handle(std::string line) {
    auto self = shared_from_this();
    asio::post(workers_, [self, line = std::move(line)] {
      json response = self->dispatcher_.dispatch(line, self->peer_);
      asio::post(self->socket_.get_executor(),
                 [self, response = std::move(response)] { self->respond(response, false); });
    });
  }

  void respond(const json& response, bool close_after) {
    out_ = response.dump(-1, ' ', false, json::error_handler_t::replace);
    out_.push_back('\n');
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), close_after](boost::system::error_code ec,
                                                               std::size_t) {
                        if (ec || close_after) {
                          boost::system::error_code ignored;
                          self->socket_.shutdown(local::socket::shutdown_both, ignored);
                          self->socket_.close(ignored);
                          return;
                        }
                        if (auto next = self->lines_.next()) {
                          self->handle(std::move(*next));
                        } else {
                          self->read();
                        }
                      });
  }

  local::socket socket_;
  const Dispatcher& dispatcher_;
  asio::thread_pool& workers_;
  LineBuffer lines_;
  Peer peer_;
  std::array<char, 64 * 1024> chunk_{};
  std::string out_;
};

// Refuses to take over a live daemon's socket or a non-socket file; removes a stale one.
void clear_stale_socket(const std::string& path) {
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (!S_ISSOCK(st.st_mode)) {
    throw std::runtime_error("socket path " + path +
                             " exists and is not a socket; refusing to replace it");
  }
  asio::io_context probe_ctx;
  local::socket probe(probe_ctx);
  boost::system::error_code ec;
  probe.connect(local::endpoint(path), ec);
  if (!ec) {
    throw std::runtime_error("another pacs2xnatd is already listening on " + path +
                             "; stop it first (systemctl stop pacs2xnatd)");
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw std::runtime_error("cannot remove stale socket " + path + ": " + std::strerror(errno));
  }
  spdlog::info("removed stale socket {}", path);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct Server::Impl {
  Impl(const Dispatcher& d, std::size_t max_bytes, int threads)
      : dispatcher(d), workers(static_cast<std::size_t>(threads)), max_bytes(max_bytes) {}

  void accept() {
    acceptor->async_accept([this](boost::system::error_code ec, local::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (!ec) {
        std::make_shared<Session>(std::move(socket), dispatcher, workers, max_bytes)->start();
      } else {
        spdlog::warn("ipc accept failed: {}", ec.message());
      }
      accept();
    });
  }

  const Dispatcher& dispatcher;
  asio::io_context io;
  asio::thread_pool workers;
  std::size_t max_bytes;
  std::unique_ptr<local::acceptor> acceptor;
  std::thread thread;
  bool stopped = false;
};

Server::Server(std::string path, const Dispatcher& dispatcher, std::size_t max_request_bytes,
               int threads)
    : path_(std::move(path)), impl_(std::make_unique<Impl>(dispatcher, max_request_bytes, threads)) {
  clear_stale_socket(path_);
  // Bind with a restrictive umask so the socket never exists with wider permissions.
  mode_t old_mask = umask(0117);
  try {
    impl_->acceptor = std::make_unique<local::acceptor>(impl_->io);
    impl_->acceptor->open(local());
    impl_->acceptor->bind(local::endpoint(path_));
    impl_->acceptor->listen(64);
  } catch (const boost::system::system_error& e) {
    umask(old_mask);
    throw std::runtime_error("cannot listen on socket " + path_ + ": " + e.code().message());
  }
  umask(old_mask);
  if (chmod(path_.c_str(), 0660) != 0) {
    throw std::runtime_error("cannot set mode 0660 on " + path_ + ": " + std::strerror(errno));
  }
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void Server::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  asio::post(impl_->io, [this] {
    boost::system::error_code ignored;
    impl_->acceptor->close(ignored);
  });
  impl_->workers.join();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  unlink(path_.c_str());
}

Server::~Server() {
  try {
    stop();
  } catch (...) {
  }
}

}  // namespace p2x::ipc

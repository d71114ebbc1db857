// ipc/server: the daemon's Unix-socket endpoint (see server.hpp).
//
// One io thread owns the acceptor and every connection (Session); requests run on two worker
// pools (Lane::Local, Lane::Remote) and their answers come back to the io thread to be written.
// The registry of open sessions, the connection cap, eviction and the accept backoff live on
// the io thread only, so they need no locks.
#include "ipc/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <thread>

#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include "text/text.hpp"

namespace p2x::ipc {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

namespace {

// Request lines longer than this are parsed on the Remote pool (a CSV upload of many MB takes
// a while to parse and must not hold up the Local pool); shorter ones on the Local pool.
constexpr std::size_t kLocalParseBytes = 64 * 1024;
constexpr std::size_t kMaxMessageEcho = 300;  // bytes of a parser message quoted back

// A message cut to `max` bytes (parser messages quote the text they stopped at).
std::string clip(std::string text, std::size_t max = kMaxMessageEcho) {
  if (text.size() > max) {
    text.resize(max);
    text += "...";
  }
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
void Dispatcher::add(const std::string& cmd, Handler handler, Lane lane) {
  handlers_[cmd] = Entry{std::move(handler), lane};
}

std::variant<Request, json> Dispatcher::parse(std::string_view line) const {
  if (text::json_nesting_depth(line, kMaxNesting) > kMaxNesting) {
    return make_error(code::bad_request, "request nested deeper than " +
                                             std::to_string(kMaxNesting) +
                                             " levels of objects and arrays");
  }
  json request;
  try {
    request = json::parse(line);
  } catch (const json::parse_error& e) {
    return make_error(code::bad_request, "request is not valid JSON: " + clip(e.what()));
  } catch (const json::exception& e) {  // e.g. out_of_range.406: a number like 1e400
    return make_error(code::bad_request, "request cannot be read: " + clip(e.what()));
  }
  if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string()) {
    return make_error(code::bad_request, "request must be a JSON object with a string \"cmd\"");
  }
  Request r;
  r.cmd = request["cmd"].get<std::string>();
  r.args = request.contains("args") ? std::move(request["args"]) : json::object();
  if (!r.args.is_object()) return make_error(code::bad_request, "\"args\" must be a JSON object");
  auto it = handlers_.find(r.cmd);
  if (it == handlers_.end()) {
    return make_error(code::unknown_command, "unknown command \"" + clip(r.cmd, 64) +
                                                 "\" (is the CLI newer than the daemon?)");
  }
  r.lane = it->second.lane;
  return r;
}

json Dispatcher::run(const Request& r, const Peer& peer) const {
  auto it = handlers_.find(r.cmd);
  if (it == handlers_.end()) {
    return make_error(code::unknown_command, "unknown command \"" + clip(r.cmd, 64) + "\"");
  }
  try {
    return make_ok(it->second.handler(r.args, peer));
  } catch (const CommandError& e) {
    return make_error(e.code(), e.what());
  } catch (const json::exception& e) {
    return make_error(code::bad_request, "bad arguments for " + r.cmd + ": " + clip(e.what()));
  } catch (const std::exception& e) {
    spdlog::error("command {} failed: {}", r.cmd, e.what());
    return make_error(code::internal, r.cmd + " failed: " + clip(e.what()));
  } catch (...) {
    spdlog::error("command {} failed with an unknown exception", r.cmd);
    return make_error(code::internal, r.cmd + " failed");
  }
}

json Dispatcher::dispatch(std::string_view line, const Peer& peer) const {
  auto parsed = parse(line);
  if (auto* error = std::get_if<json>(&parsed)) return std::move(*error);
  return run(std::get<Request>(parsed), peer);
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

std::string answer_line(const json& answer) {
  std::string line = answer.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

// Writes one short answer line without waiting (a fresh socket buffer takes it) and closes:
// for connections closed at once to free their descriptor.
void answer_and_close(local::socket& socket, const json& answer) {
  boost::system::error_code ignored;
  const std::string line = answer_line(answer);
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(line), ignored);
  socket.shutdown(local::socket::shutdown_both, ignored);
  socket.close(ignored);
}

bool out_of_descriptors(const boost::system::error_code& ec) {
  return ec == asio::error::no_descriptors || ec.value() == ENFILE ||
         ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
}

// A warning that may repeat in a tight loop, logged at most once per interval; the next line
// says how many were left out.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::seconds interval) : interval_(interval) {}
  void warn(const std::string& message) {
    const auto now = Clock::now();
    if (logged_ && now - last_ < interval_) {
      ++left_out_;
      return;
    }
    if (left_out_ > 0) {
      spdlog::warn("{} ({} more since the last such message)", message, left_out_);
    } else {
      spdlog::warn("{}", message);
    }
    logged_ = true;
    last_ = now;
    left_out_ = 0;
  }

 private:
  std::chrono::seconds interval_;
  Clock::time_point last_{};
  bool logged_ = false;
  std::uint64_t left_out_ = 0;
};

class Session;

// The listening socket, the open sessions and the worker pools.
class Endpoint {
 public:
  Endpoint(const Dispatcher& dispatcher, ServerOptions options);
  void listen(const std::string& path);
  void start();
  void stop();

  // Used by sessions (on the io thread unless said otherwise).
  void forget(Session* session) { sessions_.erase(session); }
  const Dispatcher& dispatcher() const { return dispatcher_; }  // any thread
  const ServerOptions& options() const { return options_; }     // any thread
  asio::thread_pool& pool(Lane lane) { return lane == Lane::Local ? local_pool_ : remote_pool_; }

 private:
  void accept();
  void on_accept(const boost::system::error_code& ec, local::socket socket);
  void admit(local::socket socket);
  bool evict_idlest();
  void back_off(const boost::system::error_code& ec);
  void close_all();

  const Dispatcher& dispatcher_;
  const ServerOptions options_;
  asio::io_context io_;  // first: destroyed after everything that holds its sockets
  asio::thread_pool local_pool_, remote_pool_;
  std::unique_ptr<local::acceptor> acceptor_;
  asio::steady_timer retry_timer_{io_};
  std::chrono::milliseconds backoff_{0};
  RateLimitedLog accept_log_{std::chrono::seconds(60)}, crowd_log_{std::chrono::seconds(60)};
  std::map<Session*, std::shared_ptr<Session>> sessions_;
  std::thread thread_;
  bool stopped_ = false;
};

// One connection: read a request line, run it on a worker pool, write the answer, repeat.
// phase_ says where it is; only Waiting connections may be evicted.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(local::socket socket, Endpoint& endpoint)
      : socket_(std::move(socket)),
        endpoint_(endpoint),
        deadline_(socket_.get_executor()),
        lines_(endpoint.options().max_request_bytes),
        peer_(peer_of(socket_.native_handle())) {}

  void start() { wait_for_request(); }
  bool idle() const { return phase_ == Phase::Waiting; }
  Clock::time_point last_activity() const { return last_activity_; }

  // Closes at once, telling the peer why: frees the descriptor now. Only while idle().
  void close_now(const json& answer) {
    if (phase_ == Phase::Closed) return;
    answer_and_close(socket_, answer);
    close();
  }

  void close() {
    if (phase_ == Phase::Closed) return;
    phase_ = Phase::Closed;
    auto keep = shared_from_this();  // the registry may hold the last reference
    disarm_deadline();
    boost::system::error_code ignored;
    socket_.shutdown(local::socket::shutdown_both, ignored);
    socket_.close(ignored);
    endpoint_.forget(this);
  }

 private:
  enum class Phase { Waiting, Working, Writing, Draining, Closed };

  void wait_for_request() {
    phase_ = Phase::Waiting;
    arm_deadline();
    if (auto line = lines_.next()) return handle(std::move(*line));
    if (lines_.overflowed()) return on_overflow();
    read();
  }

  void read() {
    if (reading_) return;
    reading_ = true;
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](boost::system::error_code ec,
                                                        std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    reading_ = false;
    if (phase_ == Phase::Closed) return;
    if (ec) {  // peer closed, or the server is stopping
      if (phase_ == Phase::Draining) return end_drain();
      return close();
    }
    last_activity_ = Clock::now();
    lines_.feed(std::string_view(chunk_.data(), n));
    if (phase_ == Phase::Draining) {
      if (lines_.overflow_ended() || lines_.dropped() > endpoint_.options().max_discard_bytes) {
        return end_drain();
      }
      return read();
    }
    if (lines_.overflowed()) return on_overflow();
    if (auto line = lines_.next()) return handle(std::move(*line));
    if (lines_.overflowed()) return on_overflow();
    read();
  }

  // A request over the limit: answered at once, then read and dropped up to its end (bounded)
  // so a client still writing it gets the answer instead of a broken pipe, then closed.
  void on_overflow() {
    phase_ = Phase::Draining;
    const std::size_t limit = lines_.max_line();
    write(make_error(code::too_large,
                     "request larger than the daemon's limit of " + std::to_string(limit) +
                         " bytes (limits.max_request_bytes in its configuration); a CSV travels "
                         "base64-encoded, so it may have at most about " +
                         std::to_string(limit / 4 * 3) +
                         " bytes: split the CSV or raise the limit"));
    if (lines_.overflow_ended()) return end_drain();
    read();
  }

  void end_drain() {
    drained_ = true;
    if (!writing_) close();
  }

  // Runs the request on a worker pool: short lines are parsed on the Local pool and moved to
  // the Remote pool when their command may wait on a peer; long lines go to the Remote pool.
  void handle(std::string line) {
    phase_ = Phase::Working;
    disarm_deadline();
    const Lane parse_lane = line.size() <= kLocalParseBytes ? Lane::Local : Lane::Remote;
    asio::post(endpoint_.pool(parse_lane), [self = shared_from_this(), line = std::move(line),
                                            parse_lane] { self->parse_and_run(line, parse_lane); });
  }

  // On a pool thread: touches only the dispatcher, peer_ (fixed) and the socket's executor.
  void parse_and_run(const std::string& line, Lane on_lane) {
    try {
      auto parsed = endpoint_.dispatcher().parse(line);
      if (auto* error = std::get_if<json>(&parsed)) return deliver(std::move(*error));
      auto& request = std::get<Request>(parsed);
      if (request.lane == Lane::Remote && on_lane == Lane::Local) {
        asio::post(
            endpoint_.pool(request.lane),
            [self = shared_from_this(), request = std::move(request)] { self->run(request); });
        return;
      }
      run(request);
    } catch (const std::exception& e) {
      spdlog::error("ipc request failed: {}", e.what());
      deliver_or_log(make_error(code::internal, "request failed: " + clip(e.what())));
    } catch (...) {
      spdlog::error("ipc request failed with an unknown exception");
      deliver_or_log(make_error(code::internal, "request failed"));
    }
  }

  void run(const Request& request) {
    try {
      deliver(endpoint_.dispatcher().run(request, peer_));
    } catch (const std::exception& e) {  // e.g. out of memory building the answer
      deliver_or_log(make_error(code::internal, request.cmd + " failed: " + clip(e.what())));
    } catch (...) {
      deliver_or_log(make_error(code::internal, request.cmd + " failed"));
    }
  }

  void deliver(json answer) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), answer = std::move(answer)] {
      if (self->phase_ == Phase::Working) self->write(answer);
    });
  }

  void deliver_or_log(json answer) noexcept {
    try {
      deliver(std::move(answer));
    } catch (...) {
      spdlog::error("ipc: an answer could not be delivered");
    }
  }

  void write(const json& answer) {
    if (phase_ == Phase::Working) {
      phase_ = Phase::Writing;
      arm_deadline();  // the peer must take its answer in time
    }
    out_ = answer_line(answer);
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->on_written(ec);
                      });
  }

  void on_written(boost::system::error_code ec) {
    writing_ = false;
    if (phase_ == Phase::Closed) return;
    if (ec) return close();
    last_activity_ = Clock::now();
    if (phase_ == Phase::Draining) {
      if (drained_) close();
      return;
    }
    wait_for_request();
  }

  void arm_deadline() {
    const std::uint64_t generation = ++deadline_generation_;
    deadline_.expires_after(endpoint_.options().idle_timeout);
    deadline_.async_wait([self = shared_from_this(), generation](boost::system::error_code ec) {
      if (!ec && generation == self->deadline_generation_) self->on_deadline();
    });
  }

  void disarm_deadline() {
    ++deadline_generation_;
    deadline_.cancel();
  }

  void on_deadline() {
    if (phase_ != Phase::Waiting) return close();  // answer not taken, or an endless request
    const auto ms = endpoint_.options().idle_timeout.count();
    const std::string within =
        ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
    close_now(make_error(code::timed_out, "closed: no complete request within " + within));
  }

  local::socket socket_;
  Endpoint& endpoint_;
  asio::steady_timer deadline_;
  std::uint64_t deadline_generation_ = 0;
  LineBuffer lines_;
  const Peer peer_;
  Phase phase_ = Phase::Waiting;
  bool reading_ = false, writing_ = false, drained_ = false;
  Clock::time_point last_activity_ = Clock::now();
  std::array<char, 64 * 1024> chunk_{};
  std::string out_;
};

// Refuses to take over a live daemon's socket or a non-socket file; removes a stale one.
void clear_stale_socket(const std::string& path) {
  struct stat st {};
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

// ---------------------------------------------------------------------------------------------
Endpoint::Endpoint(const Dispatcher& dispatcher, ServerOptions options)
    : dispatcher_(dispatcher),
      options_(options),
      local_pool_(static_cast<std::size_t>(std::max(1, options.local_threads))),
      remote_pool_(static_cast<std::size_t>(std::max(1, options.remote_threads))) {}

void Endpoint::listen(const std::string& path) {
  clear_stale_socket(path);
  // Bind with a restrictive umask so the socket never exists with wider permissions.
  mode_t old_mask = umask(0117);
  try {
    acceptor_ = std::make_unique<local::acceptor>(io_);
    acceptor_->open(local());
    acceptor_->bind(local::endpoint(path));
    acceptor_->listen(64);
  } catch (const boost::system::system_error& e) {
    umask(old_mask);
    throw std::runtime_error("cannot listen on socket " + path + ": " + e.code().message());
  }
  umask(old_mask);
  if (chmod(path.c_str(), 0660) != 0) {
    throw std::runtime_error("cannot set mode 0660 on " + path + ": " + std::strerror(errno));
  }
}

void Endpoint::start() {
  accept();
  thread_ = std::thread([this] {
    for (;;) {  // a handler's exception is logged; the socket keeps being served
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("ipc: {}", e.what());
      } catch (...) {
        spdlog::error("ipc: unknown exception");
      }
    }
  });
}

void Endpoint::accept() {
  acceptor_->async_accept([this](boost::system::error_code ec, local::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void Endpoint::on_accept(const boost::system::error_code& ec, local::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
  if (!ec) {
    backoff_ = std::chrono::milliseconds(0);
    admit(std::move(socket));
    return accept();
  }
  // Out of descriptors: an idle connection gives its own up for the one waiting.
  if (out_of_descriptors(ec) && evict_idlest()) return accept();
  back_off(ec);
}

void Endpoint::back_off(const boost::system::error_code& ec) {
  backoff_ =
      std::clamp(backoff_ * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
  accept_log_.warn("ipc accept failed: " + ec.message() + " (" + std::to_string(sessions_.size()) +
                   " connections open); retrying in " + std::to_string(backoff_.count()) + " ms");
  retry_timer_.expires_after(backoff_);
  retry_timer_.async_wait([this](boost::system::error_code e) {
    if (!e && acceptor_->is_open()) accept();
  });
}

void Endpoint::admit(local::socket socket) {
  if (sessions_.size() >= options_.max_connections && !evict_idlest()) {
    crowd_log_.warn("ipc: " + std::to_string(sessions_.size()) +
                    " connections busy; a new one was refused");
    answer_and_close(socket, make_error(code::busy, "pacs2xnatd is busy with " +
                                                        std::to_string(sessions_.size()) +
                                                        " connections; try again shortly"));
    return;
  }
  auto session = std::make_shared<Session>(std::move(socket), *this);
  sessions_.emplace(session.get(), session);
  session->start();
}

// Closes the connection that has waited the longest without a request; false if none waits.
bool Endpoint::evict_idlest() {
  Session* idlest = nullptr;
  for (const auto& [raw, session] : sessions_) {
    if (session->idle() && (!idlest || session->last_activity() < idlest->last_activity())) {
      idlest = raw;
    }
  }
  if (!idlest) return false;
  crowd_log_.warn("ipc: " + std::to_string(sessions_.size()) +
                  " connections open; closing the one idle the longest to make room");
  idlest->close_now(make_error(code::busy,
                               "closed: pacs2xnatd has too many connections open "
                               "and this one sent no request"));
  return true;
}

void Endpoint::close_all() {
  boost::system::error_code ignored;
  acceptor_->close(ignored);
  retry_timer_.cancel();
  auto open = sessions_;  // close() edits sessions_
  for (auto& [raw, session] : open) session->close();
}

void Endpoint::stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::post(io_, [this] { close_all(); });
  local_pool_.join();
  remote_pool_.join();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct Server::Impl {
  Impl(const Dispatcher& dispatcher, ServerOptions options) : endpoint(dispatcher, options) {}
  Endpoint endpoint;
  bool stopped = false;
};

Server::Server(std::string path, const Dispatcher& dispatcher, ServerOptions options)
    : path_(std::move(path)), impl_(std::make_unique<Impl>(dispatcher, options)) {
  impl_->endpoint.listen(path_);
  impl_->endpoint.start();
}

Server::Server(std::string path, const Dispatcher& dispatcher, std::size_t max_request_bytes)
    : Server(std::move(path), dispatcher, ServerOptions{max_request_bytes}) {}

void Server::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->endpoint.stop();
  unlink(path_.c_str());
}

Server::~Server() {
  try {
    stop();
  } catch (...) {
  }
}

}  // namespace p2x::ipc

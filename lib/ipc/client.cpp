// ipc/client: one request/response exchange with the daemon (see client.hpp).
#include "ipc/client.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <boost/asio.hpp>

namespace p2x::ipc {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

namespace {

// The exchange's state: the answer is read while the request is still being written, so an
// early answer (a request over the daemon's size limit) is seen even if the daemon hangs up
// before taking the whole request.
struct Exchange {
  explicit Exchange(asio::io_context& io) : socket(io) {}
  local::socket socket;
  std::string in;
  std::array<char, 64 * 1024> chunk{};
  bool answered = false;
  boost::system::error_code read_ec, write_ec;
  bool timed_out = false;
};

void read_answer(Exchange& x, asio::steady_timer& deadline) {
  x.socket.async_read_some(asio::buffer(x.chunk),
                           [&x, &deadline](boost::system::error_code e, std::size_t n) {
                             if (e) {
                               x.read_ec = e;
                               deadline.cancel();
                               return;
                             }
                             x.in.append(x.chunk.data(), n);
                             if (x.in.find('\n') != std::string::npos) {
                               x.answered = true;
                               deadline.cancel();
                               boost::system::error_code ignored;
                               x.socket.close(ignored);  // stops a write still in progress
                               return;
                             }
                             read_answer(x, deadline);
                           });
}

// Connects before `until`. A daemon whose listen queue is full (it is not accepting) answers
// a non-blocking connect with EAGAIN: retried until `until`, never a connect that hangs.
void connect_until(local::socket& socket, const std::string& socket_path,
                   std::chrono::steady_clock::time_point until, int timeout_s) {
  const local::endpoint endpoint(socket_path);
  boost::system::error_code ec;
  socket.open(local(), ec);
  if (!ec) socket.non_blocking(true, ec);
  if (ec) throw Unreachable("cannot open a socket for " + socket_path + " (" + ec.message() + ")");
  for (;;) {
    if (::connect(socket.native_handle(), endpoint.data(), endpoint.size()) == 0) return;
    const int error = errno;
    if (error != EAGAIN && error != EINTR) {
      throw Unreachable("cannot reach pacs2xnatd at " + socket_path + " (" + std::strerror(error) +
                        ")");
    }
    if (std::chrono::steady_clock::now() >= until) {
      throw Unreachable("pacs2xnatd at " + socket_path + " took no connection within " +
                        std::to_string(timeout_s) + " s (its queue is full)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

json call(const std::string& socket_path, std::string_view cmd, const json& args, int timeout_s) {
  std::string out = make_request(cmd, args).dump(-1, ' ', false, json::error_handler_t::replace);
  out.push_back('\n');

  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  asio::io_context io;
  Exchange x(io);
  connect_until(x.socket, socket_path, until, timeout_s);
  // Write and read at once, with one deadline for the whole exchange.
  asio::steady_timer deadline(io, until);
  deadline.async_wait([&x](boost::system::error_code e) {
    if (!e) {
      x.timed_out = true;
      boost::system::error_code ignored;
      x.socket.close(ignored);
    }
  });
  asio::async_write(x.socket, asio::buffer(out),
                    [&x](boost::system::error_code e, std::size_t) { x.write_ec = e; });
  read_answer(x, deadline);
  io.run();
  if (!x.answered) {
    if (x.timed_out) {
      throw Unreachable("pacs2xnatd at " + socket_path + " did not answer within " +
                        std::to_string(timeout_s) + " s");
    }
    const auto& why =
        x.write_ec && x.write_ec != asio::error::operation_aborted ? x.write_ec : x.read_ec;
    throw Unreachable("pacs2xnatd at " + socket_path + " closed the connection (" + why.message() +
                      ")");
  }
  x.in.resize(x.in.find('\n'));
  json response = json::parse(x.in, nullptr, false);
  if (response.is_discarded() || !response.is_object() || !response.contains("ok")) {
    throw std::runtime_error("garbled response from pacs2xnatd: " + x.in.substr(0, 200));
  }
  return response;
}

}  // namespace p2x::ipc

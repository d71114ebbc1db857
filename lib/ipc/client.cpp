#include "ipc/client.hpp"

#include <array>
#include <chrono>
#include <functional>

#include <boost/asio.hpp>

namespace p2x::ipc {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

json call(const std::string& socket_path, std::string_view cmd, const json& args, int timeout_s) {
  asio::io_context io;
  local::socket socket(io);
  boost::system::error_code ec;
  socket.connect(local::endpoint(socket_path), ec);
  if (ec) {
    throw Unreachable("cannot reach pacs2xnatd at " + socket_path + " (" + ec.message() + ")");
  }
  std::string out = make_request(cmd, args).dump(-1, ' ', false, json::error_handler_t::replace);
  out.push_back('\n');

  // Write and read with one deadline for the whole exchange.
  std::string in;
  std::array<char, 64 * 1024> chunk{};
  bool done = false;
  boost::system::error_code io_ec;
  asio::steady_timer deadline(io, std::chrono::seconds(timeout_s));
  deadline.async_wait([&](boost::system::error_code e) {
    if (!e) {
      io_ec = asio::error::timed_out;
      socket.close();
    }
  });
  std::function<void()> read_more = [&] {
    socket.async_read_some(asio::buffer(chunk), [&](boost::system::error_code e, std::size_t n) {
      if (e) {
        if (!io_ec) io_ec = e;
        deadline.cancel();
        return;
      }
      in.append(chunk.data(), n);
      if (in.find('\n') != std::string::npos) {
        done = true;
        deadline.cancel();
        return;
      }
      read_more();
    });
  };
  asio::async_write(socket, asio::buffer(out), [&](boost::system::error_code e, std::size_t) {
    if (e) {
      io_ec = e;
      // The daemon may have answered (a request over its size limit) before closing: read it.
      if (e == asio::error::broken_pipe || e == asio::error::connection_reset) {
        read_more();
        return;
      }
      deadline.cancel();
      return;
    }
    read_more();
  });
  io.run();
  if (!done) {
    if (io_ec == asio::error::timed_out) {
      throw Unreachable("pacs2xnatd at " + socket_path + " did not answer within " +
                        std::to_string(timeout_s) + " s");
    }
    throw Unreachable("pacs2xnatd at " + socket_path + " closed the connection (" +
                      io_ec.message() + ")");
  }
  in.resize(in.find('\n'));
  json response = json::parse(in, nullptr, false);
  if (response.is_discarded() || !response.is_object() || !response.contains("ok")) {
    throw std::runtime_error("garbled response from pacs2xnatd: " + in.substr(0, 200));
  }
  return response;
}

}  // namespace p2x::ipc

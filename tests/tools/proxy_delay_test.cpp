// CountingProxy's per-direction delay (tests/support/counting_proxy.hpp), over plain TCP on
// loopback: what it adds per round trip without and with a delay, and that a delayed stream
// keeps its throughput and its bytes (order, half-close).
#include <catch2/catch.hpp>

#include <boost/asio.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <thread>
#include <vector>

#include "support/counting_proxy.hpp"

using p2x::test::CountingProxy;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::microseconds;

namespace {

using Clock = std::chrono::steady_clock;

// A one-connection loopback server on its own thread. Echo mode: writes back what it reads.
// Sink mode: reads until EOF, then answers with the byte sum (8 bytes) and closes.
class Server {
 public:
  explicit Server(bool echo) : acceptor_(ioc_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    thread_ = std::thread([this, echo] {
      tcp::socket s = acceptor_.accept();
      s.set_option(tcp::no_delay(true));
      std::vector<char> buf(64 * 1024);
      std::uint64_t sum = 0;
      boost::system::error_code ec;
      for (;;) {
        const std::size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) break;
        if (echo) {
          asio::write(s, asio::buffer(buf.data(), n), ec);
          if (ec) break;
        } else {
          for (std::size_t i = 0; i < n; ++i) sum += static_cast<unsigned char>(buf[i]);
        }
      }
      if (!echo) asio::write(s, asio::buffer(&sum, sizeof sum), ec);
    });
  }
  ~Server() { thread_.join(); }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

tcp::socket connect_to(asio::io_context& ioc, std::uint16_t port) {
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  s.set_option(tcp::no_delay(true));
  return s;
}

// Median round trip (ms) of `n` 100-byte ping-pongs on one connection to `port`.
double median_rtt_ms(std::uint16_t port, int n) {
  asio::io_context ioc;
  tcp::socket s = connect_to(ioc, port);
  std::array<char, 100> msg{};
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    asio::write(s, asio::buffer(msg));
    asio::read(s, asio::buffer(msg));
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

TEST_CASE("proxy without delay adds little per round trip", "[proxy]") {
  Server direct_server(true), proxied_server(true);
  CountingProxy proxy(proxied_server.port());
  const double direct = median_rtt_ms(direct_server.port(), 300);
  const double proxied = median_rtt_ms(proxy.port(), 300);
  INFO("median RTT direct " << direct << " ms, through the proxy " << proxied << " ms");
  CHECK(proxied - direct < 0.5);
}

TEST_CASE("proxy delay adds both one-way delays to each round trip", "[proxy]") {
  Server server(true);
  CountingProxy proxy(server.port());
  proxy.set_delay(microseconds(1500), microseconds(500));
  const double rtt = median_rtt_ms(proxy.port(), 100);
  INFO("median RTT with 1.5 ms up + 0.5 ms down: " << rtt << " ms");
  CHECK(rtt >= 2.0);
  CHECK(rtt < 4.0);
}

TEST_CASE("a delayed stream keeps its throughput, order and half-close", "[proxy]") {
  Server sink(false);
  CountingProxy proxy(sink.port());
  // 10 ms each way: a proxy that slept per 64 KiB read would need >= 10 s for 64 MiB.
  proxy.set_delay(microseconds(10000), microseconds(10000));
  asio::io_context ioc;
  tcp::socket s = connect_to(ioc, proxy.port());
  std::vector<char> block(1 << 20);
  std::iota(block.begin(), block.end(), '\0');
  std::uint64_t sum = 0;
  for (char c : block) sum += static_cast<unsigned char>(c);
  const int blocks = 64;
  const auto t0 = Clock::now();
  for (int i = 0; i < blocks; ++i) asio::write(s, asio::buffer(block));
  s.shutdown(tcp::socket::shutdown_send);  // the sink answers only after EOF
  std::uint64_t got = 0;
  asio::read(s, asio::buffer(&got, sizeof got));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  INFO("64 MiB through 10 ms each way in " << secs << " s");
  CHECK(got == sum * blocks);
  CHECK(secs >= 0.02);
  CHECK(secs < 4.0);
  CHECK(proxy.total_connections() == 1);
}

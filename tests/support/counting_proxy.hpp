// Loopback TCP proxy that forwards every connection to 127.0.0.1:<target_port> and counts
// connections (current, maximum concurrent, total), so a test can assert that a client never
// opens more than N associations to a PACS at once; can hold back the PACS's answers, and can
// delay each direction by a fixed one-way latency (a network without netem: 0.5 ms each way is a
// 1 ms round trip). The delay is a timestamped queue per direction, so it adds latency without
// capping throughput. TCP_NODELAY on both of its sockets. Runs its own Asio thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace p2x::test {

class CountingProxy {
 public:
  explicit CountingProxy(std::uint16_t target_port);
  ~CountingProxy();  // closes all connections and joins the thread
  CountingProxy(const CountingProxy&) = delete;
  CountingProxy& operator=(const CountingProxy&) = delete;

  std::uint16_t port() const;  // where to connect (127.0.0.1)
  // Closes every open connection (both sides see the network drop); keeps accepting.
  void drop_all();
  int max_concurrent() const;
  int total_connections() const;
  int current() const;
  // Forget the maximum (set it to the current count) and the total.
  void reset_counts();
  // Wait (<= timeout_ms) until current() == n; returns whether it happened.
  bool wait_current(int n, int timeout_ms) const;
  // While held, what the PACS sends back (responses) waits in the proxy: the client sees a
  // PACS that is slow to answer, e.g. a C-MOVE whose final response has not come yet. The
  // requests still flow. Released, the held data follows in order.
  void hold_responses(bool hold);
  // One-way delay of every byte read from now on: `up` from the client to the target, `down`
  // back. Each chunk read is written on once its time has come; reading goes on meanwhile
  // (up to 256 chunks queued per direction), so a stream keeps its throughput.
  void set_delay(std::chrono::microseconds up, std::chrono::microseconds down);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2x::test

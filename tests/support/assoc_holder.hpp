// AssociationHolder: the attack on a Storage SCP's association slots (issue 21, item 4). It
// opens `count` associations (a raw A-ASSOCIATE-RQ proposing Verification, under any calling AE
// title, from a chosen loopback source address such as 127.0.0.2 to play another host), holds
// them open sending nothing, and renews each one as soon as it is closed or refused (a refused
// one after retry_ms). Counters say what the SCP did to it. Stops (closing all) on destruction.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace p2x::test {

struct HoldOptions {
  std::uint16_t port = 0;
  std::string called_ae, calling_ae;
  std::string source = "127.0.0.1";  // local address the connections come from
  int count = 16;
  int retry_ms = 50;  // after a rejection or a failed connect
};

class AssociationHolder {
 public:
  explicit AssociationHolder(HoldOptions options);
  ~AssociationHolder();
  AssociationHolder(const AssociationHolder&) = delete;
  AssociationHolder& operator=(const AssociationHolder&) = delete;

  int held() const { return held_.load(); }              // accepted and open now
  int accepted() const { return accepted_.load(); }      // A-ASSOCIATE-AC so far
  int rejected() const { return rejected_.load(); }      // A-ASSOCIATE-RJ (or no answer) so far
  int closed_by_peer() const { return closed_.load(); }  // accepted ones the SCP closed
  // Waits until held() >= n (false after timeout_ms).
  bool wait_held(int n, int timeout_ms) const;
  void stop();

 private:
  void run();

  HoldOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> held_{0}, accepted_{0}, rejected_{0}, closed_{0};
  std::thread thread_;
};

// One raw association as the holder makes it: the connected socket once the SCP accepted
// (A-ASSOCIATE-AC), -1 when it rejected or did not answer within timeout_ms.
int open_raw_association(const HoldOptions& options, int timeout_ms);

}  // namespace p2x::test

// HostileHttp: an HTTP/1.1 server on 127.0.0.1 for tests that play a broken or hostile XNAT.
// Each request goes to a handler that may answer it (any status, headers, body: garbage, a
// document nested 100,000 levels, an HTML page where JSON was asked for); a request the handler
// leaves alone is forwarded to an upstream server (the XNAT stand-in) and its answer relayed, so
// the same object is a fake XNAT on its own and a man in the middle in front of the stand-in.
// One thread per connection, keep-alive; stop() (and the destructor) closes every connection
// and joins every thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace p2x::test {

struct HttpExchange {
  std::string method, target;  // target: path and query as sent
  std::string body;
};

struct HttpAnswer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class HostileHttp {
 public:
  // nullopt: forward to the upstream (503 "no upstream" without one).
  using Handler = std::function<std::optional<HttpAnswer>(const HttpExchange&)>;

  explicit HostileHttp(Handler handler);
  ~HostileHttp();
  HostileHttp(const HostileHttp&) = delete;
  HostileHttp& operator=(const HostileHttp&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Requests not answered by the handler go to 127.0.0.1:port from now on.
  void set_upstream(std::uint16_t port) { upstream_ = port; }
  // Requests seen so far whose target starts with `prefix`.
  int requests(const std::string& prefix = "") const;
  void stop();

 private:
  void accept_loop();
  void serve(int fd);
  std::optional<HttpAnswer> forward(const HttpExchange& ex,
                                    const std::vector<std::pair<std::string, std::string>>& hdrs);

  Handler handler_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<std::uint16_t> upstream_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::list<std::thread> connections_;
  std::vector<int> open_fds_;
  std::vector<std::string> seen_;
};

// The attacks on XNAT's answers (issue 21): a session document of `n` unknown declarations
// "<!a>" (DCMTK's XML parser nests each), one of "<?x>" + n elements + "?>", and JSON of n
// nested arrays.
std::string nested_declarations(int n);
std::string nested_in_instruction(int n);
std::string nested_arrays(int n);

}  // namespace p2x::test
